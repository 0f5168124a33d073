-- core.otlp_span and core.otlp_body: finished spans as OTLP/HTTP JSON, written by the
-- core; read back with cjson and checked field by field.
local core = require "tide.core"
local cjson = require "cjson"
local otlp = require "tide.trace.otlp"

local function span(fields)
  local s = {"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false, "chat mock", 3,
             1764806400.25, 1764806400.5, false, false}
  for k, v in pairs(fields or {}) do s[k] = v end
  return s
end

local function attributes_of(list)
  local out = {}
  for _, a in ipairs(list) do out[a.key] = a.value end
  return out
end

describe("core.otlp_span", function()
  it("writes ids, name, kind and nanosecond times as OTLP's JSON mapping says", function()
    local s = cjson.decode(core.otlp_span(span()))
    assert.are.equal("4bf92f3577b34da6a3ce929d0e0e4736", s.traceId)
    assert.are.equal("00f067aa0ba902b7", s.spanId)
    assert.is_nil(s.parentSpanId)
    assert.are.equal("chat mock", s.name)
    assert.are.equal(3, s.kind)
    -- a double near 1.76e9 s holds a quarter microsecond: the nanoseconds are that close
    assert.is_true(math.abs(math.tointeger(tonumber(s.startTimeUnixNano)) - 1764806400250000000) < 1000)
    assert.are.equal("1764806400500000000", s.endTimeUnixNano)
    assert.is_nil(s.status)
    local child = cjson.decode(core.otlp_span(span{[3] = "1111111111111111", [8] = 2, [9] = "it \"failed\""}))
    assert.are.equal("1111111111111111", child.parentSpanId)
    assert.are.same({code = 2, message = 'it "failed"'}, child.status)
  end)

  it("types every attribute value, escapes every string, and skips keys that are not names", function()
    local text = core.otlp_span(span{
      s = 'quote " backslash \\ newline \n tab \t control \1 é ✓ </script>',
      i = 42, neg = -7, f = 0.1, nan = 0 / 0, inf = math.huge, yes = true, no = false,
      list = {"stop", "length"}, nested = {{1, 2}, {"x"}}, [1.5] = "not a name", file = io.stdout})
    assert.is_nil(text:find("[%z\1-\31]"))          -- no raw control byte in the JSON text
    local a = attributes_of(cjson.decode(text).attributes)
    assert.are.equal('quote " backslash \\ newline \n tab \t control \1 é ✓ </script>', a.s.stringValue)
    assert.are.equal("42", a.i.intValue)
    assert.are.equal("-7", a.neg.intValue)
    assert.are.equal(0.1, a.f.doubleValue)
    assert.matches("nan", a.nan.stringValue)
    assert.are.equal("inf", a.inf.stringValue)
    assert.is_true(a.yes.boolValue)
    assert.is_false(a.no.boolValue)
    assert.are.same({{stringValue = "stop"}, {stringValue = "length"}}, a.list.arrayValue.values)
    assert.are.same({intValue = "2"}, a.nested.arrayValue.values[1].arrayValue.values[2])
    assert.matches("^file %(", a.file.stringValue)
    local n = 0
    for _ in pairs(a) do n = n + 1 end
    assert.are.equal(11, n)                           -- 1.5 is no attribute name
  end)

  it("raises for what is not a span", function()
    assert.has_error(function() core.otlp_span("x") end)
    assert.has_error(function() core.otlp_body({1}, {}, "v") end,
      "otlp_body: span 1 is a number, not a span's text")
  end)
end)

describe("tide.trace.otlp.body", function()
  it("joins span texts under the resource and tide's scope, at any size", function()
    local texts = {}
    for i = 1, 3000 do texts[i] = otlp.span(span{[2] = string.format("%016x", i), i = i}) end
    local body = cjson.decode(otlp.body(texts, {["service.name"] = "critics"}))
    local rs = body.resourceSpans[1]
    local res = attributes_of(rs.resource.attributes)
    assert.are.equal("critics", res["service.name"].stringValue)
    assert.are.equal("tide", res["telemetry.sdk.name"].stringValue)
    assert.are.same({name = "tide", version = "0.1.0"}, rs.scopeSpans[1].scope)
    local spans = rs.scopeSpans[1].spans
    assert.are.equal(3000, #spans)
    assert.are.equal(string.format("%016x", 3000), spans[3000].spanId)
    assert.are.equal("3000", attributes_of(spans[3000].attributes).i.intValue)
    local empty = cjson.decode(otlp.body({}, {}))
    assert.are.equal("unknown_service:tide",
      attributes_of(empty.resourceSpans[1].resource.attributes)["service.name"].stringValue)
  end)
end)
