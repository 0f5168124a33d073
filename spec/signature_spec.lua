local Signature = require "tide.signature"

local function types(list)
  local out = {}
  for i, f in ipairs(list) do out[i] = f.type.text end
  return out
end

describe("Signature", function()
  it("parses the string form, with types and DSPy's default instructions", function()
    local sig = Signature("question, context: list[str] -> answer: str, score: int")
    assert.are.same({"question", "context"}, sig:input_names())
    assert.are.same({"answer", "score"}, sig:output_names())
    assert.are.same({"str", "list[str]"}, types(sig.inputs))
    assert.are.same({"str", "int"}, types(sig.outputs))
    assert.are.same({kind = "list", of = {kind = "str", text = "str"}, text = "list[str]"},
      sig.inputs[2].type)
    assert.are.equal("question, context -> answer, score", tostring(sig))
    assert.are.equal(
      "Given the fields `question`, `context`, produce the fields `answer`, `score`.",
      sig.instructions)
  end)

  it("takes instructions, cleaned like a Python docstring", function()
    local sig = Signature("a -> b", "\n    Summarize the review.\n      Keep it short.\n  ")
    assert.are.equal("Summarize the review.\n  Keep it short.", sig.instructions)
    assert.are.equal("Given the fields `a`, produce the fields `b`.", Signature.new("a -> b").instructions)
  end)

  it("reads every type and writes DSPy's annotation for it", function()
    local sig = Signature("x -> a: float, b: bool, c: list[list[int]], d: dict, " ..
      "e: dict[str, list[float]], f: json, g: Any, h: Literal['yes', \"no\"], i: list, " ..
      "j: Literal[\"she's\", 'ok'], k: List[str], l: Dict[str, int]")
    assert.are.same({"float", "bool", "list[list[int]]", "dict", "dict[str, list[float]]", "Any",
      "Any", "Literal['yes', 'no']", "list", "Literal[\"she's\", 'ok']", "list[str]", "dict[str, int]"},
      types(sig.outputs))
    assert.are.same({"yes", "no"}, sig.outputs[8].type.values)
    assert.are.equal("enum", sig.outputs[8].type.kind)
    assert.are.equal("any", sig.outputs[6].type.kind)
  end)

  it("builds from the table form with descriptions, enums and optional fields", function()
    local sig = Signature{
      inputs = {{name = "content", desc = "the draft"}, "context"},
      outputs = {
        {name = "verdict", type = "one of: accept, reject, 'needs work'"},
        {name = "score", type = "int", optional = true, default = 0},
        "notes: list[str]",
      },
      instructions = "Review the draft.",
    }
    assert.are.same({"content", "context"}, sig:input_names())
    assert.are.equal("the draft", sig.inputs[1].desc)
    assert.are.equal("Literal['accept', 'reject', 'needs work']", sig.outputs[1].type.text)
    assert.is_true(sig.outputs[2].optional)
    assert.are.equal(0, sig.outputs[2].default)
    assert.are.equal("list[str]", sig.outputs[3].type.text)
    assert.are.equal("Review the draft.", sig.instructions)
    assert.are.equal("Other.", Signature(sig, "Other.").instructions)
    assert.are.equal(sig, Signature.new(sig))
  end)

  it("is a value: with_instructions, append, prepend and delete return new signatures", function()
    local sig = Signature("question -> answer")
    local cot = sig:prepend("reasoning", {type = "str", desc = "${reasoning}"}, "output")
    assert.are.same({"reasoning", "answer"}, cot:output_names())
    assert.are.same({"answer"}, sig:output_names())
    -- as in DSPy, the instructions stay as they were
    assert.are.equal(sig.instructions, cot.instructions)
    local more = sig:append("confidence", "float", "output"):append("context", {desc = "passages"}, "input")
    assert.are.same({"question", "context"}, more:input_names())
    assert.are.same({"answer", "confidence"}, more:output_names())
    assert.are.equal("float", more.outputs[2].type.text)
    assert.are.equal("passages", more.inputs[2].desc)
    local first = sig:prepend("context", "list[str]", "input")
    assert.are.same({"context", "question"}, first:input_names())
    local new = sig:with_instructions("Be brief.")
    assert.are.equal("Be brief.", new.instructions)
    assert.are_not.equal(sig.instructions, new.instructions)
    assert.are.same({"question"}, more:delete("context"):input_names())
    assert.are.same({"confidence"}, more:delete("answer"):output_names())
    assert.are.same({"question", "context"}, more:delete("nothing"):input_names())
    assert.are.equal("question -> answer", tostring(sig))
  end)

  it("names the offending part of a bad signature", function()
    local cases = {
      {"question answer", "no '->'"},
      {"a -> b -> c", "more than one '->'"},
      {"a, b -> a", "duplicate field name 'a'"},
      {"a -> b, b", "duplicate field name 'b'"},
      {"a -> b: number", "unknown type 'number'"},
      {"a -> b: list[str", "expected ']'"},
      {"a -> b: dict[int, str]", "dict keys must be str"},
      {"a, -> b", "empty field name"},
      {"a -> ", "no output fields"},
      {"a -> 2b", "bad field name '2b'"},
      {"a -> b c", "bad field name 'b c'"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(Signature, c[1])
      assert.is_false(ok, c[1])
      assert.truthy(tostring(err):find(c[2], 1, true), c[1] .. " gave: " .. tostring(err))
    end
    assert.has_error(function() Signature{inputs = {"a"}} end,
      "Signature: a table signature needs `inputs` and `outputs` lists")
    assert.has_error(function() Signature{inputs = {"a"}, outputs = {{name = "b", type = "one of:"}}} end)
    assert.has_error(function() Signature("a -> b"):append("c", "int", "sideways") end)
    assert.has_error(function() Signature("a -> b"):append("a", "int", "output") end)
    assert.has_error(function() Signature(42) end)
  end)

  it("append adds an output and prepend an input with the README's two arguments", function()
    local sig = Signature("question -> answer")
    local more = sig:append("confidence", "float")
    assert.are.same({"question"}, more:input_names())
    assert.are.same({"answer", "confidence"}, more:output_names())
    assert.are.equal("float", more.outputs[2].type.text)
    local ctx = sig:prepend("context", "list[str]")
    assert.are.same({"context", "question"}, ctx:input_names())
    assert.are.same({"answer"}, ctx:output_names())
    assert.are.equal("list[str]", ctx.inputs[1].type.text)
    local ok, err = pcall(sig.append, sig, "x", "int", "sideways")
    assert.is_false(ok)
    assert.matches("signature_spec%.lua:%d+: bad argument #3 to 'append' %(\"input\" or \"output\" " ..
      'expected, got "sideways"%)', err)
  end)

  it("lists the types beside an unknown one, with the likely one first", function()
    local ok, err = pcall(Signature, "question -> answer: integer")
    assert.is_false(ok)
    assert.matches("unknown type 'integer' %(did you mean 'int'%? the types are str, int, float, " ..
      "bool, list%[T%], dict%[str, T%], json, one of: a, b", err)
    ok, err = pcall(Signature, "q -> a: list[strng]")
    assert.is_false(ok)
    assert.matches("unknown type 'strng' in type 'list%[strng%]' %(the types are str, int", err)
  end)

  it("blames the line that built a Predict from a bad signature", function()
    local tide = require "tide"
    local ok, err = pcall(function()
      local p = tide.Predict("a -> b: integer")
      return p
    end)
    assert.is_false(ok)
    assert.matches("^[^:]*signature_spec%.lua:%d+: Signature: .*unknown type 'integer'", err)
  end)

  it("reports the caller's line for a bad signature", function()
    local ok, err = pcall(function()
      local sig = Signature("no arrow")
      return sig
    end)
    assert.is_false(ok)
    assert.matches("signature_spec.lua:%d+: Signature: no '%->'", err)
  end)
end)

describe("Signature string form, enums and optional fields", function()
  it("reads the untyped items after `one of:` as the enum's values", function()
    local sig = Signature("draft -> verdict: one of: accept, reject, revise, score: int")
    assert.are.same({"verdict", "score"}, sig:output_names())
    assert.are.same({"accept", "reject", "revise"}, sig.outputs[1].type.values)
    assert.are.equal("int", sig.outputs[2].type.text)
  end)

  it("takes Optional[T] and T | None as optional fields of type T", function()
    local sig = Signature("a -> b: Optional[int], c: list[str] | None, d: int")
    assert.is_true(sig.outputs[1].optional)
    assert.are.equal("int", sig.outputs[1].type.kind)
    assert.are.equal("Optional[int]", sig.outputs[1].type.text)
    assert.is_true(sig.outputs[2].optional)
    assert.are.equal("list", sig.outputs[2].type.kind)
    assert.is_nil(sig.outputs[3].optional)
    assert.has_error(function() Signature("a -> b: int | str") end,
      "Signature: outputs of 'a -> b: int | str': field 'b': only '| None' may follow a type in type 'int | str'")
  end)

  it("parses None for an optional field as absent, and a value as its type", function()
    local chat = require "tide.adapters.chat"
    local sig = Signature("a -> b: Optional[int], c")
    local v = chat.parse(sig, "[[ ## b ## ]]\nNone\n\n[[ ## c ## ]]\nok\n\n[[ ## completed ## ]]")
    assert.is_nil(v.b)
    assert.are.equal("ok", v.c)
    v = chat.parse(sig, "[[ ## b ## ]]\n7\n\n[[ ## c ## ]]\nok")
    assert.are.equal(7, v.b)
    assert.are.equal("integer", math.type(v.b))
  end)
end)
