--- What BestOfN and Refine share: one attempt of a module on its own copy, at its own
-- rollout, scored by the reward function.
--
-- DSPy runs each attempt on a deep copy of the module whose LM is copied with a
-- distinct rollout_id and temperature 1.0: a distinct rollout is a distinct cache key
-- (and a distinct call in flight), so N attempts are N answers, not one answer N
-- times.  tide puts the same two settings in each copied predictor's config.
local core = require "tide.core"
local check = require "tide.check"
local settings = require "tide.settings"
local metrics = require "tide.metrics"
local program = require "tide.optimize.program"

local M = {}

local NUMBER_RANGE = {integer = true, min = 1}

--- The checked options of BestOfN and Refine (fname names the caller).
function M.options(fname, module, opts)
  if type(module) ~= "table" or type(module.named_predictors) ~= "function" or
      not check.callable(module) then
    check.fail(fname, 1, "a tide program (Predict, ChainOfThought, Module, panel) expected, got " ..
      type(module))
  end
  check.type(fname, 2, opts, "table")
  check.number(fname, "N", opts.N, NUMBER_RANGE)
  if not check.callable(opts.reward_fn) then
    check.fail(fname, "reward_fn", "a function(inputs, prediction) → number expected, got " ..
      type(opts.reward_fn))
  end
  check.number(fname, "threshold", opts.threshold, {}, true)
  check.number(fname, "fail_count", opts.fail_count, NUMBER_RANGE, true)
  return {module = module, N = math.tointeger(opts.N), reward_fn = opts.reward_fn,
          threshold = opts.threshold, fail_count = math.tointeger(opts.fail_count or opts.N)}
end

--- The LM the module would use, for its rollout_id (DSPy starts from the LM's).
local function module_lm(module)
  for _, np in ipairs(module:named_predictors()) do
    if np[2].lm then return np[2].lm end
  end
  return settings.get("lm")
end

--- The first rollout id: the LM's own when it is a number, else 0.
function M.first_rollout(module)
  local lm = module_lm(module)
  local start = lm and lm.rollout_id
  return math.type(start) == "integer" and start or 0
end

--- A copy of the module whose predictors all sample at this rollout, at temperature 1.
function M.copy_at(module, rollout_id)
  local copy = program.copy(module)
  for _, np in ipairs(copy:named_predictors()) do
    local config = np[2].config
    config.rollout_id, config.temperature = rollout_id, 1.0
  end
  return copy
end

--- reward(fname, reward_fn, inputs, pred, index) → the reward as a number: true
-- is 1, false 0, {score = s} s; anything else a `metric` error naming the attempt.
function M.reward(fname, reward_fn, inputs, pred, index)
  local ok, v = pcall(reward_fn, inputs, pred)
  if not ok then
    if core.is_error(v, "cancelled") then error(v, 0) end
    error(core.error{kind = "metric", message = string.format(
      "%s: reward_fn raised on attempt %d: %s", fname, index,
      core.is_error(v) and v.message or tostring(v))}, 0)
  end
  local score = metrics.score_of(v)
  if score == nil then
    error(core.error{kind = "metric", message = string.format(
      "%s: reward_fn returned %s on attempt %d; it must return a number, a boolean or " ..
      "{score = ...}", fname, type(v) == "number" and tostring(v) or type(v), index)}, 0)
  end
  return score
end

return M
