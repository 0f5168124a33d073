-- tide.BootstrapFewShotWithRandomSearch against mockllm's prompt-dependent task.
local tide = require "tide"
local lm_server = require "support.lm_server"
local task = require "support.optimize_task"
local assert_clean = require "support.clean"

local function answers(demos)
  local out = {}
  for i, d in ipairs(demos) do out[i] = d.answer end
  return out
end

describe("tide.BootstrapFewShotWithRandomSearch", function()
  local env, lm
  setup(function()
    env = lm_server.start()
    lm = task.lm(env.server)
  end)
  teardown(function() env:stop() end)
  before_each(function() env.server:reset() end)
  after_each(assert_clean)

  it("keeps the best of its candidates: the dev score goes from zero-shot to >= 0.9", function()
    local program = tide.ChainOfThought("word -> answer", {lm = lm})
    local dev = task.examples(17, 24)
    assert.are.equal(0, task.score(program, dev))
    local opt = tide.BootstrapFewShotWithRandomSearch{metric = task.metric, num_candidate_programs = 3,
      max_bootstrapped_demos = 2, max_labeled_demos = 2, seed = 5, display_progress = false}
    local compiled = opt:compile(program, {trainset = task.examples(1, 8), valset = task.examples(9, 16)})
    assert.is_true(task.score(compiled, dev) >= 0.9)
    assert.are.same({}, program.demos)
    local log = opt.log
    assert.are.equal(6, #log.candidates)            -- zero-shot, labeled, bootstrap, 3 random
    assert.are.same({"zero-shot", 0, 0}, {log.candidates[1].kind, log.candidates[1].score,
      log.candidates[1].demos})
    assert.are.equal("labeled", log.candidates[2].kind)
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

  it("stops at its budget of metric calls", function()
    local opt = tide.BootstrapFewShotWithRandomSearch{metric = task.metric, num_candidate_programs = 10,
      max_metric_calls = 20, display_progress = false}
    local compiled = opt:compile(tide.Predict("word -> answer", {lm = lm}),
      {trainset = task.examples(1, 6), valset = task.examples(7, 12)})
    assert.is_true(opt.log.metric_calls <= 20)
    -- zero-shot (6 calls) and labeled (6) evaluated; the bootstrap (6) leaves no room for its evaluation
    assert.are.equal(2, #opt.log.candidates)
    assert.is_true(#compiled.demos > 0)
  end)
end)
