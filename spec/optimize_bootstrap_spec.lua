-- tide.BootstrapFewShot against mockllm's prompt-dependent task (model mock-task:
-- the input reversed, right only when the prompt holds demos or says so).
local tide = require "tide"
local task = require "support.optimize_task"

describe("tide.BootstrapFewShot", function()
  local env = task.env()   -- env.server, env.lm

  it("lifts the dev score from zero-shot to >= 0.9 with augmented demos that keep reasoning", function()
    local program = tide.ChainOfThought("word -> answer", {lm = env.lm})
    local dev = task.examples(13, 24)
    assert.are.equal(0, task.score(program, dev))
    local opt = tide.BootstrapFewShot{metric = task.metric, max_bootstrapped_demos = 3,
      max_labeled_demos = 5, display_progress = false}
    local compiled = opt:compile(program, {trainset = task.examples(1, 12)})
    assert.is_true(task.score(compiled, dev) >= 0.9)
    assert.are.same({}, program.demos)                 -- the input program is not mutated
    local demos = compiled.demos
    assert.are.equal(5, #demos)
    for i = 1, 3 do
      assert.is_true(demos[i].augmented)
      assert.are.equal(task.WORDS[i]:reverse(), demos[i].answer)   -- trainset order
      assert.matches("reversed read", demos[i].reasoning)
    end
    assert.is_nil(demos[4].augmented)                  -- labeled fill
    -- the flag and the reasoning survive save and load
    local path = os.tmpname()
    compiled:save(path)
    local loaded = tide.ChainOfThought("word -> answer", {lm = env.lm}):load(path)
    os.remove(path)
    assert.is_true(loaded.demos[1].augmented)
    assert.are.equal(demos[1].reasoning, loaded.demos[1].reasoning)
    -- the log: each example tried, in trainset order, the first three passed
    assert.are.equal(3, #opt.log.bootstrap)
    for i, c in ipairs(opt.log.bootstrap) do
      assert.are.same({1, i, true}, {c.round, c.example, c.passed})
    end
    assert.is_true(opt.log.lm_calls >= 3)
  end)

  it("runs the teacher over the trainset in parallel under the LM's gate", function()
    local slow = task.lm(env.server, {cache = false, max_parallel_requests = 6,
      headers = {["X-Mock-Scenario"] = "latency=100"}})
    local opt = tide.BootstrapFewShot{metric = task.metric, max_bootstrapped_demos = 12,
      display_progress = false}
    opt:compile(tide.Predict("word -> answer", {lm = slow}), {trainset = task.examples(1, 12)})
    local s = env.server:stats()
    assert.are.equal(12, s.requests)
    assert.are.equal(6, s.peak_in_flight)
  end)

  it("names the metric and the example when the metric raises or returns nil, counted against max_errors", function()
    local function bad(example, pred)
      if example.word == "stone" then error("boom") end
      if example.word == "river" then return nil end
      return task.metric(example, pred)
    end
    local opt = tide.BootstrapFewShot{metric = bad, max_errors = 3, display_progress = false}
    local compiled = opt:compile(tide.Predict("word -> answer", {lm = env.lm}), {trainset = task.examples(1, 6)})
    assert.are.equal(2, #opt.log.errors)
    assert.matches("the metric %(spec/optimize_bootstrap_spec%.lua:%d+%) raised: .*boom on trainset%[2%]",
      opt.log.errors[1])
    assert.matches("returned nil .* on trainset%[3%]", opt.log.errors[2])
    assert.are.equal(6, #compiled.demos)   -- four bootstrapped, then the two others as labeled demos
    assert.is_true(compiled.demos[4].augmented)
    assert.is_nil(compiled.demos[5].augmented)
    local worse = tide.BootstrapFewShot{metric = function() return "yes" end, max_errors = 2,
      display_progress = false}
    local ok, err = pcall(worse.compile, worse, tide.Predict("word -> answer", {lm = env.lm}),
      {trainset = task.examples(1, 6)})
    assert.is_false(ok)
    assert.are.equal("max_errors", err.kind)
    assert.matches("after 2 errors .*returned yes", err.message)
  end)

  it("refuses an empty trainset, a missing input and a program without an LM before any LM call", function()
    local opt = tide.BootstrapFewShot{metric = task.metric, display_progress = false}
    local p = tide.Predict("word -> answer", {lm = env.lm})
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() opt:compile(p, {trainset = {}}) end)
    assert.is_false(ok)
    assert.are.equal("spec/optimize_bootstrap_spec.lua:" .. line .. ": bad argument 'opts.trainset' " ..
      "to 'compile' (the trainset is empty: give at least one example (tide.Example{...}:with_inputs(...)))", err)
    ok, err = pcall(opt.compile, opt, p, {trainset = {tide.Example{text = "x", answer = "y"}:with_inputs("text")}})
    assert.is_false(ok)
    assert.matches("trainset%[1%] lacks the input 'word'", err)
    ok, err = pcall(opt.compile, opt, tide.Predict("word -> answer"), {trainset = task.examples(1, 2)})
    assert.is_false(ok)
    assert.matches("predictor 'self' has no LM: tide.configure", err)
    assert.has_error(function() tide.BootstrapFewShot{} end)
    assert.has_error(function() tide.BootstrapFewShot{metric = task.metric, max_rounds = 0} end)
    assert.are.equal(0, env.server:stats().requests)
  end)
end)
