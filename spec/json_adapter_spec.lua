-- The expected messages are DSPy's own (tests/adapters/test_json_adapter.py in
-- stanfordnlp/dspy), translated to Lua.
local tide = require "tide"
local cjson = require "cjson"
local Signature = require "tide.signature"
local json = require "tide.adapters.json"

local helpers = require "support.adapter_helpers"
local lines, user, assistant, system = helpers.lines, helpers.user, helpers.assistant,
  helpers.system
local function parse_error(sig, text) return helpers.parse_error(json, sig, text) end

describe("json adapter: messages", function()
  it("has its name", function() assert.are.equal("json", json.name) end)

  it("a simple signature (test_json_adapter_format_exact_messages_for_simple_signature)", function()
    assert.are.same({
      system(lines{
        "Your input fields are:",
        "1. `question` (str):",
        "Your output fields are:",
        "1. `answer` (str):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "Inputs will have the following structure:",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "Outputs will be a JSON object with the following fields.",
        "",
        "{",
        '  "answer": "{answer}"',
        "}",
        "In adhering to this structure, your objective is: ",
        "        Given the fields `question`, produce the fields `answer`.",
      }),
      user(lines{
        "[[ ## question ## ]]",
        "What is the capital of France?",
        "",
        "Respond with a JSON object in the following order of fields: `answer`.",
      }),
    }, json.format(Signature("question: str -> answer: str"), {question = "What is the capital of France?"}, {}))
  end)

  it("a demo and a typed output (..._with_demo_and_typed_output)", function()
    local sig = Signature("question -> answer, confidence: float")
    assert.are.same({
      system(lines{
        "Your input fields are:",
        "1. `question` (str):",
        "Your output fields are:",
        "1. `answer` (str): ",
        "2. `confidence` (float):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "Inputs will have the following structure:",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "Outputs will be a JSON object with the following fields.",
        "",
        "{",
        '  "answer": "{answer}",',
        '  "confidence": "{confidence}        # note: the value you produce must be a single float value"',
        "}",
        "In adhering to this structure, your objective is: ",
        "        Given the fields `question`, produce the fields `answer`, `confidence`.",
      }),
      user("[[ ## question ## ]]\nQ1"),
      assistant('{\n  "answer": "A1",\n  "confidence": 0.9\n}'),
      user(lines{
        "[[ ## question ## ]]",
        "Q2",
        "",
        "Respond with a JSON object in the following order of fields: `answer`, then `confidence` " ..
        "(must be formatted as a valid Python float).",
      }),
    }, json.format(sig, {question = "Q2"}, {{question = "Q1", answer = "A1", confidence = 0.9}}))
  end)

  it("a described output and a bool (..._with_described_and_bool_outputs)", function()
    local sig = Signature{inputs = {"input1"},
      outputs = {{name = "output1", desc = "String output field"}, {name = "output2", type = "bool"}}}
    local msgs = json.format(sig, {input1 = "Test input"})
    assert.are.equal(lines{
      "Your input fields are:",
      "1. `input1` (str):",
      "Your output fields are:",
      "1. `output1` (str): String output field",
      "2. `output2` (bool):",
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "",
      "Inputs will have the following structure:",
      "",
      "[[ ## input1 ## ]]",
      "{input1}",
      "",
      "Outputs will be a JSON object with the following fields.",
      "",
      "{",
      '  "output1": "{output1}",',
      '  "output2": "{output2}        # note: the value you produce must be True or False"',
      "}",
      "In adhering to this structure, your objective is: ",
      "        Given the fields `input1`, produce the fields `output1`, `output2`.",
    }, msgs[1].content)
    assert.are.equal(lines{
      "[[ ## input1 ## ]]",
      "Test input",
      "",
      "Respond with a JSON object in the following order of fields: `output1`, then `output2` " ..
      "(must be formatted as a valid Python bool).",
    }, msgs[2].content)
  end)

  it("int and mapping outputs (..._with_int_and_mapping_outputs)", function()
    local msgs = json.format(Signature("question -> count: int, metadata: dict[str, int]"),
      {question = "Count things"})
    assert.are.same({
      system(lines{
        "Your input fields are:",
        "1. `question` (str):",
        "Your output fields are:",
        "1. `count` (int): ",
        "2. `metadata` (dict[str, int]):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "Inputs will have the following structure:",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "Outputs will be a JSON object with the following fields.",
        "",
        "{",
        '  "count": "{count}        # note: the value you produce must be a single int value",',
        '  "metadata": "{metadata}        # note: the value you produce must adhere to the JSON schema: ' ..
        '{\\"type\\": \\"object\\", \\"additionalProperties\\": {\\"type\\": \\"integer\\"}}"',
        "}",
        "In adhering to this structure, your objective is: ",
        "        Given the fields `question`, produce the fields `count`, `metadata`.",
      }),
      user(lines{
        "[[ ## question ## ]]",
        "Count things",
        "",
        "Respond with a JSON object in the following order of fields: `count` (must be formatted as a " ..
        "valid Python int), then `metadata` (must be formatted as a valid Python dict[str, int]).",
      }),
    }, msgs)
  end)

  it("a Literal output (the Literal half of ..._with_literal_and_enum_outputs)", function()
    local msgs = json.format(Signature("text -> decision: Literal['accept', 'reject']"), {text = "Looks good"})
    assert.truthy(msgs[1].content:find(lines{
      "{",
      '  "decision": "{decision}        # note: the value you produce must exactly match ' ..
      '(no extra characters) one of: accept; reject"',
      "}",
    }, 1, true))
    assert.truthy(msgs[2].content:find("Respond with a JSON object in the following order of fields: " ..
      "`decision` (must be formatted as a valid Python Literal['accept', 'reject']).", 1, true))
  end)

  it("an incomplete demo (..._with_incomplete_demo)", function()
    local sig = Signature("question: str, context: str -> answer: str, score: float")
    local msgs = json.format(sig, {question = "Q2", context = "C2"}, {{question = "Q1", answer = "A1"}})
    assert.are.equal(lines{
      "Your input fields are:",
      "1. `question` (str): ",
      "2. `context` (str):",
      "Your output fields are:",
      "1. `answer` (str): ",
      "2. `score` (float):",
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "",
      "Inputs will have the following structure:",
      "",
      "[[ ## question ## ]]",
      "{question}",
      "",
      "[[ ## context ## ]]",
      "{context}",
      "",
      "Outputs will be a JSON object with the following fields.",
      "",
      "{",
      '  "answer": "{answer}",',
      '  "score": "{score}        # note: the value you produce must be a single float value"',
      "}",
      "In adhering to this structure, your objective is: ",
      "        Given the fields `question`, `context`, produce the fields `answer`, `score`.",
    }, msgs[1].content)
    assert.are.same({
      user("This is an example of the task, though some input or output fields are not supplied.\n\n" ..
           "[[ ## question ## ]]\nQ1"),
      assistant('{\n  "answer": "A1",\n  "score": "Not supplied for this particular example. "\n}'),
      user(lines{
        "[[ ## question ## ]]",
        "Q2",
        "",
        "[[ ## context ## ]]",
        "C2",
        "",
        "Respond with a JSON object in the following order of fields: `answer`, then `score` " ..
        "(must be formatted as a valid Python float).",
      }),
    }, {msgs[2], msgs[3], msgs[4]})
  end)

  it("nested demo values as Python's json.dumps(indent=2) writes them", function()
    local sig = Signature("q -> tags: list[str], meta: dict, empty: list[int], none: dict")
    local msgs = json.format(sig, {q = "x"},
      {{q = "d", tags = {"a", "b"}, meta = {k = {1, 2.5}, s = "é/\n"}, empty = {}, none = {}}})
    assert.are.equal(lines{
      "{",
      '  "tags": [',
      '    "a",',
      '    "b"',
      "  ],",
      '  "meta": {',
      '    "k": [',
      "      1,",
      "      2.5",
      "    ],",
      '    "s": "é/\\n"',
      "  },",
      '  "empty": [],',
      '  "none": {}',
      "}",
    }, msgs[3].content)
  end)
end)

