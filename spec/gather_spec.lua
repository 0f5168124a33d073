local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

describe("gather", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  it("returns the first result of each function, in argument order", function()
    local a, b, c = tide.gather(
      function() tide.sleep(0.03); return "a", "ignored" end,
      function() tide.sleep(0.01); return "b" end,
      function() return "c" end)
    assert.are.same({"a", "b", "c"}, {a, b, c})
  end)

  it("the list form returns a list in order, nil where a child returned nothing", function()
    local r = tide.gather({
      function() tide.sleep(0.02); return 1 end,
      function() end,
      function() return 3 end,
    })
    assert.are.equal(1, r[1])
    assert.is_nil(r[2])
    assert.are.equal(3, r[3])
  end)

  it("runs its children at the same time (the server sees them all in flight)", function()
    tide.gather(function()
      return tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "latency=100"}}
    end, function()
      return tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "latency=100"}}
    end, function()
      return tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "latency=100"}}
    end)
    assert.are.equal(3, server:stats().peak_in_flight)
  end)

  it("accepts tasks as well as functions", function()
    local t = tide.spawn(function() tide.sleep(0.01); return "from task" end)
    local a, b = tide.gather(t, function() return "from function" end)
    assert.are.equal("from task", a)
    assert.are.equal("from function", b)
  end)

  it("on the first failure cancels the siblings, waits for them, and re-raises", function()
    local closed, finished = 0, false
    local ok, err = pcall(tide.gather,
      function() tide.sleep(0.01); error("child failed") end,
      function()
        local _ <close> = setmetatable({}, {__close = function() closed = closed + 1 end})
        tide.sleep(5); finished = true
      end,
      function()
        local _ <close> = setmetatable({}, {__close = function() closed = closed + 1 end})
        tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "fault=hang"}}
        finished = true
      end)
    assert.is_false(ok)
    assert.are.equal("lua", err.kind)
    assert.matches("child failed", err.message)
    assert.matches("gather_spec.lua:%d+", err.traceback)
    assert.are.equal(2, closed)          -- siblings unwound before gather returned
    assert.is_false(finished)
    local s = server:wait_for(function(st) return st.aborted == 1 end)
    assert.are.equal(1, s.aborted)       -- the hanging request's connection was closed
  end)

  it("return_exceptions keeps the others' results and puts error objects in failed slots", function()
    local r = tide.gather({
      function() return "ok" end,
      function() error("bad") end,
      function() tide.sleep(0.02); return "late ok" end,
      function() return tide.request{url = "http://127.0.0.1:1/"} end,
    }, {return_exceptions = true})
    assert.are.equal("ok", r[1])
    assert.are.equal("lua", r[2].kind)
    assert.matches("bad", tostring(r[2]))
    assert.are.equal("late ok", r[3])
    assert.are.equal("connect", r[4].kind)
  end)

  it("limit caps the children running at once (the server's peak in flight)", function()
    local list = {}
    for i = 1, 12 do
      list[i] = function()
        return tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "latency=30"}}.status
      end
    end
    local r = tide.gather(list, {limit = 3})
    assert.are.equal(12, #r)
    local s = server:stats()
    assert.are.equal(12, s.requests)
    assert.are.equal(3, s.peak_in_flight)
  end)

  it("an empty gather returns at once", function()
    assert.are.same({}, tide.gather({}))
    assert.are.equal(0, select("#", tide.gather()))
  end)

  it("works inside a task, and cancelling that task cancels the whole tree", function()
    local leaves = 0
    local t = tide.spawn(function()
      tide.gather(function()
        tide.gather(function() tide.sleep(10) end, function() tide.sleep(10) end)
      end, function()
        tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "fault=hang"}}
      end)
      leaves = leaves + 1
    end)
    server:wait_for(function(s) return s.in_flight == 1 end)
    t:cancel()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal(0, leaves)
    assert.are.equal(1, server:wait_for(function(s) return s.aborted == 1 end).aborted)
  end)

  it("raises at once on misuse, naming the argument", function()
    assert.has_error(function() tide.gather(function() end, 42) end,
      "bad argument #2 to 'gather' (function or task expected, got number)")
    assert.has_error(function() tide.gather({function() end, "x"}) end,
      "tide.gather: item 2 is a string, expected a function or a task")
    assert.has_error(function() tide.gather({}, {limit = 0}) end,
      "tide.gather: opts.limit must be a positive integer")
    assert.has_error(function() tide.gather({}, {return_exceptions = 1}) end,
      "tide.gather: opts.return_exceptions must be a boolean")
  end)

  it("1 000 concurrent requests are all in flight at once #timing", function()
    local list = {}
    for i = 1, 1000 do list[i] = i end
    local r = tide.map(list, function(i)
      return tide.request{url = server.url .. "/health", headers = {["X-Mock-Scenario"] = "latency=300"}}.status + i * 0
    end)
    local ok = 0
    for i = 1, 1000 do if r[i] == 200 then ok = ok + 1 end end
    assert.are.equal(1000, ok)
    assert.is_true(server:stats().peak_in_flight >= 900)
  end)
