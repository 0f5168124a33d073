-- tide.Tool: arguments in type syntax or JSON Schema, the name check, coercion,
-- fn run as a task, a raised error turned into the text the model sees.
local tide = require "tide"
local assert_clean = require "support.clean"

describe("tide.Tool", function()
  after_each(assert_clean)

  local function weather()
    return tide.Tool{name = "weather", desc = "Current weather in a city.",
      args = {city = "str", unit = "one of: C, F", days = "int", hint = "Optional[str]"},
      fn = function(args) return string.format("%s %d%s", args.city, args.days, args.unit) end}
  end

  it("builds the JSON schema of args given in type syntax", function()
    local s = weather():spec()
    assert.are.equal("weather", s.name)
    assert.are.equal("Current weather in a city.", s.description)
    assert.are.equal("object", s.parameters.type)
    assert.are.same({type = "string"}, s.parameters.properties.city)
    assert.are.same({type = "integer"}, s.parameters.properties.days)
    assert.are.same({"C", "F"}, s.parameters.properties.unit.enum)
    assert.are.same({"city", "days", "unit"}, s.parameters.required)   -- not the Optional one
  end)

  it("keeps a JSON Schema table as it is", function()
    local schema = {type = "object", properties = {q = {type = "string"}}, required = {"q"}}
    local t = tide.Tool{name = "search", args = schema, fn = function(a) return a.q end}
    assert.are.equal(schema, t:spec().parameters)
    assert.are.equal("x", (t{q = "x"}))
    local text, err = t{}
    assert.matches("missing argument 'q'", text)
    assert.are.equal("bad_request", err.kind)
  end)

  it("coerces arguments (a number as text, JSON text) and runs fn as a task", function()
    local ran_in
    local t = tide.Tool{name = "add", args = {a = "int", b = "int"}, fn = function(a)
      ran_in = tide.current()
      tide.sleep(0.001)   -- a tool may wait
      return {sum = a.a + a.b}
    end}
    local text, err = t{a = "2", b = 3}
    assert.is_nil(err)
    assert.are.equal('{"sum":5}', text)
    assert.is_not_nil(ran_in)
    assert.are.equal('{"sum":7}', (t('{"a": 3, "b": 4}')))
    assert.are.equal("Current weather", weather().desc:sub(1, 15))
    assert.are.equal("Oslo 2C", (weather(){city = "Oslo", unit = "C", days = 2}))
  end)

  it("answers bad arguments with a text that says what is wrong, without running fn", function()
    local ran = false
    local t = tide.Tool{name = "count", args = {n = "int", unit = "one of: m, s"},
      fn = function() ran = true end}
    local text, err = t{n = "many", unit = "m"}
    assert.matches("tool count was called with bad arguments: argument 'n' must be int", text)
    assert.are.equal("bad_request", err.kind)
    assert.matches("argument 'unit'", (t{n = 1, unit = "h"}))
    assert.matches("missing argument 'n'", (t{unit = "m"}))
    assert.matches("not a JSON object", (t("{n: oops")))
    assert.is_false(ran)
  end)

  it("turns an error raised by fn into a tool result that says what failed", function()
    local t = tide.Tool{name = "boom", args = {}, fn = function() error("disk on fire") end}
    local text, err = t{}
    assert.matches("^Error: tool boom failed: .*disk on fire", text)
    assert.is_not_nil(err)
    local typed = tide.Tool{name = "net", fn = function()
      error(tide.error{kind = "timeout", message = "upstream timed out"})
    end}
    local text2, err2 = typed{}
    assert.are.equal("Error: tool net failed: upstream timed out", text2)
    assert.are.equal("timeout", err2.kind)
  end)

  it("wraps a Lua function directly when its args are given", function()
    local function area(a) return a.w * a.h end
    local t = tide.Tool(area, {name = "area", desc = "w times h", args = {w = "int", h = "int"}})
    assert.are.equal("area", t:spec().name)
    assert.are.equal("12", (t{w = "3", h = 4}))
    assert.has_error(function() tide.Tool(area) end, "bad argument #2 to 'Tool' (table expected, got nil)")
  end)

  it("checks the name and the spec, blaming the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, msg = pcall(tide.Tool, {name = "bad name", fn = print})
    assert.is_false(ok)
    assert.matches("tools_spec.lua:" .. line .. ":.*bad argument 'name' to 'Tool'", msg)
    assert.has_error(function() tide.Tool{name = string.rep("a", 65), fn = print} end)
    assert.has_error(function() tide.Tool{name = "", fn = print} end)
    assert.has_no_error(function() tide.Tool{name = string.rep("a", 64), fn = print} end)
    assert.has_no_error(function() tide.Tool{name = "get-time_2", fn = print} end)
    assert.has_error(function() tide.Tool{name = "x"} end, nil)
    local ok2, msg2 = pcall(tide.Tool, {name = "x", fn = print, args = {n = "integer!!"}})
    assert.is_false(ok2)
    assert.matches("bad argument 'args.n' to 'Tool'", msg2)
  end)
end)
