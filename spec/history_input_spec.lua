-- A `history` input: earlier turns written as DSPy's dspy.History writes them
-- (golden), for the chat and JSON adapters, and sent in the three wire formats.
local tide = require "tide"
local chat = require "tide.adapters.chat"
local json_adapter = require "tide.adapters.json"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local PROVIDERS = require("support.lm_server").PROVIDERS

local REQUIRE = "Respond with the corresponding output fields, starting with the field " ..
  "`[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."

local TURNS = {
  {question = "What is the capital of France?", answer = "Paris"},
  {question = "And of Germany?"},                       -- its answer not kept
}

describe("history inputs", function()
  after_each(assert_clean)

  local sig = tide.Signature("question, history: history -> answer")

  it("are earlier user/assistant turns after the demos, before the request (golden)", function()
    local msgs = chat.format(sig, {question = "Are you sure?", history = TURNS},
      {{question = "2+2?", answer = "4"}})
    assert.are.equal(table.concat({
      "Your input fields are:",
      "1. `question` (str): ",
      "2. `history` (History):",
      "Your output fields are:",
      "1. `answer` (str):",
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "",
      "[[ ## question ## ]]",
      "{question}",
      "",
      "[[ ## history ## ]]",
      "{history}",
      "",
      "[[ ## answer ## ]]",
      "{answer}",
      "",
      "[[ ## completed ## ]]",
      "In adhering to this structure, your objective is: ",
      "        Given the fields `question`, `history`, produce the fields `answer`."}, "\n"),
      msgs[1].content)
    local rest = {}
    for i = 2, #msgs do rest[#rest + 1] = {msgs[i].role, msgs[i].content} end
    assert.are.same({
      -- the demo: it lacks the history input, so DSPy (which checks the demos against
      -- the whole signature) marks it as an incomplete example
      {"user", "This is an example of the task, though some input or output fields are " ..
        "not supplied.\n\n[[ ## question ## ]]\n2+2?"},
      {"assistant", "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]\n"},
      -- the history, with the signature less its history field
      {"user", "[[ ## question ## ]]\nWhat is the capital of France?"},
      {"assistant", "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]\n"},
      {"user", "[[ ## question ## ]]\nAnd of Germany?"},
      {"assistant", "[[ ## answer ## ]]\nNone\n\n[[ ## completed ## ]]\n"},
      -- the request, without a history section
      {"user", "[[ ## question ## ]]\nAre you sure?\n\n" .. REQUIRE},
    }, rest)
  end)

  it("take DSPy's shape {messages = turns} too, and nothing when absent", function()
    local a = chat.format(sig, {question = "q", history = TURNS})
    local b = chat.format(sig, {question = "q", history = {messages = TURNS}})
    assert.are.same(a, b)
    local none = chat.format(sig, {question = "q"})
    assert.are.equal(2, #none)
    assert.are.equal("[[ ## question ## ]]\nq\n\n" .. REQUIRE, none[2].content)
  end)

  it("are JSON objects of the outputs in the JSON adapter, null for a missing one", function()
    local msgs = json_adapter.format(sig, {question = "q", history = TURNS})
    assert.are.equal('{\n  "answer": "Paris"\n}', msgs[3].content)
    assert.are.equal('{\n  "answer": null\n}', msgs[5].content)
    assert.are.equal("[[ ## question ## ]]\nAnd of Germany?", msgs[4].content)
  end)

  it("refuse what is not a list of turns, at the caller's line", function()
    local ok, msg = pcall(chat.format, sig, {question = "q", history = "earlier"})
    assert.is_false(ok)
    assert.matches("input 'history' is typed history: pass a list of earlier turns", msg, 1, true)
    ok, msg = pcall(chat.format, sig, {question = "q", history = {"x"}})
    assert.is_false(ok)
    assert.matches("input 'history': turn 1 must be a table of field values, got string", msg, 1, true)
  end)

  it("cannot be an output", function()
    local ok, msg = pcall(tide.Signature, "question -> history: history")
    assert.is_false(ok)
    assert.matches("output 'history' is typed History, which only inputs may be", msg, 1, true)
  end)

  describe("against mockllm", function()
    local server
    setup(function() server = mockllm.start() end)
    teardown(function() server:stop() end)

    for _, p in ipairs(PROVIDERS) do
      it(p.name .. ": the turns go out as alternating messages the strict server takes", function()
        local lm = tide.LM(p.model, {api_key = "sk-spec", base_url = p.base(server),
                                     cache = false, num_retries = 0})
        local pr = tide.Predict(sig, {lm = lm})
        local out = pr({question = "Are you sure?", history = TURNS})
        assert.are.equal("Mock answer: Are you sure?", out.answer)   -- the last user turn's question
        local sent = lm.history[1].messages
        assert.are.equal(6, #sent)
        assert.are.same({"system", "user", "assistant", "user", "assistant", "user"},
          {sent[1].role, sent[2].role, sent[3].role, sent[4].role, sent[5].role, sent[6].role})
      end)
    end
  end)
end)
