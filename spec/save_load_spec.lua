local tide = require "tide"
local chat = require "tide.adapters.chat"
local files = require "support.files"
local assert_clean = require "support.clean"

local FIXTURES = "spec/fixtures/"

local function reply(fields)
  local out = {}
  for _, kv in ipairs(fields) do
    out[#out + 1] = string.format("[[ ## %s ## ]]\n%s\n", kv[1], kv[2])
  end
  out[#out + 1] = "[[ ## completed ## ]]"
  return table.concat(out, "\n")
end

local INPUTS = {question = "What is the capital of Chile?"}

local QA = tide.Module{
  init = function(self)
    self.technical = tide.ChainOfThought("question -> answer")
    self.summary = tide.Predict("text -> summary")
    self.steps = {tide.Predict("a -> b"), tide.Predict("b -> c")}
  end,
  forward = function(self, args) return self.technical(args) end,
}

local function failure(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(tide.is_error(err), tostring(err))
  return err
end

describe("program:save / program:load (DSPy's JSON state format)", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
    assert_clean()
  end)

  it("names predictors as DSPy does: self, predict, attribute paths, lists from 0", function()
    assert.are.equal("self", tide.Predict("q -> a"):named_predictors()[1][1])
    assert.are.equal("predict", tide.ChainOfThought("q -> a"):named_predictors()[1][1])
    local names = {}
    for _, np in ipairs(QA():named_predictors()) do names[#names + 1] = np[1] end
    assert.are.same({"steps[0]", "steps[1]", "summary", "technical.predict"}, names)
  end)

  it("writes one key per predictor with traces, train, demos, signature, lm and metadata", function()
    local program = QA()
    program.technical.demos = {{question = "1+1?", reasoning = "one and one", answer = "2",
                                augmented = true}}
    local path = dir .. "/qa.json"
    program:save(path)
    local text = files.read(path)
    local state = tide.json.decode(text)
    for _, name in ipairs{"technical.predict", "summary", "steps[0]", "steps[1]"} do
      local st = state[name]
      assert.is_table(st, name)
      assert.are.equal(tide.json.null, st.lm)
      assert.are.same({}, st.traces)
      assert.are.same({}, st.train)
    end
    assert.is_table(state.metadata.dependency_versions)
    -- empty lists are JSON arrays, as Python writes them
    assert.matches('"traces": %[%]', text)
    assert.matches('"demos": %[%]', text)
    local sig = state["technical.predict"].signature
    assert.are.equal("Given the fields `question`, produce the fields `answer`.", sig.instructions)
    assert.are.same({
      {prefix = "Question:", description = "${question}"},
      {prefix = "Reasoning: Let's think step by step in order to", description = "${reasoning}"},
      {prefix = "Answer:", description = "${answer}"},
    }, sig.fields)
    assert.are.same({{question = "1+1?", reasoning = "one and one", answer = "2", augmented = true}},
      state["technical.predict"].demos)
  end)

  it("saves a Prediction demo as its fields, without its other completions", function()
    local p = tide.Predict("question -> answer")
    p.demos = {tide.Prediction({question = "q", answer = "a"},
      {{question = "q", answer = "a"}, {question = "q", answer = "b"}})}
    assert.is_table(p.demos[1].completions)
    local path = dir .. "/p.json"
    p:save(path)
    assert.are.same({{question = "q", answer = "a"}}, tide.json.decode(files.read(path)).self.demos)
  end)

  it("round-trips: a fresh program loaded from the file sends the same messages", function()
    local program = QA()
    program.technical.demos = {
      tide.Example{question = "1+1?", reasoning = "one and one", answer = "2", augmented = true},
      {question = "2+2?", answer = "4"},
    }
    program.technical.signature = program.technical.signature:with_instructions("Answer tersely.")
    program.summary.demos = {{text = "long text", summary = "short"}}
    local path = dir .. "/qa.json"
    program:save(path)
    local again = QA()
    assert.are_not.same(chat.format(program.technical.signature, INPUTS, program.technical.demos),
      chat.format(again.technical.signature, INPUTS, again.technical.demos))
    assert.are.equal(again, again:load(path))
    assert.are.same(chat.format(program.technical.signature, INPUTS, program.technical.demos),
      chat.format(again.technical.signature, INPUTS, again.technical.demos))
    assert.are.same(chat.format(program.summary.signature, {text = "t"}, program.summary.demos),
      chat.format(again.summary.signature, {text = "t"}, again.summary.demos))
    assert.is_true(again.technical.demos[1].augmented)
    -- saved again, the same bytes
    local path2 = dir .. "/again.json"
    again:save(path2)
    assert.are.equal(files.read(path), files.read(path2))
  end)

  it("loads a Predict saved by DSPy: its demos and instructions make the prompt", function()
    local p = tide.Predict("question -> answer")
    p:load(FIXTURES .. "dspy_predict_qa.json")
    local want = tide.Predict(tide.Signature{
      inputs = {"question"}, outputs = {{name = "answer", desc = "often between 1 and 5 words"}},
      instructions = "Answer questions with short factoid answers."})
    local demos = {{question = "What is the capital of Peru?", answer = "Lima"},
                   {question = "Who wrote Hamlet?", answer = "William Shakespeare"}}
    assert.are.same(chat.format(want.signature, INPUTS, demos),
      chat.format(p.signature, INPUTS, p.demos))
    local lm = tide.DummyLM{reply{{"answer", "Santiago"}}}
    assert.are.equal("Santiago", p(INPUTS, {lm = lm}).answer)
    local sent = lm.history[1].messages
    assert.matches("Answer questions with short factoid answers.", sent[1].content, 1, true)
    assert.matches("often between 1 and 5 words", sent[1].content, 1, true)
    assert.are.equal(6, #sent)   -- system, two demo pairs, the question
    assert.matches("Who wrote Hamlet?", sent[4].content, 1, true)
    assert.is_true(p.demos[1].augmented)
  end)

  it("never takes the LM, its URL or its key from the file", function()
    local p = tide.Predict("question -> answer")
    p:load(FIXTURES .. "dspy_predict_qa.json")
    assert.is_nil(p.lm)
    local path = dir .. "/out.json"
    p:save(path)
    local text = files.read(path)
    assert.is_nil(text:find("sk-from-the-file", 1, true))
    assert.is_nil(text:find("203.0.113.9", 1, true))
    assert.are.equal(tide.json.null, tide.json.decode(text).self.lm)
  end)

  it("loads a ChainOfThought saved by DSPy, augmented demo with its reasoning first-class", function()
    local cot = tide.ChainOfThought("question -> answer")
    cot:load(FIXTURES .. "dspy_cot_qa.json")
    local want = tide.ChainOfThought(tide.Signature{
      inputs = {"question"}, outputs = {{name = "answer", desc = "a number, digits only"}}})
    local demos = {
      {question = "How many legs do three spiders have?",
       reasoning = "A spider has 8 legs, so three have 3 * 8 = 24.", answer = "24"},
      {question = "What is 7 squared?", answer = "49"},
    }
    local got = chat.format(cot.signature, INPUTS, cot.demos)
    assert.are.same(chat.format(want.signature, INPUTS, demos), got)
    -- the demo without reasoning is DSPy's incomplete one: first, marked
    assert.matches("some input or output fields are not supplied", got[2].content, 1, true)
    assert.matches("3 %* 8 = 24", got[5].content)
  end)

  it("fails on a file for another structure, naming the missing and extra predictors", function()
    local program = QA()
    local before = program.technical.signature
    local err = failure(program.load, program, FIXTURES .. "dspy_cot_qa.json")
    assert.are.equal("parse", err.kind)
    assert.matches("no state for predictor 'steps%[0%]', 'steps%[1%]', 'summary', " ..
      "'technical.predict'", err.message)
    assert.matches("state for unknown predictor 'predict'", err.message)
    assert.are.equal(before, program.technical.signature)
    err = failure(tide.Predict("question -> answer").load, tide.Predict("question -> answer"),
      FIXTURES .. "dspy_cot_qa.json")
    assert.matches("no state for predictor 'self'", err.message)
  end)

  it("fails on a signature with another number of fields, leaving the program unchanged", function()
    local p = tide.ChainOfThought("question, context -> answer")
    local path = dir .. "/cot.json"
    tide.ChainOfThought("question -> answer"):save(path)
    local before = p.signature
    local err = failure(p.load, p, path)
    assert.matches("predictor 'predict': the file has 3 fields", err.message)
    assert.are.equal(before, p.signature)
  end)

  it("fails with kind io on a missing file and parse on a file that is not JSON", function()
    local p = tide.Predict("question -> answer")
    assert.are.equal("io", failure(p.load, p, dir .. "/none.json").kind)
    files.write(dir .. "/bad.json", "not json")
    assert.are.equal("parse", failure(p.load, p, dir .. "/bad.json").kind)
    assert.has_error(function() p:save(42) end)
  end)
end)
