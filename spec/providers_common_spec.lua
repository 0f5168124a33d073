-- tide.providers.common: the helpers every provider uses (counts, JSON, dates, Retry-After).
local cjson = require "cjson"
local common = require "tide.providers.common"
local openai = require "tide.providers.openai"
local support = require "support.providers"
local is_int, assert_usage = support.is_int, support.assert_usage

describe("common helpers", function()
  it("normalises counts to integers", function()
    assert.is_true(is_int(common.int(85.0)))
    assert.are.equal(0, common.int(cjson.null))
    assert.are.equal(0, common.int(nil))
    assert_usage(common.usage(3.0, 4.0), 3, 4, 7)
  end)

  it("drops counts that are not finite, non-negative integers, and says so", function()
    for _, bad in ipairs{1 / 0, -1 / 0, 0 / 0, -1e20, -1, 12.5, "12", true, 2^60} do
      local n = common.int(bad)
      assert.is_true(n ~= n, tostring(bad))   -- NaN: it stays NaN through a sum
      local u = common.usage(bad, 4.0, bad)
      assert.are.equal(0, u.input, tostring(bad))
      assert.are.equal(4, u.total)
      assert.are.equal("integer", math.type(u.input))
      assert.matches("counted as 0: input, total", u.note, 1, true)
    end
    assert.is_nil(common.usage(3.0, 4.0).note)
    assert.are.equal(0, common.int(-0.0))
  end)

  it("reads a JSON body after a UTF-8 byte-order mark", function()
    assert.are.same({a = 1}, common.decode("\239\187\191{\"a\":1}"))
    assert.is_nil(common.decode("\239\187{\"a\":1}"))   -- half a mark is not one
    local r = openai.parse(200, {}, "\239\187\191" .. cjson.encode{
      choices = {{message = {content = "hi"}, finish_reason = "stop"}},
      usage = {prompt_tokens = 1, completion_tokens = 2}})
    assert.are.equal("hi", r.text)
  end)

  it("parses HTTP dates in GMT whatever the local zone", function()
    assert.are.equal(784111777, common.http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.are.equal(784111777, common.http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.are.equal(784111777, common.http_date("Sun Nov  6 08:49:37 1994"))
    assert.are.equal(951782400, common.http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
    assert.is_nil(common.http_date("soon"))
  end)

  it("reads Retry-After as seconds, an HTTP date or milliseconds, never negative", function()
    local now = common.http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    assert.are.equal(2, common.retry_after({["retry-after"] = "2"}, now))
    assert.are.equal(30, common.retry_after({["retry-after"] = "Wed, 21 Oct 2015 07:28:30 GMT"}, now))
    assert.are.equal(0, common.retry_after({["retry-after"] = "Wed, 21 Oct 2015 07:27:00 GMT"}, now))
    assert.are.equal(0, common.retry_after({["retry-after"] = "-5"}, now))
    assert.are.equal(0.25, common.retry_after({["retry-after-ms"] = "250", ["retry-after"] = "1"}, now))
    assert.is_nil(common.retry_after({["retry-after"] = "later"}, now))
    assert.is_nil(common.retry_after({}, now))
  end)

  it("reads protobuf durations", function()
    assert.are.equal(2, common.duration("2s"))
    assert.are.equal(1.5, common.duration("1.5s"))
    assert.are.equal(0.25, common.duration("0.250s"))
    assert.is_nil(common.duration("2m"))
  end)
end)
