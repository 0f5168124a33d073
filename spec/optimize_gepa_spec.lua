-- tide.GEPA against mockllm's prompt-dependent task: the reflection LM writes the
-- instruction that teaches the task when the metric's feedback shows the rule.
local tide = require "tide"
local task = require "support.optimize_task"

describe("tide.GEPA", function()
  local env = task.env()   -- env.server, env.lm

  it("evolves the instruction from feedback: dev score from zero-shot to >= 0.9, within its budget", function()
    local program = tide.Predict("word -> answer", {lm = env.lm})
    local dev = task.examples(17, 24)
    assert.are.equal(0, task.score(program, dev))
    env.server:reset()
    local opt = tide.GEPA{metric = task.feedback_metric, reflection_lm = env.lm, max_metric_calls = 60,
      seed = 1, display_progress = false}
    local compiled = opt:compile(program, {trainset = task.examples(1, 8), valset = task.examples(9, 16)})
    local calls = env.server:stats().requests
    assert.is_true(calls <= 60, calls .. " LM calls for a budget of 60")
    assert.are.same(opt.log.lm_calls, calls)
    assert.matches("Reverse the letters", compiled.signature.instructions)
    assert.are.equal(program.signature.instructions, "Given the fields `word`, produce the fields `answer`.")
    assert.is_true(task.score(compiled, dev) >= 0.9)
    local log = opt.log
    assert.are.same({"seed", 0}, {log.candidates[1].step, log.candidates[1].score})
    assert.are.equal("reflection", log.candidates[2].step)
    assert.are.equal(1, log.chosen.score)
    assert.are.same({score = 1, candidates = {2}}, log.pareto[1])
  end)

  it("shows the reflection LM the inputs, outputs and feedback as GEPA's markdown", function()
    local reflection = tide.DummyLM{"[[ ## new_instruction ## ]]\nReverse the letters.\n\n[[ ## completed ## ]]"}
    local opt = tide.GEPA{metric = task.feedback_metric, reflection_lm = reflection, max_metric_calls = 40,
      reflection_minibatch_size = 2, seed = 2, display_progress = false}
    local compiled = opt:compile(tide.Predict("word -> answer", {lm = env.lm}),
      {trainset = task.examples(1, 4), valset = task.examples(5, 8)})
    assert.are.equal("Reverse the letters.", compiled.signature.instructions)
    local prompt = reflection.history[1].messages[2].content
    assert.matches("# Example 1\n## Inputs\n### word\n%a+\n\n## Generated Outputs\n### answer\n%a+\n\n" ..
      "## Feedback\nWrong: the answer must be the letters of '%a+' reversed", prompt)
    assert.matches("Given the fields `word`, produce the fields `answer`.", prompt, 1, true)
  end)

  it("a metric returning a number still gives feedback, and bad budgets are refused before any LM call", function()
    assert.has_error(function() tide.GEPA{metric = task.metric} end)
    assert.has_error(function() tide.GEPA{metric = task.metric, auto = "light", max_metric_calls = 9} end)
    local opt = tide.GEPA{metric = task.metric, max_metric_calls = 3, display_progress = false}
    local ok, err = pcall(opt.compile, opt, tide.Predict("word -> answer", {lm = env.lm}),
      {trainset = task.examples(1, 4), valset = task.examples(5, 8)})
    assert.is_false(ok)
    assert.matches("a budget of 3 metric calls cannot score the valset %(4 examples%)", err)
    assert.are.equal(0, env.server:stats().requests)
    local reflection = tide.DummyLM{"[[ ## new_instruction ## ]]\nReverse it.\n\n[[ ## completed ## ]]"}
    tide.GEPA{metric = task.metric, reflection_lm = reflection, max_metric_calls = 20,
      reflection_minibatch_size = 2, display_progress = false}
      :compile(tide.Predict("word -> answer", {lm = env.lm}), {trainset = task.examples(1, 4), valset = task.examples(5, 8)})
    assert.matches("## Feedback\nThis trajectory got a score of 0", reflection.history[1].messages[2].content)
  end)

  it("merges two children that changed different predictors of their parent", function()
    local merge_of = require("tide.optimize.gepa").merge_of
    local names = {"first", "second", "third"}
    local parent = {instructions = {first = "f0", second = "s0", third = "t0"}}
    local a = {score = 0.5, instructions = {first = "f1", second = "s0", third = "t1"}}
    local b = {score = 0.7, instructions = {first = "f0", second = "s2", third = "t2"}}
    assert.are.same({first = "f1", second = "s2", third = "t2"}, merge_of(parent, a, b, names))
    -- b changed nothing a did not: no merge
    local c = {score = 0.9, instructions = {first = "f1", second = "s0", third = "t0"}}
    assert.is_nil(merge_of(parent, a, c, names))
  end)
end)