describe("json adapter: response_format", function()
  it("asks for a strict JSON schema of the outputs", function()
    local rf = json.response_format(Signature("q -> answer, score: int, ok: bool, x: float, " ..
      "tags: list[str], v: Literal['a', 'b']"))
    assert.are.same({
      type = "json_schema", name = "outputs", strict = true,
      schema = {
        type = "object",
        properties = {
          answer = {type = "string"}, score = {type = "integer"}, ok = {type = "boolean"},
          x = {type = "number"}, tags = {type = "array", items = {type = "string"}},
          v = {type = "string", enum = {"a", "b"}},
        },
        required = {"answer", "score", "ok", "x", "tags", "v"},
        additionalProperties = false,
      },
    }, rf)
    -- it encodes, and the providers take it
    assert.is_string(cjson.encode(rf))
  end)

  it("falls back to JSON mode for open-ended outputs, as DSPy does", function()
    assert.are.same({type = "json_object"}, json.response_format(Signature("q -> m: dict[str, int]")))
    assert.are.same({type = "json_object"}, json.response_format(Signature("q -> a, m: json")))
    assert.are.same({type = "json_object"}, json.response_format(Signature("q -> l: list")))
  end)
end)

describe("json adapter: parse", function()
  local sig = Signature("question -> answer, score: int, approved: bool")

  it("reads a JSON object and coerces by type", function()
    local out = json.parse(sig, '{"answer": "Paris", "score": 85, "approved": true}')
    assert.are.same({answer = "Paris", score = 85, approved = true}, out)
    assert.are.equal("integer", math.type(out.score))
  end)

  it("finds the object inside a code fence or prose, and ignores extra keys", function()
    local want = {answer = "Zürich 🚀", score = 7, approved = false}
    assert.are.same(want, json.parse(sig,
      '```json\n{"answer": "Zürich 🚀", "score": "7", "approved": "no", "extra": [1]}\n```'))
    assert.are.same(want, json.parse(sig,
      'Sure! Here it is: {"answer": "Zürich \\ud83d\\ude80", "score": 7.0, "approved": false} Hope it helps {}'))
    assert.are.same(want, json.parse(sig,
      "{'answer': 'Zürich 🚀', 'score': 7, 'approved': False}"))
    assert.are.same({answer = "a } b", score = 1, approved = true},
      json.parse(sig, 'text {"answer": "a } b", "score": 1, "approved": "True"} more'))
  end)

  it("a number for a str field is its text, as Python's str() gives it", function()
    assert.are.same({answer = "42", score = 1, approved = true},
      json.parse(sig, '{"answer": 42, "score": 1, "approved": true}'))
  end)

  it("no object, a missing field or a bad value is a parse error", function()
    local err = parse_error(sig, "I think the answer is Paris.")
    assert.are.same({}, err.found)
    assert.are.same({"answer", "score", "approved"}, err.missing)
    parse_error(sig, '["a", "list"]')
    err = parse_error(sig, '{"answer": "Paris"}')
    assert.are.same({"answer"}, err.found)
    assert.are.same({"score", "approved"}, err.missing)
    assert.matches("lacks the fields score, approved", err.message)
    err = parse_error(sig, '{"answer": "Paris", "score": 85.5, "approved": true}')
    assert.are.equal("score", err.field)
    assert.truthy(err.message:find("field `score` must be int", 1, true))
    err = parse_error(sig, '{"answer": "Paris", "score": "high", "approved": true}')
    assert.are.equal("score", err.field)
    parse_error(sig, '{"answer": "Paris", "score": 1, "approved": "perhaps"}')
    parse_error(sig, '{"answer": "Paris", "score": null, "approved": true}')
  end)

  it("typed containers and enums", function()
    local s = Signature("q -> tags: list[str], m: dict[str, float], v: Literal['yes', 'no'], any: json")
    local out = json.parse(s, '{"tags": "[\'a\', \'b\']", "m": {"x": 1}, "v": "Yes", "any": {"k": [1, null]}}')
    assert.are.same({tags = {"a", "b"}, m = {x = 1.0}, v = "yes", any = {k = {1, cjson.null}}}, out)
    assert.are.equal("float", math.type(out.m.x))
    parse_error(s, '{"tags": [1], "m": {}, "v": "yes", "any": 1}')
    parse_error(s, '{"tags": [], "m": {"x": "y"}, "v": "yes", "any": 1}')
    parse_error(s, '{"tags": [], "m": {}, "v": "maybe", "any": 1}')
  end)

  it("an optional field takes its default when missing or null", function()
    local s = Signature{inputs = {"q"}, outputs = {"answer", {name = "n", type = "int", optional = true, default = 3}}}
    assert.are.same({answer = "a", n = 3}, json.parse(s, '{"answer": "a"}'))
    assert.are.same({answer = "a", n = 3}, json.parse(s, '{"answer": "a", "n": null}'))
  end)
end)

describe("json adapter with a DummyLM", function()
  it("format, lm:call with response_format, parse", function()
    local sig = Signature("question -> answer: float")
    local lm = tide.DummyLM{'```json\n{"answer": 10}\n```'}
    local r = lm:call{messages = json.format(sig, {question = "What is 2.5 * 4?"}),
                      response_format = json.response_format(sig)}
    local out = json.parse(sig, r.text)
    assert.are.equal(10.0, out.answer)
    assert.are.equal("float", math.type(out.answer))
    assert.truthy(lm.history[1].messages[2].content:find("`answer` (must be formatted as a valid Python float)",
      1, true))
  end)
end)
