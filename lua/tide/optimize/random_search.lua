--- tide.BootstrapFewShotWithRandomSearch{metric, num_candidate_programs = 16,
-- max_bootstrapped_demos = 4, max_labeled_demos = 16, max_rounds = 1,
-- min_num_samples = 1, stop_at_score, seed = 0, ...}: DSPy's random search over
-- bootstraps.
--
--   local opt = tide.BootstrapFewShotWithRandomSearch{metric = m, num_candidate_programs = 8}
--   local best = opt:compile(program, {trainset = train, valset = val})
--
-- The candidates, as DSPy makes them: the program zero-shot, the program with
-- labeled demos (LabeledFewShot), a bootstrap of the trainset in order, then
-- num_candidate_programs bootstraps of a shuffled trainset, each with a random
-- number (min_num_samples..max_bootstrapped_demos) of bootstrapped demos.  Each
-- is evaluated on the valset (the trainset when none), every example at once;
-- the best score wins (the earliest on a tie), and the search stops early at
-- stop_at_score or when the budget (max_metric_calls, max_cost) cannot pay for
-- the next candidate.  opt.log lists every candidate and its score.
local check = require "tide.check"
local rng = require "tide.optimize.rng"
local labeled = require "tide.optimize.labeled"
local bootstrap = require "tide.optimize.bootstrap"
local run_mod = require "tide.optimize.run"

local zero_shot = bootstrap.zero_shot

local M = {}

local Search = {}
Search.__index = Search
Search.save_log = run_mod.save_log
Search.__name = "tide.BootstrapFewShotWithRandomSearch"

local NAME = "BootstrapFewShotWithRandomSearch"

function M.new(opts)
  opts = check.type(NAME, 1, opts, "table")
  run_mod.check_common(NAME, opts, true)
  check.number(NAME, "opts.num_candidate_programs", opts.num_candidate_programs, {integer = true, min = 0}, true)
  check.number(NAME, "opts.min_num_samples", opts.min_num_samples, {integer = true, min = 0}, true)
  check.number(NAME, "opts.stop_at_score", opts.stop_at_score, {}, true)
  local params = bootstrap.check_params(NAME, opts)
  return setmetatable({opts = opts, params = params,
    num_candidate_programs = opts.num_candidate_programs or 16,
    min_num_samples = opts.min_num_samples or 1, stop_at_score = opts.stop_at_score,
    seed = opts.seed or 0}, Search)
end

local function demo_count(program)
  local n = 0
  for _, np in ipairs(program:named_predictors()) do n = n + #np[2].demos end
  return n
end

--- The candidate of number `k` (-3 zero-shot, -2 labeled, -1 bootstrap in order,
-- 0.. shuffled bootstraps), or nil when the budget cannot pay for its bootstrap.
-- self: {params (tide.optimize.bootstrap's), seed, min_num_samples}; MIPROv2's
-- demo sets are made the same way.
local function candidate(self, run, program, trainset, k)
  local p = self.params
  if k == -3 then return zero_shot(program), "zero-shot" end
  if k == -2 then
    return labeled.new{k = p.max_labeled_demos, seed = self.seed}:compile(program, {trainset = trainset}),
      "labeled"
  end
  if not run:affords(#trainset) then return nil end
  local train, size = trainset, p.max_bootstrapped_demos
  if k >= 0 then
    local r = rng.new(self.seed + k)
    train = r:sample(trainset, #trainset)
    local lo = math.min(self.min_num_samples, size)
    size = lo + r:below(size - lo + 1)
  end
  local params = {metric_threshold = p.metric_threshold, teacher = p.teacher, max_rounds = p.max_rounds,
    max_labeled_demos = p.max_labeled_demos, max_bootstrapped_demos = size}
  return (bootstrap.bootstrap(run, params, program, train, self.seed + k)),
    k == -1 and "bootstrap" or string.format("bootstrap (seed %d, %d demos)", self.seed + k, size)
end

M.candidate = candidate

--- opt:compile(program, {trainset = examples, valset = examples?}) → the best candidate.
function Search:compile(program, opts)
  check.type("compile", 2, opts, "table")
  local trainset = run_mod.examples("compile", "trainset", opts.trainset, true)
  local valset = run_mod.examples("compile", "valset", opts.valset, false) or trainset
  run_mod.check_program("compile", program, {trainset = trainset, valset = valset})
  local run = run_mod.new(NAME, self.opts)
  local best, best_score, best_entry
  local total = self.num_candidate_programs + 3
  local result = run:guard(function()
    for k = -3, self.num_candidate_programs - 1 do
      local cand, label = candidate(self, run, program, trainset, k)
      if cand == nil or not run:affords(#valset) then break end
      local n = k + 4
      local r = run:evaluate(cand, valset, string.format("candidate %d/%d", n, total))
      local entry = run:record{step = label, score = r.mean, demos = demo_count(cand)}
      if best_score == nil or r.mean > best_score then
        best, best_score, best_entry = cand, r.mean, entry
      end
      if self.stop_at_score and best_score >= self.stop_at_score then break end
    end
    return best or zero_shot(program)
  end, function() return best end)
  self.log = run:finish(best_entry and {index = best_entry.index, score = best_score} or nil)
  return result
end

return M