end)

describe("map", function()
  after_each(assert_clean)

  it("calls fn(item, index) for each item and keeps the order", function()
    local r = tide.map({"a", "b", "c"}, function(x, i) tide.sleep(0.01 * (4 - i)); return x .. i end)
    assert.are.same({"a1", "b2", "c3"}, r)
  end)

  it("limit holds at most n running (counted by the children themselves)", function()
    local running, peak = 0, 0
    local items = {}
    for i = 1, 20 do items[i] = i end
    tide.map(items, function()
      running = running + 1
      peak = math.max(peak, running)
      tide.sleep(0.002)
      running = running - 1
    end, {limit = 4})
    assert.are.equal(4, peak)
  end)

  it("structured failure and return_exceptions work as in gather", function()
    assert.has_error(function()
      tide.map({1, 2}, function(x) if x == 2 then error({kind = "mine"}) end end)
    end)
    local r = tide.map({1, 2}, function(x) if x == 2 then error("two") end return x end,
      {return_exceptions = true})
    assert.are.equal(1, r[1])
    assert.are.equal("lua", r[2].kind)
  end)

  it("raises on misuse", function()
    assert.has_error(function() tide.map(1, print) end)
    assert.has_error(function() tide.map({}, 1) end,
      "bad argument #2 to 'map' (function expected, got number)")
  end)
end)

describe("race", function()
  after_each(assert_clean)

  it("returns the first to finish and cancels the rest", function()
    local slow_closed = false
    local a, b = tide.race(function()
      local _ <close> = setmetatable({}, {__close = function() slow_closed = true end})
      tide.sleep(5); return "slow"
    end, function() tide.sleep(0.01); return "fast", 2 end)
    assert.are.same({"fast", 2}, {a, b})
    assert.is_true(slow_closed)
  end)

  it("raises when the first to finish failed", function()
    local ok, err = pcall(tide.race, function() error("first") end, function() tide.sleep(5) end)
    assert.is_false(ok)
    assert.matches("first", err.message)
  end)

  it("needs at least one function", function()
    assert.has_error(function() tide.race() end)
  end)
end)

describe("timeout", function()
  after_each(assert_clean)

  it("returns fn's results when it finishes in time", function()
    assert.are.same({"done", 1}, {tide.timeout(1, function(x) tide.sleep(0.01); return "done", x end, 1)})
  end)

  it("cancels fn at the deadline and raises a timeout error", function()
    local closed = false
    local ok, err = pcall(tide.timeout, 0.02, function()
      local _ <close> = setmetatable({}, {__close = function() closed = true end})
      tide.sleep(5)
    end)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(closed)
  end)

  it("passes fn's own error through", function()
    local ok, err = pcall(tide.timeout, 1, function() error({kind = "custom"}) end)
    assert.is_false(ok)
    assert.are.equal("custom", err.kind)
  end)
end)
