--- tide.BestOfN(module, {N, reward_fn, threshold, fail_count}): the module run N times,
-- the best prediction kept.
--
--   local qa = tide.ChainOfThought("question -> answer")
--   local one_word = function(inputs, pred) return select(2, pred.answer:gsub("%S+", "")) == 1 end
--   local best = tide.BestOfN(qa, {N = 5, reward_fn = one_word, threshold = 1})
--   print(best{question = "Capital of Belgium?"}.answer)
--
-- DSPy's semantics (each attempt a copy of the module at its own rollout_id and
-- temperature 1.0; the first prediction whose reward reaches the threshold, else the
-- highest reward; fail_count failed attempts raise), with one difference in time: the
-- N attempts run at once, and the first to reach the threshold cancels the rest, so
-- BestOfN takes about one attempt's latency, not N.  Among attempts that finished
-- together, the lowest rollout wins a tie.
local core = require "tide.core"
local Module = require "tide.module"
local attempt = require "tide.modules.attempt"

local FNAME = "BestOfN"

--- Runs attempt i (1-based) and records what came of it in run.
local function run_attempt(self, run, inputs, i)
  if run.stopped then return end   -- an attempt before it already decided
  local rollout = run.first + i - 1
  local ok, pred_or_err, reward = pcall(function()
    local pred = attempt.copy_at(self.module, rollout)(inputs)
    return pred, attempt.reward(FNAME, self.reward_fn, inputs, pred, i)
  end)
  if not ok and core.is_error(pred_or_err, "cancelled") then error(pred_or_err, 0) end
  if run.stopped then return end
  if ok then
    run.results[i] = {prediction = pred_or_err, reward = reward}
    if self.threshold ~= nil and reward >= self.threshold then run.stop(i) end
  else
    run.failures[#run.failures + 1] = {index = i, error = pred_or_err}
    if #run.failures >= self.fail_count then run.stop(i) end
  end
end

--- The attempt to return: the passing one that stopped the run, else the highest
-- reward (the lowest rollout among equals); nil when none succeeded.
local function best_of(run)
  if run.winner and run.results[run.winner] then return run.results[run.winner] end
  local best
  for i = 1, run.n do
    local r = run.results[i]
    if r and (best == nil or r.reward > best.reward) then best = r end
  end
  return best
end

local BestOfN = Module.new{
  init = function(self, module, opts)
    for k, v in pairs(attempt.options(FNAME, module, opts)) do self[k] = v end
  end,

  forward = function(self, inputs)
    local run = {n = self.N, first = attempt.first_rollout(self.module), results = {},
                 failures = {}, tasks = {}}
    function run.stop(i)
      run.stopped, run.winner = true, i
      for j, t in ipairs(run.tasks) do
        if j ~= i then t:cancel() end
      end
    end
    for i = 1, self.N do
      run.tasks[i] = core.spawn(run_attempt, self, run, inputs, i)
    end
    core.gather(run.tasks, {return_exceptions = true})
    local best = best_of(run)
    if #run.failures >= self.fail_count or best == nil then
      -- the failure that reached fail_count (every attempt failed, by default), as raised
      error(run.failures[#run.failures].error, 0)
    end
    return best.prediction
  end,
}

function BestOfN:__tostring()
  return string.format("tide.BestOfN(%s, N = %d)", tostring(self.module), self.N)
end

return BestOfN
