-- The expected messages are DSPy's own (tests/adapters/test_chat_adapter.py in
-- stanfordnlp/dspy), translated to Lua: the same signature, inputs and demos must
-- give the same text, character for character.
local tide = require "tide"
local Signature = require "tide.signature"
local chat = require "tide.adapters.chat"
local assert_clean = require "support.clean"

local helpers = require "support.adapter_helpers"
local lines, user, assistant, system = helpers.lines, helpers.user, helpers.assistant,
  helpers.system
local function parse_error(sig, text) return helpers.parse_error(chat, sig, text) end

describe("chat adapter: messages", function()
  it("has its name", function() assert.are.equal("chat", chat.name) end)

  it("a simple signature (test_chat_adapter_format_exact_messages_for_simple_signature)", function()
    local sig = Signature("question: str -> answer: str", "Answer the question.")
    assert.are.same({
      system(lines{
        "Your input fields are:",
        "1. `question` (str):",
        "Your output fields are:",
        "1. `answer` (str):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "[[ ## answer ## ]]",
        "{answer}",
        "",
        "[[ ## completed ## ]]",
        "In adhering to this structure, your objective is: ",
        "        Answer the question.",
      }),
      user(lines{
        "[[ ## question ## ]]",
        "What is the capital of France?",
        "",
        "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, " ..
        "and then ending with the marker for `[[ ## completed ## ]]`.",
      }),
    }, chat.format(sig, {question = "What is the capital of France?"}, {}))
  end)

  it("typed outputs and a demo (..._with_demo_and_typed_outputs)", function()
    local sig = Signature("question -> answers: list[str], scores: list[float]",
      "Answer the question with multiple answers and scores")
    local demos = {{question = "Q1", answers = {"A1", "A2"}, scores = {0.1, 0.9}}}
    assert.are.same({
      system(lines{
        "Your input fields are:",
        "1. `question` (str):",
        "Your output fields are:",
        "1. `answers` (list[str]): ",
        "2. `scores` (list[float]):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "[[ ## answers ## ]]",
        '{answers}        # note: the value you produce must adhere to the JSON schema: ' ..
        '{"type": "array", "items": {"type": "string"}}',
        "",
        "[[ ## scores ## ]]",
        '{scores}        # note: the value you produce must adhere to the JSON schema: ' ..
        '{"type": "array", "items": {"type": "number"}}',
        "",
        "[[ ## completed ## ]]",
        "In adhering to this structure, your objective is: ",
        "        Answer the question with multiple answers and scores",
      }),
      user("[[ ## question ## ]]\nQ1"),
      assistant(lines{
        "[[ ## answers ## ]]",
        '["A1", "A2"]',
        "",
        "[[ ## scores ## ]]",
        "[0.1, 0.9]",
        "",
        "[[ ## completed ## ]]",
        "",
      }),
      user(lines{
        "[[ ## question ## ]]",
        "Q2",
        "",
        "Respond with the corresponding output fields, starting with the field `[[ ## answers ## ]]` " ..
        "(must be formatted as a valid Python list[str]), then `[[ ## scores ## ]]` (must be formatted " ..
        "as a valid Python list[float]), and then ending with the marker for `[[ ## completed ## ]]`.",
      }),
    }, chat.format(sig, {question = "Q2"}, demos))
  end)

  it("an incomplete demo comes first, marked, with the missing output noted (..._with_incomplete_demo)", function()
    local sig = Signature("question: str, context: str -> answer: str, confidence: float")
    local demos = {
      {question = "Q0", context = "C0", answer = "A0", confidence = 0.5},   -- complete: after
      {question = "Q1", answer = "A1"},                                       -- incomplete: first
      {question = "only inputs"},                                             -- dropped
      {answer = "only outputs"},                                              -- dropped
    }
    local msgs = chat.format(sig, {question = "Q2", context = "C2"}, demos)
    assert.are.equal(lines{
      "Your input fields are:",
      "1. `question` (str): ",
      "2. `context` (str):",
      "Your output fields are:",
      "1. `answer` (str): ",
      "2. `confidence` (float):",
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "",
      "[[ ## question ## ]]",
      "{question}",
      "",
      "[[ ## context ## ]]",
      "{context}",
      "",
      "[[ ## answer ## ]]",
      "{answer}",
      "",
      "[[ ## confidence ## ]]",
      "{confidence}        # note: the value you produce must be a single float value",
      "",
      "[[ ## completed ## ]]",
      "In adhering to this structure, your objective is: ",
      "        Given the fields `question`, `context`, produce the fields `answer`, `confidence`.",
    }, msgs[1].content)
    assert.are.same({
      user("This is an example of the task, though some input or output fields are not supplied.\n\n" ..
           "[[ ## question ## ]]\nQ1"),
      assistant("[[ ## answer ## ]]\nA1\n\n[[ ## confidence ## ]]\n" ..
                "Not supplied for this particular example.\n\n[[ ## completed ## ]]\n"),
      user("[[ ## question ## ]]\nQ0\n\n[[ ## context ## ]]\nC0"),
      assistant("[[ ## answer ## ]]\nA0\n\n[[ ## confidence ## ]]\n0.5\n\n[[ ## completed ## ]]\n"),
      user(lines{
        "[[ ## question ## ]]",
        "Q2",
        "",
        "[[ ## context ## ]]",
        "C2",
        "",
        "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, " ..
        "then `[[ ## confidence ## ]]` (must be formatted as a valid Python float), and then ending " ..
        "with the marker for `[[ ## completed ## ]]`.",
      }),
    }, {msgs[2], msgs[3], msgs[4], msgs[5], msgs[6]})
    assert.are.equal(6, #msgs)
  end)

  it("a Literal output (..._with_literal_output), and the table form's enum alike", function()
    local expected = {
      system(lines{
        "Your input fields are:",
        "1. `question` (str):",
        "Your output fields are:",
        "1. `verdict` (Literal['yes', 'no']):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "[[ ## verdict ## ]]",
        "{verdict}        # note: the value you produce must exactly match (no extra characters) one of: yes; no",
        "",
        "[[ ## completed ## ]]",
        "In adhering to this structure, your objective is: ",
        "        Given the fields `question`, produce the fields `verdict`.",
      }),
      user(lines{
        "[[ ## question ## ]]",
        "Is the sky blue?",
        "",
        "Respond with the corresponding output fields, starting with the field `[[ ## verdict ## ]]` " ..
        "(must be formatted as a valid Python Literal['yes', 'no']), and then ending with the marker " ..
        "for `[[ ## completed ## ]]`.",
      }),
    }
    local inputs = {question = "Is the sky blue?"}
    assert.are.same(expected, chat.format(Signature("question -> verdict: Literal['yes', 'no']"), inputs))
    local tabled = Signature{inputs = {"question"}, outputs = {{name = "verdict", type = "one of: yes, no"}}}
    assert.are.same(expected, chat.format(tabled, inputs, {}))
  end)

  it("Literal values quoted as Python does (..._quotes_literals_as_expected)", function()
    local function system_of(spec)
      return chat.format(Signature(spec), {input_text = "x"})[1].content
    end
    assert.truthy(system_of([=[input_text -> output_text: Literal["she's here", 'okay', 'test']]=])
      :find([=[(Literal["she's here", 'okay', 'test'])]=], 1, true))
    assert.truthy(system_of([=[input_text -> output_text: Literal['four', 'five', 'six"']]=])
      :find([=[(Literal['four', 'five', 'six"'])]=], 1, true))
    assert.truthy(system_of([=[input_text -> output_text: Literal['yet"another\'', 'plain']]=])
      :find([=[(Literal['yet"another\'', 'plain'])]=], 1, true))
  end)

  it("a list for a str input is numbered (..._with_list_value_for_string_input)", function()
    local msgs = chat.format(Signature("context: str -> answer: str"), {context = {"alpha", "beta"}})
    assert.are.equal(lines{
      "[[ ## context ## ]]",
      "[1] «alpha»",
      "[2] «beta»",
      "",
      "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, " ..
      "and then ending with the marker for `[[ ## completed ## ]]`.",
    }, msgs[2].content)
    -- one item, none, and text with line breaks, as DSPy's _format_blob writes them
    local sig = Signature("context -> answer")
    assert.matches("^%[%[ ## context ## %]%]\n«only»\n\n", chat.format(sig, {context = {"only"}})[2].content)
    assert.matches("^%[%[ ## context ## %]%]\nN/A\n\n", chat.format(sig, {context = {}})[2].content)
    assert.truthy(chat.format(sig, {context = {"a\nb", "c"}})[2].content
      :find("[1] «««\n    a\n    b\n»»»\n[2] «c»", 1, true))
  end)

  it("a list[str] input, dict and numbers are JSON or Python text", function()
    local sig = Signature("passages: list[str], meta: dict, n: int, x: float, ok: bool, q -> answer")
    local msgs = chat.format(sig, {passages = {"a \"quoted\" é", "b/c"}, meta = {k = {1, 2.5}, e = {}},
      n = 3, x = 1e-7, ok = true, q = "plain"})
    assert.are.equal(lines{
      "[[ ## passages ## ]]",
      '["a \\"quoted\\" é", "b/c"]',
      "",
      "[[ ## meta ## ]]",
      '{"e": [], "k": [1, 2.5]}',
      "",
      "[[ ## n ## ]]",
      "3",
      "",
      "[[ ## x ## ]]",
      "1e-07",
      "",
      "[[ ## ok ## ]]",
      "True",
      "",
      "[[ ## q ## ]]",
      "plain",
      "",
      "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, " ..
      "and then ending with the marker for `[[ ## completed ## ]]`.",
    }, msgs[2].content)
    assert.truthy(msgs[1].content:find("2. `meta` (dict): \n3. `n` (int): \n", 1, true))
  end)

  it("descriptions, dict and enum notes and multi-line instructions", function()
    local sig = Signature{
      inputs = {{name = "input1", desc = "The text"}},
      outputs = {
        {name = "output1", desc = "String output field"},
        {name = "metadata", type = "dict[str, int]"},
        {name = "anything", type = "json"},
        {name = "tags", type = "list[Literal['a', 'b']]"},
      },
      instructions = "Line one.\n\nLine three.",
    }
    assert.are.equal(lines{
      "Your input fields are:",
      "1. `input1` (str): The text",
      "Your output fields are:",
      "1. `output1` (str): String output field",
      "2. `metadata` (dict[str, int]): ",
      "3. `anything` (Any): ",
      "4. `tags` (list[Literal['a', 'b']]):",
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "",
      "[[ ## input1 ## ]]",
      "{input1}",
      "",
      "[[ ## output1 ## ]]",
      "{output1}",
      "",
      "[[ ## metadata ## ]]",
      '{metadata}        # note: the value you produce must adhere to the JSON schema: ' ..
      '{"type": "object", "additionalProperties": {"type": "integer"}}',
      "",
      "[[ ## anything ## ]]",
      "{anything}        # note: the value you produce must adhere to the JSON schema: {}",
      "",
      "[[ ## tags ## ]]",
      '{tags}        # note: the value you produce must adhere to the JSON schema: ' ..
      '{"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}',
      "",
      "[[ ## completed ## ]]",
      "In adhering to this structure, your objective is: ",
      "        Line one.",
      "        ",
      "        Line three.",
    }, chat.format(sig, {input1 = "x"})[1].content)
  end)
end)

describe("chat adapter: parse", function()
  local sig = Signature("question -> answer, score: int, approved: bool")

  it("reads fields by markers and coerces them by type", function()
    local out = chat.parse(sig, lines{
      "[[ ## answer ## ]]", "Paris", "", "[[ ## score ## ]]", "85", "",
      "[[ ## approved ## ]]", "True", "", "[[ ## completed ## ]]",
    })
    assert.are.same({answer = "Paris", score = 85, approved = true}, out)
    assert.are.equal("integer", math.type(out.score))
  end)

  it("takes a value on the marker's line, trims, keeps inner lines and unicode", function()
    local out = chat.parse(sig, "Some preamble.\n[[ ## answer ## ]]  Zürich — 東京 🚀 \n  second line\n\n" ..
      "   [[ ## score ## ]] 7 \n[[ ## approved ## ]]\nno")
    assert.are.same({answer = "Zürich — 東京 🚀\n  second line", score = 7, approved = false}, out)
  end)

  it("the first occurrence wins, unknown markers are skipped, text after completed is ignored", function()
    local out = chat.parse(sig, lines{
      "[[ ## answer ## ]]", "first", "[[ ## notes ## ]]", "ignored", "[[ ## answer ## ]]", "second",
      "[[ ## score ## ]]", "1", "[[ ## approved ## ]]", "false", "[[ ## completed ## ]]",
      "[[ ## score ## ]]", "2", "trailing chatter",
    })
    assert.are.same({answer = "first", score = 1, approved = false}, out)
    local err = parse_error(sig, "[[ ## answer ## ]]\nA\n[[ ## completed ## ]]\n[[ ## score ## ]]\n3")
    assert.are.same({"answer"}, err.found)
    assert.are.same({"score", "approved"}, err.missing)
  end)

  it("CRLF line breaks", function()
    assert.are.same({answer = "a", score = 2, approved = true},
      chat.parse(sig, "[[ ## answer ## ]]\r\na\r\n\r\n[[ ## score ## ]]\r\n2\r\n[[ ## approved ## ]]\r\nyes\r\n"))
  end)

  it("a missing field is a parse error with the raw reply, found and missing", function()
    local err = parse_error(sig, "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]")
    assert.are.same({"answer"}, err.found)
    assert.are.same({"score", "approved"}, err.missing)
    assert.matches("lacks the fields score, approved", err.message)
    err = parse_error(sig, "Paris, 85, yes")
    assert.are.same({}, err.found)
    assert.are.same({"answer", "score", "approved"}, err.missing)
    parse_error(sig, "")
    parse_error(sig, "[[ ##answer## ]]\nParis")       -- not a marker
  end)

  it("a value that is not of its type is a parse error naming the field and the type", function()
    local function bad(score_text, want)
      local err = parse_error(sig, "[[ ## answer ## ]]\nx\n[[ ## score ## ]]\n" .. score_text ..
        "\n[[ ## approved ## ]]\nTrue")
      assert.are.equal("score", err.field)
      assert.truthy(err.message:find("field `score` must be int", 1, true), err.message)
      if want then assert.truthy(err.message:find(want, 1, true), err.message) end
      assert.are.same({"answer", "score", "approved"}, err.found)
      return err
    end
    bad("85.5", "fractional part")
    bad("85.")
    bad("eighty-five")
    bad("85/100")
    bad("[85]")
    bad("True")
    bad("")
    local err = parse_error(sig, "[[ ## answer ## ]]\nx\n[[ ## score ## ]]\n1\n[[ ## approved ## ]]\nmaybe")
    assert.truthy(err.message:find("field `approved` must be bool", 1, true))
  end)

  -- {text, type, expected value} read as DSPy (json_repair / literal_eval + pydantic) reads them.
  local GOOD = {
    {"85", "int", 85}, {" 85 ", "int", 85}, {"85.0", "int", 85}, {"-3", "int", -3}, {"1e3", "int", 1000},
    {"2.5", "float", 2.5}, {"3", "float", 3.0}, {"-0.25", "float", -0.25}, {"1.5e2", "float", 150.0},
    {"True", "bool", true}, {"false", "bool", false}, {"yes", "bool", true}, {"No", "bool", false},
    {"1", "bool", true}, {"0", "bool", false},
    {'["a", "b"]', "list[str]", {"a", "b"}}, {"['a', 'b']", "list[str]", {"a", "b"}},
    {"('a', 'b',)", "list[str]", {"a", "b"}}, {"[]", "list[int]", {}},
    {"[1, 2.0, '3']", "list[int]", {1, 2, 3}}, {"[[1], [2, 3]]", "list[list[int]]", {{1}, {2, 3}}},
    {"{'a': 1, \"b\": [True, None]}", "dict", {a = 1, b = {true, require("cjson").null}}},
    {'{"x": 1, "y": 2}', "dict[str, int]", {x = 1, y = 2}},
    {'{"x": "1"}', "dict[str, float]", {x = 1.0}},
    {"yes", "Literal['yes', 'no']", "yes"}, {"'no'", "Literal['yes', 'no']", "no"},
    {"Literal['no']", "Literal['yes', 'no']", "no"}, {" Yes ", "Literal['yes', 'no']", "yes"},
    {'"Needs Work"', "Literal['needs work', 'done']", "needs work"},
    {"plain text", "json", "plain text"}, {"[1, 2.5, null]", "json", {1, 2.5, require("cjson").null}},
    {"'\\u00e9t\\u00e9'", "str", "'\\u00e9t\\u00e9'"}, {'"\\u00e9t\\u00e9"', "list[str]", nil},
    {'["\\u00e9t\\u00e9 \\ud83d\\ude00"]', "list[str]", {"été 😀"}},
  }

  it("coerces a table of good values", function()
    for _, case in ipairs(GOOD) do
      local text, ty, want = case[1], case[2], case[3]
      local s = Signature("q -> v: " .. ty)
      if want == nil then
        parse_error(s, "[[ ## v ## ]]\n" .. text)
      else
        local got = chat.parse(s, "[[ ## v ## ]]\n" .. text).v
        if type(want) == "table" then
          assert.are.same(want, got, text .. " as " .. ty)
        else
          assert.are.equal(want, got, text .. " as " .. ty)
          assert.are.equal(math.type(want), math.type(got), text .. " as " .. ty)
        end
      end
    end
  end)

  it("keeps JSON null as cjson.null inside JSON values", function()
    local v = chat.parse(Signature("q -> v: json"), "[[ ## v ## ]]\n[1, null]").v
    assert.are.equal(require("cjson").null, v[2])
  end)

  local BAD = {
    {"a, b", "list[str]"}, {"[1, 2", "list[int]"}, {'["a", 1]', "list[str]"}, {"[1.5]", "list[int]"},
    {"{'a': 'x'}", "dict[str, int]"}, {"[1, 2]", "dict"}, {"{1: 2}", "dict"},
    {"maybe", "Literal['yes', 'no']"}, {"yes please", "Literal['yes', 'no']"},
    {"nan-ish", "float"}, {"3.", "float"}, {"0x10", "int"}, {"1,000", "int"}, {"two", "bool"},
  }

  it("rejects a table of hostile values", function()
    for _, case in ipairs(BAD) do
      local err = parse_error(Signature("q -> v: " .. case[2]), "[[ ## v ## ]]\n" .. case[1])
      assert.truthy(err.message:find("must be " .. case[2], 1, true), err.message)
    end
  end)

  it("an optional field takes its default when missing", function()
    local s = Signature{inputs = {"q"}, outputs = {"answer",
      {name = "score", type = "int", optional = true, default = 5},
      {name = "note", optional = true}}}
    assert.are.same({answer = "x", score = 5}, chat.parse(s, "[[ ## answer ## ]]\nx"))
    assert.are.same({answer = "x", score = 9, note = "n"},
      chat.parse(s, "[[ ## answer ## ]]\nx\n[[ ## score ## ]]\n9\n[[ ## note ## ]]\nn"))
  end)
end)

describe("chat adapter with a DummyLM", function()
  it("format, lm:call, parse", function()
    local sig = Signature("content, context -> score: int, feedback, approved: bool",
      "Evaluate content from a TECHNICAL accuracy perspective.")
    local lm = tide.DummyLM(function(messages)
      assert.are.equal("system", messages[1].role)
      assert.truthy(messages[#messages].content:find("[[ ## content ## ]]\na draft", 1, true))
      return "[[ ## score ## ]]\n85\n\n[[ ## feedback ## ]]\nTighten the intro.\n\n" ..
             "[[ ## approved ## ]]\nTrue\n\n[[ ## completed ## ]]"
    end)
    local messages = chat.format(sig, {content = "a draft", context = "B2B SaaS outreach"})
    local r = lm:call{messages = messages}
    local out = chat.parse(sig, r.text)
    assert.are.equal(86, out.score + 1)
    assert.are.equal("integer", math.type(out.score))
    assert.are.equal("Tighten the intro.", out.feedback)
    assert.is_true(out.approved)
    assert.are.same(messages, lm.history[#lm.history].messages)
  end)
end)

describe("chat adapter: call, and its JSON fallback", function()
  after_each(assert_clean)

  local sig = Signature("question -> answer: int")

  it("formats, asks the LM and parses every reply", function()
    local lm = tide.DummyLM{"[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"}
    local outs = chat.call(lm, sig, {question = "q"}, {config = {temperature = 0}})
    assert.are.same({{answer = 42}}, outs)
    assert.are.same(chat.format(sig, {question = "q"}), lm.history[1].messages)
  end)

  it("falls back to the JSON adapter itself, as DSPy's ChatAdapter does", function()
    local lm = tide.DummyLM{"no markers at all", '{"answer": 7}'}
    local outs = chat.call(lm, sig, {question = "q"}, {})
    assert.are.same({{answer = 7}}, outs)
    assert.are.equal(2, #lm.history)
    assert.are.same(require("tide.adapters.json").format(sig, {question = "q"}),
      lm.history[2].messages)
  end)

  it("asks again first (parse_retries), and not at all with fallback = false", function()
    local lm = tide.DummyLM{"garbage", "[[ ## answer ## ]]\n5"}
    assert.are.same({{answer = 5}}, chat.call(lm, sig, {question = "q"}, {parse_retries = 1}))
    local last = lm.history[2].messages
    assert.matches("could not be parsed", last[#last].content)
    local lone = tide.DummyLM{"garbage", '{"answer": 7}'}
    local ok, err = pcall(chat.call, lone, sig, {question = "q"}, {fallback = false})
    assert.is_false(ok)
    assert.are.equal("parse", err.kind)
    assert.are.equal("chat", err.adapter)
    assert.are.equal(1, #lone.history)
  end)

  it("raises the JSON try's error when both fail, and the JSON adapter has no fallback", function()
    local lm = tide.DummyLM{"garbage", "still garbage", "and more"}
    local ok, err = pcall(chat.call, lm, sig, {question = "q"}, {})
    assert.is_false(ok)
    assert.are.equal("json", err.adapter)
    assert.are.equal(2, #lm.history)
    local json = require "tide.adapters.json"
    assert.is_nil(json.fallback)
    ok, err = pcall(json.call, lm, sig, {question = "q"}, {})
    assert.is_false(ok)
    assert.are.equal("json", err.adapter)
    assert.are.equal(3, #lm.history)
  end)
end)
