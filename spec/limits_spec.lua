local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local sse = require "tide.sse"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local BODY = '{"model":"m","messages":[{"role":"user","content":"hi"}]}'

describe("connection caps", function()
  local server, defaults
  setup(function()
    server = mockllm.start{lenient = true}   -- raw keyless requests
    defaults = tide.http_limits()
  end)
  teardown(function()
    tide.http_limits(defaults)
    server:stop()
  end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  it("start below the descriptor limit, per host and in all", function()
    -- a child shell inherits this process's (lifted) soft limit
    local p = io.popen("ulimit -n")
    local limit = tonumber(p:read("a"))
    p:close()
    assert.is_true(defaults.connections >= 1 and defaults.connections < limit,
      defaults.connections .. " connections, " .. limit .. " descriptors")
    assert.is_true(defaults.per_host >= 1 and defaults.per_host <= defaults.connections)
  end)

  it("queue calls over the per-host cap instead of opening more connections", function()
    tide.http_limits{per_host = 4}
    local list = {}
    for i = 1, 40 do list[i] = i end
    local statuses = tide.map(list, function()
      return tide.request{url = server.url .. "/v1/chat/completions", body = BODY,
        headers = {["X-Mock-Scenario"] = "latency=30"}}.status
    end)
    for i = 1, 40 do assert.are.equal(200, statuses[i]) end
    local s = server:stats()
    assert.are.equal(40, s.completed)
    assert.is_true(s.peak_connections <= 4, "peak connections " .. s.peak_connections)
    assert.are.equal(4, tide.http_limits().per_host)
    tide.http_limits(defaults)
  end)

  -- A burst of answers used to shrink curl's idle cache (4 × the transfers still
  -- in the multi handle) and close the connections the next calls wanted: 3 000
  -- calls 64 at a time opened some 450 connections instead of 65.
  it("keep their connections for the next calls when calls go a few at a time", function()
    local list = {}
    for i = 1, 1000 do list[i] = i end
    tide.map(list, function()
      return tide.request{url = server.url .. "/v1/chat/completions", body = BODY}.status
    end, {limit = 32})
    local raw = server:stats()
    assert.are.equal(1000, raw.completed)
    assert.is_true(raw.connections_total <= 40, raw.connections_total .. " connections for 32 at a time")
    server:reset()
    local lm = tide.LM("openai/mock", {base_url = server.url .. "/v1", api_key = "k", cache = false,
      max_parallel_requests = 32})
    tide.map(list, function(i) return lm("call " .. i) end)
    local gated = server:stats()
    assert.are.equal(1000, gated.completed)
    assert.is_true(gated.connections_total <= 40, gated.connections_total .. " connections behind a gate of 32")
  end)

  it("raise at once on bad caps, naming the field", function()
    assert.has_error(function() tide.http_limits{per_host = 0} end,
      "bad argument #1 to 'http_limits' (field 'per_host' must be a positive integer)")
    assert.has_error(function() tide.http_limits{connections = 1.5} end,
      "bad argument #1 to 'http_limits' (field 'connections' must be a positive integer)")
    assert.has_error(function() tide.http_limits("x") end)
  end)

  it("let a run with more calls than descriptors queue rather than fail", function()
    local own = mockllm.start{lenient = true}    -- its own server: the counts are the child's alone
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
      local tide = require "tide"
      local list = {}
      for i = 1, 300 do list[i] = i end
      local rs = tide.map(list, function()
        return tide.request{url = %q, body = %q,
          headers = {["X-Mock-Scenario"] = "latency=20"}}.status
      end)
      local ok = 0
      for _, st in ipairs(rs) do if st == 200 then ok = ok + 1 end end
      print("ok " .. ok .. " cap " .. tide.http_limits().connections)
    ]], own.url .. "/v1/chat/completions", BODY))
    f:close()
    local p = io.popen(string.format("ulimit -n 64 && %s %s 2>&1", TIDE, script))
    local out = p:read("a")
    p:close()
    os.remove(script)
    local peak = own:stats().peak_connections
    own:stop()
    assert.matches("^ok 300 cap %d+", out)
    local cap = tonumber(out:match("cap (%d+)"))
    assert.is_true(cap < 64)
    assert.is_true(peak <= cap, "peak " .. peak .. ", cap " .. cap)
  end)
end)

describe("server-sent events", function()
  it("cap an event that never ends with a too_large error", function()
    local p = sse.new(1000)
    assert.are.same({}, p:feed(("x"):rep(600)))
    local ok, err = pcall(p.feed, p, ("x"):rep(600))
    assert.is_false(ok)
    assert.are.equal("too_large", err.kind)
    assert.are.equal("server-sent event larger than 1000 bytes", err.message)
    local q = sse.new(1000)
    for _ = 1, 9 do q:feed("data: " .. ("y"):rep(100) .. "\n") end
    ok, err = pcall(q.feed, q, "data: " .. ("y"):rep(100) .. "\n")
    assert.is_false(ok)
    assert.are.equal("too_large", err.kind)
  end)

  it("read a long line cut in many pieces whole (and in linear time)", function()
    local p = sse.new()
    local piece = ("z"):rep(1024)
    p:feed("data: ")
    for _ = 1, 4000 do assert.are.same({}, p:feed(piece)) end
    local events = p:feed("\n\n")
    assert.are.equal(1, #events)
    assert.are.equal(4000 * 1024, #events[1].data)
  end)

  it("keep the framing: events, names, multi-line data, comments, CRLF", function()
    local p = sse.new()
    local evs = p:feed(": comment\r\nevent: a\r\ndata: 1\r\ndata: 2\r\n\r\nda")
    assert.are.same({{event = "a", data = "1\n2"}}, evs)
    assert.are.same({{data = "3"}}, p:feed("ta: 3\n\n"))
    assert.are.same({{data = "4"}}, (function() p:feed("data: 4") return p:finish() end)())
  end)
end)
