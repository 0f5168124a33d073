-- tide.LabeledFewShot: demos sampled from the trainset, seeded, on a copy of the program.
local tide = require "tide"
local chat = require "tide.adapters.chat"
local assert_clean = require "support.clean"

local function trainset(n)
  local rows = {}
  for i = 1, n do rows[i] = tide.Example{question = "q" .. i, answer = "a" .. i}:with_inputs("question") end
  return rows
end

local function questions(demos)
  local out = {}
  for i, d in ipairs(demos) do out[i] = d.question end
  return out
end

local RAG = tide.Module{
  init = function(self)
    self.first = tide.ChainOfThought("question -> answer")
    self.second = tide.Predict("question -> answer")
  end,
  forward = function(self, args) return self.second(args) end,
}

describe("tide.LabeledFewShot", function()
  after_each(assert_clean)

  it("gives each predictor k demos from the trainset, reproducibly with seed", function()
    local train = trainset(30)
    local compiled = tide.LabeledFewShot{k = 4, seed = 7}:compile(RAG(), {trainset = train})
    local again = tide.LabeledFewShot{k = 4, seed = 7}:compile(RAG(), {trainset = train})
    local other = tide.LabeledFewShot{k = 4, seed = 8}:compile(RAG(), {trainset = train})
    assert.are.equal(4, #compiled.first.demos)
    assert.are.equal(4, #compiled.second.demos)
    assert.are.same(questions(compiled.first.demos), questions(again.first.demos))
    assert.are.same(questions(compiled.second.demos), questions(again.second.demos))
    assert.are_not.same(questions(compiled.first.demos), questions(other.first.demos))
    -- each predictor draws its own sample; no demo twice within one
    assert.are_not.same(questions(compiled.first.demos), questions(compiled.second.demos))
    local seen = {}
    for _, q in ipairs(questions(compiled.first.demos)) do
      assert.is_nil(seen[q])
      seen[q] = true
    end
  end)

  it("leaves the program passed in unchanged and returns a working copy", function()
    local program = RAG()
    local lm = tide.DummyLM{"[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"}
    program:set_lm(lm)
    local compiled = tide.LabeledFewShot{k = 2}:compile(program, {trainset = trainset(5)})
    assert.are.same({}, program.first.demos)
    assert.are.same({}, program.second.demos)
    assert.are_not.equal(program.first, compiled.first)
    assert.are.equal(lm, compiled.second.lm)   -- the LM is shared, not copied
    assert.are.equal("ok", compiled{question = "q"}.answer)
    -- the demos reach the prompt: system, two demo pairs, the question
    assert.are.equal(6, #lm.history[1].messages)
    assert.are.same(chat.format(compiled.second.signature, {question = "q"}, compiled.second.demos),
      lm.history[1].messages)
  end)

  it("takes all of a small trainset, the first k with sample = false, k = 16 by default", function()
    local p = tide.Predict("question -> answer")
    assert.are.equal(3, #tide.LabeledFewShot():compile(p, {trainset = trainset(3)}).demos)
    assert.are.equal(16, #tide.LabeledFewShot():compile(p, {trainset = trainset(40)}).demos)
    local first = tide.LabeledFewShot{k = 3}:compile(p, {trainset = trainset(10), sample = false})
    assert.are.same({"q1", "q2", "q3"}, questions(first.demos))
    assert.are.equal(0, #tide.LabeledFewShot{k = 3}:compile(p, {trainset = {}}).demos)
  end)

  it("compiles a program that saves and loads with its demos", function()
    local compiled = tide.LabeledFewShot{k = 2, seed = 1}:compile(RAG(), {trainset = trainset(6)})
    local path = os.tmpname()
    compiled:save(path)
    local loaded = RAG():load(path)
    os.remove(path)
    assert.are.same(questions(compiled.first.demos), questions(loaded.first.demos))
    assert.are.equal(compiled.second.demos[2].answer, loaded.second.demos[2].answer)
  end)

  it("blames the caller for bad options", function()
    assert.has_error(function() tide.LabeledFewShot{k = -1} end)
    assert.has_error(function() tide.LabeledFewShot{k = 1.5} end)
    local opt = tide.LabeledFewShot()
    assert.has_error(function() opt:compile(42, {trainset = {}}) end)
    assert.has_error(function() opt:compile(tide.Predict("a -> b"), {}) end)
    assert.has_error(function() opt:compile(tide.Predict("a -> b"), {trainset = {"x"}}) end)
  end)
end)
