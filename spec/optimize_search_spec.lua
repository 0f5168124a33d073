-- tide.BootstrapFewShotWithRandomSearch against mockllm's prompt-dependent task.
local tide = require "tide"
local task = require "support.optimize_task"

local function answers(demos)
  local out = {}
  for i, d in ipairs(demos) do out[i] = d.answer end
  return out
end

describe("tide.BootstrapFewShotWithRandomSearch", function()
  local env = task.env()   -- env.server, env.lm

  it("keeps the best of its candidates: the dev score goes from zero-shot to >= 0.9", function()
    local program = tide.ChainOfThought("word -> answer", {lm = env.lm})
    local dev = task.examples(17, 24)
    assert.are.equal(0, task.score(program, dev))
    local opt = tide.BootstrapFewShotWithRandomSearch{metric = task.metric, num_candidate_programs = 3,
      max_bootstrapped_demos = 2, max_labeled_demos = 2, seed = 5, display_progress = false}
    local compiled = opt:compile(program, {trainset = task.examples(1, 8), valset = task.examples(9, 16)})
    assert.is_true(task.score(compiled, dev) >= 0.9)
    assert.are.same({}, program.demos)
    local log = opt.log
    assert.are.equal(6, #log.candidates)            -- zero-shot, labeled, bootstrap, 3 random
    assert.are.same({"zero-shot", 0, 0}, {log.candidates[1].step, log.candidates[1].score,
      log.candidates[1].demos})
    assert.are.equal("labeled", log.candidates[2].step)
    assert.are.equal(1, log.chosen.score)
    assert.are.equal(2, log.chosen.index)           -- the earliest of the best
    assert.are.equal(log.metric_calls, 8 * 6 + 8 * 4)   -- six evaluations, four bootstraps

    -- the same seed: the same program, and every LM call a cache hit (a rerun resumes)
    local before = env.server:stats().requests
    local again = tide.BootstrapFewShotWithRandomSearch{metric = task.metric, num_candidate_programs = 3,
      max_bootstrapped_demos = 2, max_labeled_demos = 2, seed = 5, display_progress = false}
      :compile(program, {trainset = task.examples(1, 8), valset = task.examples(9, 16)})
    assert.are.same(answers(compiled.demos), answers(again.demos))
    assert.are.equal(before, env.server:stats().requests)
  end)

  it("stops at its budget of LM cost, and saves its log", function()
    local priced = task.lm(env.server, {cache = false, price = {input = 1000, output = 1000}})
    local opt = tide.BootstrapFewShotWithRandomSearch{metric = task.metric, num_candidate_programs = 4,
      max_cost = 0.5, display_progress = false}
    opt:compile(tide.Predict("word -> answer", {lm = priced}),
      {trainset = task.examples(1, 4), valset = task.examples(5, 8)})
    assert.are.equal(1, #opt.log.candidates)       -- the zero-shot evaluation spent more than $0.50
    assert.is_true(opt.log.cost > 0.5)
    local path = os.tmpname()
    opt:save_log(path)
    local saved = require("cjson").decode(require("support.files").read(path))
    os.remove(path)
    assert.are.equal("BootstrapFewShotWithRandomSearch", saved.optimizer)
    assert.are.equal("zero-shot", saved.candidates[1].step)
  end)

  it("stops at its budget of metric calls", function()
    local opt = tide.BootstrapFewShotWithRandomSearch{metric = task.metric, num_candidate_programs = 10,
      max_metric_calls = 20, display_progress = false}
    local compiled = opt:compile(tide.Predict("word -> answer", {lm = env.lm}),
      {trainset = task.examples(1, 6), valset = task.examples(7, 12)})
    assert.is_true(opt.log.metric_calls <= 20)
    -- zero-shot (6 calls) and labeled (6) evaluated; the bootstrap (6) leaves no room for its evaluation
    assert.are.equal(2, #opt.log.candidates)
    assert.is_true(#compiled.demos > 0)
  end)

  it("cancelled mid-compile (Ctrl-C), keeps the best program so far, and a rerun resumes from the cache", function()
    local cache_mod = require "tide.cache"
    local calls, compile_task = 0, nil
    local function metric(example, pred)
      calls = calls + 1
      if calls == 20 then compile_task:cancel() end   -- during the third candidate's bootstrap
      return task.metric(example, pred)
    end
    local function compile(m, cache)
      local own = task.lm(env.server, {cache = cache})   -- a memory cache of its own
      return tide.BootstrapFewShotWithRandomSearch{metric = m, num_candidate_programs = 2,
        max_bootstrapped_demos = 2, max_labeled_demos = 2, display_progress = false}
        :compile(tide.Predict("word -> answer", {lm = own}),
          {trainset = task.examples(1, 8), valset = task.examples(9, 14)})
    end
    local cache = cache_mod.new{}
    compile_task = tide.spawn(compile, metric, cache)
    local ok, err = pcall(compile_task.wait, compile_task)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    local best = err.result.program
    assert.are.equal(2, #best.demos)                   -- the labeled candidate, scored 1
    assert.are.equal(2, #err.result.log.candidates)
    local cancelled_run = env.server:stats().requests
    assert.is_true(cancelled_run > 0)
    env.server:reset()
    compile(task.metric, cache)
    local resumed = env.server:stats().requests
    env.server:reset()
    compile(task.metric, cache_mod.new{})
    local fresh = env.server:stats().requests
    -- the rerun asks only what the cancelled run had not been answered
    assert.is_true(resumed < fresh, resumed .. " requests resumed, " .. fresh .. " fresh")
    assert.is_true(resumed + cancelled_run >= fresh)
  end)
end)
