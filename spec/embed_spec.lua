-- Embedding through tide.h: a C host drives tide from its own frame loop.
local mockllm = require "support.mockllm"

local HOST = os.getenv("SPEC_HOST_BIN") or "build/spec_host"

local function run_host(source, mode)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  local p = io.popen(string.format("%s %s %s 2>&1", HOST, path, mode or ""))
  local out = p:read("a")
  local ok, how, code = p:close()
  os.remove(path)
  -- under `make check` a sanitizer finding makes the host exit non-zero
  assert(ok, string.format("host %s with %s:\n%s", how, tostring(code), out))
  -- every libcurl block tide took is given back once tide and Lua are closed
  assert(out:find("curl_blocks=0\n", 1, true), "libcurl memory left behind:\n" .. out)
  return out
end

describe("a host program embedding tide", function()
  local server
  setup(function() server = mockllm.start{lenient = true} end)   -- raw keyless requests
  teardown(function() server:stop() end)

  local script = [[
    local tide = require "tide.core"
    local url = ...
    local results = {}
    tide.spawn(function()
      local a, b = tide.gather(
        function() tide.sleep(0.05); return "slept" end,
        function() return tide.request{url = "URL/health", headers = {["X-Mock-Scenario"] = "latency=50"}}.status end)
      results[#results + 1] = a .. " " .. b
    end)
    function report() print("results=" .. table.concat(results, ",")) end
  ]]

  for _, mode in ipairs({"host-loop", "own"}) do
    it("keeps its frames running while tasks wait, then closes every handle (" .. mode .. ")", function()
      local out = run_host(script:gsub("URL", server.url), mode == "own" and "--own" or "")
      assert.matches("results=slept 200", out)
      local frames = tonumber(out:match("frames=(%d+)"))
      assert.is_true(frames > 5, out)        -- the host kept rendering while tasks waited
      assert.matches("live=0", out)
      assert.matches("loop_closed=yes", out)  -- tide left no handle on the host's loop
    end)
  end

  it("tide_close cancels tasks still running and leaves nothing behind", function()
    local out = run_host(([[
      local tide = require "tide.core"
      tide.spawn(function() tide.sleep(0.01) end)
      tide.spawn(function()
        local _ <close> = setmetatable({}, {__close = function() io.write("closed on tide_close\n") end})
        tide.request{url = "URL/health", headers = {["X-Mock-Scenario"] = "fault=hang"}}
      end)
    ]]):gsub("URL", server.url), "--frames 50")
    assert.matches("live=1", out)                  -- the hanging request was still live
    assert.matches("closed on tide_close", out)    -- tide_close unwound it
    assert.matches("loop_closed=yes", out)
  end)

  -- A stream left open in Lua kept its curl handle attached to the share handle
  -- past tide_close: curl_share_cleanup could not free the share (LSan: 2.6 KB),
  -- and the handle itself was cleaned up after curl_global_cleanup, at lua_close.
  for _, mode in ipairs({"host-loop", "own"}) do
    it("tide_close releases the curl handles of streams still open in Lua (" .. mode .. ")", function()
      local out = run_host(([[
        local tide = require "tide.core"
        local body = '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        -- one in the middle of its body, one read to the end, neither closed
        open_stream = tide.stream{url = "URL/v1/chat/completions", body = body,
          headers = {["X-Mock-Scenario"] = "stream_interval=2000"}}
        read_stream = tide.stream{url = "URL/v1/chat/completions", body = body}
        while read_stream:read() do end
        print("statuses=" .. open_stream.status .. "," .. read_stream.status)
        function after_close()
          print("read after close: " .. select(2, pcall(open_stream.read, open_stream)))
          open_stream:close()
          read_stream:close()
          print("closed after close")
        end
      ]]):gsub("URL", server.url), mode == "own" and "--own" or "")
      assert.matches("statuses=200,200", out)
      assert.matches("read after close: [^\n]*the engine is closed", out)
      assert.matches("closed after close", out)
      assert.is_nil(out:find("after_close:", 1, true), out)
      assert.matches("loop_closed=yes", out)
    end)
  end
end)

describe("a host's view of tasks", function()
  local tide = require "tide"
  local assert_clean = require "support.clean"
  after_each(assert_clean)

  it("spawn returns at once; on_done runs inside a later poll, with the finished task", function()
    local seen = {}
    local t = tide.spawn(function() tide.sleep(0.01) return "verdict" end)
    assert.are.equal("pending", t:status())
    local cb = t:on_done(function(task)
      seen[#seen + 1] = {task:status(), task:result(), tide.current() ~= nil}
    end)
    assert.are.same({}, seen)
    local polls = 0
    while tide.poll() > 0 do polls = polls + 1 end
    assert.is_true(polls > 1)              -- it took several polls: nothing blocked
    assert.are.same({{"done", "verdict", true}}, seen)
    assert.are.equal("done", cb:status())
  end)

  it("on_done hands failures and cancellations to the callback, which then owns them", function()
    local got = {}
    local failing = tide.spawn(function() tide.sleep(0) error("no luck") end)
    failing:on_done(function(task) got.failed = {task:status(), task:error().message} end)
    local slow = tide.spawn(function() tide.sleep(10) end)
    slow:on_done(function(task) got.cancelled = task:status() end)
    tide.poll()
    slow:cancel()
    while tide.poll() > 0 do end
    assert.are.equal("failed", got.failed[1])
    assert.matches("no luck", got.failed[2])
    assert.are.equal("cancelled", got.cancelled)
  end)

  it("on_done on a task already finished still calls back, and misuse raises", function()
    local t = tide.spawn(function() return 1 end)
    tide.run()
    local called
    t:on_done(function() called = true end)
    tide.run()
    assert.is_true(called)
    assert.has_error(function() t:on_done(42) end,
      "bad argument #1 to 'on_done' (function expected, got number)")
  end)
end)

describe("errors nobody took, in a host", function()
  it("go to the handler the host set, never to exit()", function()
    local out = run_host([[
      local tide = require "tide.core"
      tide.spawn(function() tide.sleep(0.001) error("lost in a frame") end)
      tide.spawn(function() return "fine" end)
    ]], "--own --handler")
    assert.matches("handled: [^\n]*lost in a frame", out)
    assert.matches("handled=1", out)
    assert.is_nil(out:find("nobody took its error", 1, true))   -- not the default printer
    assert.matches("loop_closed=yes", out)
  end)

  it("include the error a <close> handler raised as a cancelled task unwound", function()
    local out = run_host([[
      local tide = require "tide.core"
      local function breaks(what)
        return setmetatable({}, {__close = function() error("close failed " .. what) end})
      end
      local cancelled = tide.spawn(function()
        local _ <close> = breaks("on cancel")
        tide.sleep(10)
      end)
      local waited = tide.spawn(function()
        local _ <close> = breaks("but somebody waited")
        tide.sleep(10)
      end)
      tide.spawn(function()
        tide.sleep(0.001)
        cancelled:cancel()
        waited:cancel()
        local _, err = pcall(waited.wait, waited)
        print("the waiter saw: " .. err.kind .. ", " .. err.close_error.message)
        -- tide.timeout's caller is handed it on the timeout error
        local _, terr = pcall(tide.timeout, 0.3, function()
          local _ <close> = breaks("in a timed-out function")
          tide.sleep(10)
        end)
        print("the timeout's caller saw: " .. terr.kind .. ", " .. terr.close_error.message)
        -- a gather's failure cancels the siblings: nobody is handed their errors
        pcall(tide.gather, function() tide.sleep(0.001) error("first") end, function()
          local _ <close> = breaks("in a cancelled sibling")
          tide.sleep(10)
        end)
      end)
    ]], "--own --handler")
    assert.matches("the waiter saw: cancelled, [^\n]*close failed but somebody waited", out)
    assert.matches("the timeout's caller saw: timeout, [^\n]*close failed in a timed%-out function", out)
    assert.matches("handled: [^\n]*close failed on cancel", out)
    assert.matches("handled: [^\n]*close failed in a cancelled sibling", out)
    assert.matches("handled=2", out)   -- not the ones a caller was handed
  end)

  it("print a failed task's close_error with it, by default", function()
    local out = run_host([[
      local tide = require "tide.core"
      tide.spawn(function()
        local _ <close> = setmetatable({}, {__close = function() error("the handler broke too") end})
        tide.sleep(0.001)
        error("the body broke")
      end)
    ]], "--own")
    assert.matches("nobody took its error: [^\n]*the body broke", out)
    assert.matches("a <close> handler failed as it unwound: [^\n]*the handler broke too", out)
  end)
end)

describe("the example game host (scripts/host/game.c)", function()
  local GAME = os.getenv("GAME_BIN") or "build/game"
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)

  it("keeps rendering frames while the critics' requests are in flight #slow", function()
    server:reset()
    local p = io.popen(string.format("MOCKLLM_URL=%s GAME_PROBE=1 GAME_LATENCY_MS=300 %s 2>&1",
      server.url, GAME))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    assert.matches("frame %d+: verdict: score", out)
    -- the probe asked mockllm how many requests were in flight, frame after frame:
    -- on this many distinct frames some were (counts, not timings)
    local in_flight = tonumber(out:match("frames_with_requests_in_flight=(%d+)"))
    assert.is_true(in_flight >= 2, out)
    assert.matches("peak_in_flight=3", out)   -- the three critics at once
    local verdict_frame = tonumber(out:match("frame (%d+): verdict"))
    assert.is_true(verdict_frame > 1, out)    -- started on frame 1, answered later
    assert.matches("errors=0", out)
    assert.matches("loop_closed=yes", out)
    local s = server:stats()
    assert.are.equal(3, s.by_route.openai)
  end)
end)
