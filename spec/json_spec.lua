--- tide.json: cjson's decode with JSON's integers as Lua integers, its floats as
-- floats and null as tide.json.null, whatever strings hold.
local tide = require "tide"
local cjson = require "cjson"

local json = tide.json

describe("tide.json", function()
  it("is the module tide exposes, with cjson's null", function()
    assert.are.equal(require("tide.json"), json)
    assert.are.equal(cjson.null, json.null)
    assert.are.equal('{"a":1}', json.encode{a = 1})
  end)

  it("decodes a number without fraction or exponent as an integer, others as floats", function()
    local v = json.decode('{"n": 38, "neg": -12, "zero": 0, "x": 1.0, "f": 1.5, "e": 2e3,'
      .. ' "E": 3E+1, "ef": 2.5e-1, "nested": {"list": [1, 2.0, 3, [4, 4.00]]}}')
    assert.are.equal(38, v.n); assert.are.equal("integer", math.type(v.n))
    assert.are.equal("integer", math.type(v.neg))
    assert.are.equal("integer", math.type(v.zero))
    assert.are.equal(1.0, v.x); assert.are.equal("float", math.type(v.x))
    assert.are.equal("float", math.type(v.f))
    assert.are.equal(2000.0, v.e); assert.are.equal("float", math.type(v.e))
    assert.are.equal("float", math.type(v.E))
    assert.are.equal(0.25, v.ef)
    local list = v.nested.list
    assert.are.same({"integer", "float", "integer"},
      {math.type(list[1]), math.type(list[2]), math.type(list[3])})
    assert.are.same({"integer", "float"}, {math.type(list[4][1]), math.type(list[4][2])})
    assert.are.equal("integer", math.type(json.decode("7")))
    assert.are.equal("float", math.type(json.decode("7.0")))
  end)

  it("reads numbers the way Lua's tonumber reads their text, past 2^53 too", function()
    local v = json.decode('[9007199254740993, -9007199254740993, 123456789012345678901234, 1e400]')
    assert.are.equal(9007199254740993, v[1])            -- cjson alone: ...992.0
    assert.are.equal("integer", math.type(v[1]))
    assert.are.equal(-9007199254740993, v[2])
    assert.are.equal("float", math.type(v[3]))          -- past 64 bits, as tonumber gives it
    assert.are.equal(math.huge, v[4])
  end)

  it("keeps null as tide.json.null", function()
    local v = json.decode('{"a": null, "b": [null, 1]}')
    assert.are.equal(json.null, v.a)
    assert.are.equal(json.null, v.b[1])
    assert.are.equal("integer", math.type(v.b[2]))
  end)

  it("leaves strings that look like numbers, escapes and its own markers alone", function()
    local text = [[{"s": "1.0, 2e3, 38", "q": "a \"quoted\" 1.0, and\\", "k": 1.0,]]
      .. [[ "m": "\u0001tide-number#1", "id": "fp_3e5c1d2e0f", "n": 5}]]
    local v = json.decode(text)
    assert.are.equal("1.0, 2e3, 38", v.s)
    assert.are.equal('a "quoted" 1.0, and\\', v.q)
    assert.are.equal("\1tide-number#1", v.m)
    assert.are.equal("fp_3e5c1d2e0f", v.id)
    assert.are.equal("float", math.type(v.k))
    assert.are.equal("integer", math.type(v.n))
    -- keys with numbers in them stay keys
    v = json.decode('{"1.0": 1.0, "2e3": 2}')
    assert.are.equal("float", math.type(v["1.0"]))
    assert.are.equal("integer", math.type(v["2e3"]))
  end)

  it("walks nesting as deep as cjson decodes", function()
    for _, leaf in ipairs{"1", "1.0"} do
      local v = json.decode(("["):rep(999) .. leaf .. ("]"):rep(999))
      for _ = 1, 999 do v = v[1] end
      assert.are.equal(leaf == "1" and "integer" or "float", math.type(v))
    end
  end)

  it("raises cjson's error for text that is not JSON", function()
    assert.is_false(pcall(json.decode, '{"a": '))
    assert.is_false(pcall(json.decode, '{"a": "unterminated'))
    assert.is_false(pcall(json.decode, '{"a": 1.0'))
  end)

  it("agrees with cjson on every value of a real completion, numbers typed by their text", function()
    local body = [[{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","created":1741569952,
      "choices":[{"index":0,"message":{"role":"assistant","content":"v2.5 is 1e3 times 1.0"},
      "logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,
      "total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}},"temperature":1.0,
      "system_fingerprint":"fp_3e5c1d2e0f"}]]
    local ours, theirs = json.decode(body), cjson.decode(body)
    assert.are.same(theirs, ours)   -- equal values (38 == 38.0)
    assert.are.equal("integer", math.type(ours.usage.prompt_tokens))
    assert.are.equal("integer", math.type(ours.created))
    assert.are.equal("float", math.type(ours.temperature))
    assert.are.equal("v2.5 is 1e3 times 1.0", ours.choices[1].message.content)
  end)
end)

describe("tide.json's fast path in the core", function()
  local core = require "tide.core"

  it("json_scan finds the numbers decode must read from the text, and only those", function()
    local special = {'{"a": 1.0}', '{"a": [2e3]}', '{"a": 1.5e1}', '-3.00', '{"x": 12345678901234567}',
      '{"a": "x", "b": 4.0}', '[1,2.0]'}
    local plain = {'{"a": 1}', '{"a": 1.5}', '{"id": "fp_3e5c", "n": 3}', '{"s": "1.0 and 2e3"}',
      '{"s": "a\\"1.0", "n": 7}', '{"t": true, "f": false, "z": null}', '{"n": 123456789012345}',
      '{"x": 2.5e-1}', ''}
    for _, text in ipairs(special) do assert.is_true(core.json_scan(text), text) end
    for _, text in ipairs(plain) do assert.is_false(core.json_scan(text), text) end
  end)

  it("json_integers makes integral floats integers in place, at any depth, and scalars too", function()
    local t = {1.0, 2.5, {n = 3.0, deep = {{4.0}}}, s = "5", big = 2.0 ^ 60, inf = math.huge}
    assert.are.equal(t, core.json_integers(t))
    assert.are.equal("integer", math.type(t[1]))
    assert.are.equal("float", math.type(t[2]))
    assert.are.equal("integer", math.type(t[3].n))
    assert.are.equal("integer", math.type(t[3].deep[1][1]))
    assert.are.equal("float", math.type(t.big))          -- past 2^53: not exact, left alone
    assert.are.equal(math.huge, t.inf)
    assert.are.equal("5", t.s)
    assert.are.equal("integer", math.type(core.json_integers(7.0)))
    assert.are.equal("float", math.type(core.json_integers(7.5)))
    assert.are.equal("x", core.json_integers("x"))
  end)
end)
