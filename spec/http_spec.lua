local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

describe("tide.request", function()
  local server
  setup(function() server = mockllm.start{lenient = true} end)   -- raw keyless requests
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function chat(scenario, extra)
    local opts = {
      url = server.url .. "/v1/chat/completions",
      body = cjson.encode{model = "mock", messages = {{role = "user", content = "ping from the spec"}}},
      headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = scenario},
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return tide.request(opts)
  end

  it("returns status, lower-cased headers, body and timings", function()
    local r = tide.request{url = server.url .. "/health"}
    assert.are.equal(200, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.same({status = "ok"}, cjson.decode(r.body))
    assert.is_number(r.timings.total)
    assert.is_true(r.timings.total >= r.timings.ttfb)
  end)

  it("sends the method, headers and body", function()
    local r = chat("reply=pong%20back")
    assert.are.equal(200, r.status)
    local reply = cjson.decode(r.body)
    assert.are.equal("pong back", reply.choices[1].message.content)
    local echo = cjson.decode(chat(nil).body)
    assert.matches("ping from the spec", echo.choices[1].message.content)
    assert.are.equal(404, tide.request{url = server.url .. "/nowhere", method = "DELETE"}.status)
  end)

  it("reuses one keep-alive connection for sequential requests", function()
    for _ = 1, 5 do assert.are.equal(200, tide.request{url = server.url .. "/health"}.status) end
    assert.is_true(server:stats().connections_total <= 1)   -- at most one opened since the reset
  end)

  it("answers HTTP errors as statuses, with their headers", function()
    local r = chat("status=429;retry_after=7")
    assert.are.equal(429, r.status)
    assert.are.equal("7", r.headers["retry-after"])
    assert.are.equal("rate_limit_exceeded", cjson.decode(r.body).error.code)
    assert.are.equal(503, chat("status=503").status)
  end)

  it("fail_first fails the first k tries of a key, then succeeds", function()
    assert.are.equal(500, chat("fail_first=2;key=spec-k").status)
    assert.are.equal(500, chat("fail_first=2;key=spec-k").status)
    assert.are.equal(200, chat("fail_first=2;key=spec-k").status)
  end)

  it("Retry-After can be an HTTP date", function()
    local r = chat("status=429;retry_after_date=30")
    assert.are.equal(429, r.status)
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", r.headers["retry-after"])
  end)

  it("reads a slow drip to the end, and a big body within max_body", function()
    local r = chat("fault=drip;interval=1;bytes=64")
    assert.are.equal(200, r.status)
    assert.are.equal("chat.completion", cjson.decode(r.body).object)
    local big = chat("fault=huge;size=3000000", {max_body = 4000000})
    assert.are.equal(200, big.status)
    assert.are.equal(3000000, #big.body)
  end)

  it("passes through bodies that are broken at the content level", function()
    local r = chat("fault=malformed")
    assert.are.equal(200, r.status)
    assert.is_false(pcall(cjson.decode, r.body))
    assert.are.equal("", chat("fault=empty").body)
    assert.matches("^text/html", chat("fault=html").headers["content-type"])
    local err_body = chat("fault=error_body")
    assert.are.equal(200, err_body.status)
    assert.is_table(cjson.decode(err_body.body).error)
  end)

  describe("raises typed transport errors", function()
    local function kind_of(scenario, extra)
      local ok, err = pcall(chat, scenario, extra)
      assert.is_false(ok, "expected an error for " .. scenario)
      assert.is_true(tide.is_error(err), "not an error object: " .. tostring(err))
      assert.matches("/v1/chat/completions", err.message)   -- says where
      return err.kind, err
    end

    it("protocol: the server drops the connection without answering", function()
      assert.are.equal("protocol", kind_of("fault=drop"))
    end)

    it("reset: reset in the middle of the headers", function()
      assert.are.equal("reset", kind_of("fault=reset_headers"))
    end)

    it("reset: reset in the middle of the body", function()
      assert.are.equal("reset", kind_of("fault=reset_body"))
    end)

    -- The reset comes while curl waits for more: libuv reports the socket in error,
    -- which used to reach curl as "select/poll returned error" (code 55).
    it("reset: a reset while waiting for more of a stream, as curl's CLI says it", function()
      local body = cjson.encode{model = "m", stream = true, messages = {{role = "user", content = "hi"}}}
      local opts = {url = server.url .. "/v1/chat/completions", body = body,
        headers = {["X-Mock-Scenario"] = "fault=stream_reset"}}
      local ok, err = pcall(function()
        local s <close> = tide.stream(opts)
        for _ in s:chunks() do end
      end)
      assert.is_false(ok)
      assert.are.equal("reset", err.kind, tostring(err))
      assert.are.equal(56, err.curl_code)
      assert.matches("Connection reset by peer", err.message)
      assert.is_true(err.retryable)
      local _, rerr = pcall(tide.request, opts)
      assert.are.equal("reset", rerr.kind, tostring(rerr))
      assert.are.equal(56, rerr.curl_code)
    end)

    it("protocol: a body shorter than its Content-Length", function()
      assert.are.equal("protocol", kind_of("fault=truncate"))
    end)

    it("too_large: a body over max_body, without buffering it all", function()
      local kind, err = kind_of("fault=huge;size=5000000", {max_body = 100000})
      assert.are.equal("too_large", kind)
      assert.matches("max_body", err.message)
    end)

    it("timeout: a server that never answers", function()
      assert.are.equal("timeout", kind_of("fault=hang", {timeout = 0.1}))
    end)

    it("timeout: an endless slow drip", function()
      assert.are.equal("timeout", kind_of("fault=drip;interval=10;endless=1", {timeout = 0.2}))
    end)

    it("connect: nothing listens on the port", function()
      local ok, err = pcall(tide.request, {url = "http://127.0.0.1:1/"})
      assert.is_false(ok)
      assert.are.equal("connect", err.kind)
    end)

    it("marks the errors a new attempt may cure retryable, and only those", function()
      local _, refused = pcall(tide.request, {url = "http://127.0.0.1:1/"})
      assert.is_true(refused.retryable)
      assert.is_true(select(2, kind_of("fault=reset_body")).retryable)
      assert.is_true(select(2, kind_of("fault=hang", {timeout = 0.1})).retryable)
      assert.is_false(select(2, kind_of("fault=huge;size=5000000", {max_body = 100000})).retryable)
      local _, unresolved = pcall(tide.request, {url = "http://no-such-host.invalid/"})
      assert.is_false(unresolved.retryable)
    end)

    it("tide.retry tries a refused connection again by itself", function()
      local attempts = 0
      local ok, err = pcall(tide.retry, {tries = 3, base = 0.001}, function()
        attempts = attempts + 1
        return tide.request{url = "http://127.0.0.1:1/"}
      end)
      assert.is_false(ok)
      assert.are.equal(3, attempts)
      assert.are.equal(3, err.attempts)
    end)

    it("dns: a host that does not resolve, and the URL's query never shows", function()
      local ok, err = pcall(tide.request, {url = "http://no-such-host.invalid/x?key=SECRET-CANARY"})
      assert.is_false(ok)
      assert.are.equal("dns", err.kind)
      assert.is_nil(tostring(err):find("SECRET%-CANARY"))
      assert.is_nil(err.url:find("SECRET%-CANARY"))
    end)

    it("tls: https to a server that only speaks plain HTTP", function()
      local ok, err = pcall(tide.request, {url = "https://127.0.0.1:" .. server.port .. "/health",
        connect_timeout = 5})
      assert.is_false(ok)
      assert.are.equal("tls", err.kind)
    end)

    it("the process and the siblings survive every fault", function()
      local faults = {"fault=drop", "fault=reset_body", "fault=truncate", "fault=hang"}
      local list = {}
      for i, f in ipairs(faults) do
        list[i] = function() return chat(f, {timeout = 0.2}) end
      end
      list[#list + 1] = function() return chat(nil).status end
      local r = tide.gather(list, {return_exceptions = true})
      assert.are.equal(200, r[#r])
      for i = 1, #faults do assert.is_true(tide.is_error(r[i]), faults[i]) end
    end)
  end)

  it("a cancelled request closes its connection (the server sees it) and leaves no handle", function()
    local t = tide.spawn(function() return chat("fault=hang") end)
    server:wait_for(function(s) return s.in_flight == 1 end)
    assert.are.equal(1, tide.stats().transfers)
    t:cancel()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal(0, tide.stats().transfers)
    assert.are.equal(1, server:wait_for(function(s) return s.aborted == 1 end).aborted)
  end)

  it("keeps its connections out of the commands the program runs", function()
    local list = {}
    for i = 1, 5 do list[i] = i end
    tide.map(list, function()   -- five at once: five idle connections afterwards
      return tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "latency=20"}}
    end)
    -- the inodes of this process's TCP sockets, then of the sockets a child holds
    local tcp = {}
    for line in io.lines("/proc/net/tcp") do
      local inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
      if inode then tcp[inode] = true end
    end
    local function socket_inodes(cmd)
      local p = io.popen(cmd)
      local found = {}
      for inode in p:read("a"):gmatch("socket:%[(%d+)%]") do found[#found + 1] = inode end
      p:close()
      return found
    end
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("l"):match("^(%d+)")
    f:close()
    local ours = 0
    for _, inode in ipairs(socket_inodes("ls -l /proc/" .. pid .. "/fd")) do
      if tcp[inode] then ours = ours + 1 end
    end
    assert.is_true(ours >= 5, ours .. " TCP connections open here")
    for _, inode in ipairs(socket_inodes("ls -l /proc/self/fd")) do
      assert.is_nil(tcp[inode], "a child inherited connection " .. inode)
    end
  end)

  -- A transfer that failed before connecting left its 4 KiB receive buffer in the
  -- pooled handle; libcurl then refused the buffer size on reuse and read up to
  -- 16 KiB into it (a heap overflow, which `make check` and valgrind report).
  it("reuses no handle whose receive buffer libcurl would overrun", function()
    for _ = 1, 3 do
      local ok, err = pcall(tide.request, {url = "http://no-such-host.invalid/"})
      assert.is_false(ok)
      assert.are.equal("dns", err.kind)
    end
    local function big() return chat("fault=huge;size=300000").body end
    local a, b, c = tide.gather(big, big, big)   -- the three handles the failures left
    for _, body in ipairs{a, b, c} do assert.are.equal(300000, #body) end
  end)

  it("works on the main flow and inside tasks alike", function()
    local direct = tide.request{url = server.url .. "/health"}.status
    local in_task = tide.spawn(function() return tide.request{url = server.url .. "/health"}.status end):wait()
    assert.are.same({200, 200}, {direct, in_task})
  end)

  it("raises at once on misuse, naming the field", function()
    assert.has_error(function() tide.request() end)
    assert.has_error(function() tide.request{} end,
      "bad argument #1 to 'request' (field 'url' must be a string)")
    assert.has_error(function() tide.request{url = "ftp://x"} end,
      "bad argument #1 to 'request' (field 'url' must start with http:// or https://)")
    assert.has_error(function() tide.request{url = server.url, body = 42} end,
      "bad argument #1 to 'request' (field 'body' must be a string)")
    assert.has_error(function() tide.request{url = server.url, method = "get"} end,
      "bad argument #1 to 'request' (field 'method' must be an upper-case HTTP method)")
    assert.has_error(function() tide.request{url = server.url, timeout = -1} end,
      "bad argument #1 to 'request' (field 'timeout' must be a number of seconds > 0 and <= 1e9 (got -1))")
    assert.has_error(function() tide.request{url = server.url, headers = {["X-A"] = "a\r\nX-B: b"}} end,
      "bad argument #1 to 'request' (header 'X-A' contains a line break or a NUL byte)")
  end)

  -- 1e300 seconds used to reach curl as (long)(1e300 * 1000): undefined behaviour.
  it("refuses timeouts and max_body that are not sane numbers, naming the field and range", function()
    for _, f in ipairs{tide.request, tide.stream} do
      for _, field in ipairs{"timeout", "connect_timeout"} do
        for _, v in ipairs{1e300, math.huge, 0 / 0, 0, -1, 1e10, "soon"} do
          local ok, err = pcall(f, {url = server.url .. "/health", [field] = v})
          assert.is_false(ok, field .. " = " .. tostring(v))
          assert.matches("field '" .. field .. "' must be a number of seconds > 0 and <= 1e9 %(got ", err)
        end
      end
      for _, v in ipairs{1e300, math.huge, 0 / 0, -1, 1.5, "big"} do
        local ok, err = pcall(f, {url = server.url .. "/health", max_body = v})
        assert.is_false(ok, "max_body = " .. tostring(v))
        assert.matches("field 'max_body' must be a whole number of bytes >= 0", err)
      end
    end
    assert.are.equal(0, server:stats().requests)        -- none of them went out
    local r = tide.request{url = server.url .. "/health", timeout = 1e9, connect_timeout = 1e9,
      max_body = math.maxinteger}
    assert.are.equal(200, r.status)                     -- the largest accepted values work
  end)

  it("refuses NUL bytes in the URL, the method and headers instead of cutting there", function()
    local cases = {
      {{url = server.url .. "/health\0/elsewhere"}, "field 'url' contains a NUL byte"},
      {{url = server.url .. "/health", method = "GET\0X"}, "field 'method' must be an upper%-case"},
      {{url = server.url .. "/health", headers = {["X-A\0B"] = "v"}}, "header 'X%-A"},
      {{url = server.url .. "/health", headers = {["X-A"] = "v\0w"}},
       "header 'X%-A' contains a line break or a NUL byte"},
    }
    for _, f in ipairs{tide.request, tide.stream} do
      for _, case in ipairs(cases) do
        local ok, err = pcall(f, case[1])
        assert.is_false(ok, case[2])
        assert.matches(case[2], err)
      end
    end
    assert.are.equal(0, server:stats().requests)
  end)
end)
