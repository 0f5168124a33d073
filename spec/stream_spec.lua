local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

describe("tide.stream", function()
  local server, url
  local body = cjson.encode{model = "mock", messages = {{role = "user", content = "stream me"}}}
  setup(function() server = mockllm.start(); url = server.url .. "/v1/chat/completions" end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(function() collectgarbage(); assert_clean() end)

  local function open(scenario, extra)
    local opts = {url = url, body = body, headers = {["X-Mock-Scenario"] = scenario}}
    for k, v in pairs(extra or {}) do opts[k] = v end
    return tide.stream(opts)
  end

  it("returns at the headers, then hands over the body piece by piece", function()
    local s <close> = open("fault=drip;interval=5;bytes=40")
    assert.are.equal(200, s.status)
    assert.are.equal("application/json", s.headers["content-type"])
    local pieces = {}
    for chunk in s:chunks() do pieces[#pieces + 1] = chunk end
    assert.is_true(#pieces > 1)   -- more than one piece: it did not wait for the end
    local whole = cjson.decode(table.concat(pieces))
    assert.matches("stream me", whole.choices[1].message.content)
    assert.is_nil(s:read())        -- the end stays the end
  end)

  it("pauses a fast server while the reader is behind, losing nothing", function()
    local s <close> = open("fault=huge;size=8000000", {max_body = 10000000})
    tide.sleep(0.05)               -- let more than the pending cap pile up
    local got = 0
    for chunk in s:chunks() do got = got + #chunk end
    assert.are.equal(8000000, got)
  end)

  it("max_body bounds the whole stream", function()
    local ok, err = pcall(function()
      local s <close> = open("fault=huge;size=3000000", {max_body = 100000})
      for _ in s:chunks() do end
    end)
    assert.is_false(ok)
    assert.are.equal("too_large", err.kind)
  end)

  it("an endless stream ends with a timeout error, after the pieces that came", function()
    local got = 0
    local ok, err = pcall(function()
      local s <close> = open("fault=drip;interval=1;bytes=200;endless=1", {timeout = 0.2})
      for chunk in s:chunks() do got = got + #chunk end
    end)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(got > 0)
  end)

  it("cancelling a reading task closes the connection (the server sees it)", function()
    local t = tide.spawn(function()
      local s <close> = open("fault=drip;interval=20;endless=1")
      for _ in s:chunks() do end
    end)
    server:wait_for(function(st) return st.in_flight == 1 end)
    t:cancel()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal(1, server:wait_for(function(st) return st.aborted == 1 end).aborted)
  end)

  it("close() from another task ends a waiting read", function()
    local s = open("fault=drip;interval=50;endless=1")
    local reader = tide.spawn(function() for _ in s:chunks() do end end)
    tide.sleep(0.02)
    s:close()
    local ok, err = pcall(reader.wait, reader)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
  end)

  it("raises transport errors before the headers as tide.request does", function()
    local ok, err = pcall(tide.stream, {url = "http://127.0.0.1:1/"})
    assert.is_false(ok)
    assert.are.equal("connect", err.kind)
    assert.has_error(function() tide.stream{} end,
      "bad argument #1 to 'stream' (field 'url' must be a string)")
  end)
end)
