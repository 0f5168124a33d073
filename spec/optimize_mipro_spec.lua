-- tide.MIPROv2 against mockllm's prompt-dependent task: its proposer writes the
-- instruction that teaches the task when its prompt shows bootstrapped demos.
local tide = require "tide"
local task = require "support.optimize_task"

describe("tide.MIPROv2", function()
  local env = task.env()   -- env.server, env.lm

  it("auto = 'light' lifts the dev score from zero-shot to >= 0.9, with proposed instructions", function()
    local program = tide.ChainOfThought("word -> answer", {lm = env.lm})
    local dev = task.examples(17, 24)
    assert.are.equal(0, task.score(program, dev))
    local opt = tide.MIPROv2{metric = task.metric, auto = "light", seed = 7, display_progress = false}
    local compiled = opt:compile(program, {trainset = task.examples(1, 8), valset = task.examples(9, 16),
      max_bootstrapped_demos = 2, max_labeled_demos = 2})
    assert.is_true(task.score(compiled, dev) >= 0.9)
    assert.are.same({}, program.demos)
    local log = opt.log
    assert.are.equal(6, log.num_candidates)
    assert.are.equal(10, log.num_trials)          -- DSPy's max(2·2·log2 6, 1.5·6)
    local proposals = log.instructions.predict
    assert.are.equal(6, #proposals)
    assert.are.equal(program.signature.instructions, proposals[1].instruction)
    local good = 0
    for _, p in ipairs(proposals) do
      if p.instruction:find("Reverse the letters", 1, true) then good = good + 1 end
    end
    assert.is_true(good >= 1)                     -- grounded on bootstrapped demos
    assert.are.equal("baseline", log.candidates[1].step)
    assert.are.equal(0, log.candidates[1].score)
    assert.are.equal(1, log.chosen.score)
  end)

  it("searches instructions alone (no demos) and the same seed gives the same program from the cache", function()
    local program = tide.Predict("word -> answer", {lm = env.lm})
    local function compile()
      return tide.MIPROv2{metric = task.metric, num_candidates = 4, num_trials = 6, seed = 3,
        minibatch_size = 4, minibatch_full_eval_steps = 3, display_progress = false}
        :compile(program, {trainset = task.examples(1, 8), valset = task.examples(9, 16),
          max_bootstrapped_demos = 0, max_labeled_demos = 0})
    end
    local first = compile()
    local before = env.server:stats().requests
    local again = compile()
    assert.are.equal(first.signature.instructions, again.signature.instructions)
    assert.are.same({}, first.demos)
    assert.are.equal(before, env.server:stats().requests)
  end)

  it("refuses bad options and a valset smaller than a minibatch before any LM call", function()
    assert.has_error(function() tide.MIPROv2{metric = task.metric, auto = "huge"} end)
    assert.has_error(function() tide.MIPROv2{metric = task.metric} end)
    assert.has_error(function() tide.MIPROv2{metric = task.metric, auto = "light", num_trials = 3} end)
    local opt = tide.MIPROv2{metric = task.metric, auto = "light", minibatch_size = 10}
    local ok, err = pcall(opt.compile, opt, tide.Predict("word -> answer", {lm = env.lm}),
      {trainset = task.examples(1, 8), valset = task.examples(9, 12)})
    assert.is_false(ok)
    assert.matches("the valset %(4 examples%) is smaller than a minibatch %(minibatch_size = 10%)", err)
    assert.are.equal(0, env.server:stats().requests)
  end)

  it("asks the prompt model as DSPy's grounded proposer does: summary, program, module, demos, tip", function()
    local prompts = {}
    local prompt_model = tide.DummyLM(function(messages)
      local user = messages[#messages].content
      local field = user:match("starting with the field `%[%[ ## ([%w_]+) ## %]%]`")
      prompts[#prompts + 1] = {field = field, system = messages[1].content, user = user}
      return "[[ ## " .. field .. " ## ]]\nReverse the letters of the word.\n\n[[ ## completed ## ]]"
    end)
    local opt = tide.MIPROv2{metric = task.metric, num_candidates = 3, num_trials = 2, seed = 1,
      prompt_model = prompt_model, minibatch = false, display_progress = false}
    local compiled = opt:compile(tide.ChainOfThought("word -> answer", {lm = env.lm}),
      {trainset = task.examples(1, 6), valset = task.examples(7, 10), max_bootstrapped_demos = 1,
       max_labeled_demos = 1})
    local fields = {}
    for _, p in ipairs(prompts) do fields[#fields + 1] = p.field end
    -- the dataset summary, the program's description, then per proposal the module's role and
    -- the instruction (num_candidates - 1 = 2 proposals, made at once)
    assert.are.same({"observations", "summary", "program_description"}, {fields[1], fields[2], fields[3]})
    table.sort(fields)
    assert.are.same({"module_description", "module_description", "observations", "program_description",
      "proposed_instruction", "proposed_instruction", "summary"}, fields)
    local proposal
    for _, p in ipairs(prompts) do
      if p.field == "proposed_instruction" then proposal = p end
    end
    for _, name in ipairs{"dataset_description", "program_code", "program_description", "module",
      "module_description", "task_demos", "basic_instruction"} do
      assert.truthy(proposal.system:find("`" .. name .. "`", 1, true), name)
    end
    assert.matches('predict = tide.ChainOfThought%("word %-> reasoning, answer"%)', proposal.user)
    -- each proposal's prompt carries the tip its log entry names (seed 1 draws no "none")
    local tips, asked, logged = {}, {}, {}
    for _, t in ipairs(require("tide.optimize.proposer").TIPS) do tips[t[1]] = t[2] end
    for _, p in ipairs(prompts) do
      if p.field == "proposed_instruction" then
        asked[#asked + 1] = p.user:match("%[%[ ## tip ## %]%]\n([^\n]+)")
      end
    end
    local proposed = opt.log.instructions.predict
    for k = 2, #proposed do logged[#logged + 1] = tips[proposed[k].tip] end
    table.sort(asked)
    table.sort(logged)
    assert.are.equal(2, #asked)
    assert.are.same(logged, asked)
    assert.are.same({"Given the fields `word`, produce the fields `answer`.",
      "Reverse the letters of the word.", "Reverse the letters of the word."},
      {proposed[1].instruction, proposed[2].instruction, proposed[3].instruction})
    assert.are.equal(1, opt.log.chosen.score)
    local candidates = {[proposed[1].instruction] = true, [proposed[2].instruction] = true}
    assert.is_true(candidates[compiled.signature.instructions], compiled.signature.instructions)
  end)
end)
