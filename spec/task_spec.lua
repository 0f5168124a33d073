local tide = require "tide"
local assert_clean = require "support.clean"

describe("tasks", function()
  after_each(assert_clean)

  it("spawn returns at once; wait returns every result", function()
    local t = tide.spawn(function(a, b) tide.sleep(0.01); return a + b, "two", nil end, 40, 2)
    assert.are.equal("pending", t:status())
    local x, y, z = t:wait()
    assert.are.equal(42, x)
    assert.are.equal("two", y)
    assert.is_nil(z)
    assert.are.equal("done", t:status())
    assert.are.same({42, "two"}, {t:result()})
  end)

  it("reports failed with an error object that keeps the traceback", function()
    local function deep() error("deep trouble") end
    local t = tide.spawn(function() tide.sleep(0); deep() end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("failed", t:status())
    assert.is_true(tide.is_error(err, "lua"))
    assert.matches("deep trouble", err.message)
    assert.matches("task_spec.lua:%d+: in .*deep", err.traceback)
    assert.are.equal(err, t:error())
    assert.has_error(function() t:result() end)
  end)

  it("keeps a table error as it was raised", function()
    local t = tide.spawn(function() error({code = 7}) end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal(7, err.code)
  end)

  it("result() refuses to block on an unfinished task", function()
    local t = tide.spawn(function() tide.sleep(0.01) end)
    assert.has_error(function() t:result() end,
      "task:result: the task is still pending; use task:wait() to wait for it")
    t:wait()
  end)

  it("cancel stops a sleeping task, runs its <close> variables, and wait raises cancelled", function()
    local closed = false
    local t = tide.spawn(function()
      local guard <close> = setmetatable({}, {__close = function() closed = true end})
      tide.sleep(10)
    end)
    tide.sleep(0.01)
    assert.are.equal("running", t:status())
    assert.is_true(t:cancel())
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal("cancelled", t:status())
    assert.is_true(closed)
    assert.is_false(t:cancel())
  end)

  -- The handler runs as lua_resume's error unwinds the coroutine, after the task
  -- failed: its error used to be dropped, and the task reported only `cancelled`.
  it("an error a <close> handler raises while the task is cancelled is kept as close_error", function()
    local seen
    local t = tide.spawn(function()
      local _ <close> = setmetatable({}, {__close = function(_, e)
        seen = e
        error("the handler broke")
      end})
      tide.sleep(10)
    end)
    tide.sleep(0.01)
    t:cancel()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)          -- still a cancellation
    assert.are.equal("cancelled", t:status())
    assert.is_true(tide.is_error(seen, "cancelled"))  -- the handler was given it
    assert.is_true(tide.is_error(err.close_error, "lua"))
    assert.matches("task_spec.lua:%d+: the handler broke", err.close_error.message)
  end)

  it("a failed task keeps its own error, with the <close> handler's beside it", function()
    local t = tide.spawn(function()
      local _ <close> = setmetatable({}, {__close = function() error({kind = "mine", message = "table"}) end})
      tide.sleep(0)
      error("the body broke")
    end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("the body broke", err.message)
    assert.are.same({kind = "mine", message = "table"}, err.close_error)   -- kept as raised
  end)

  it("a <close> handler that passes the error on, or succeeds, adds no close_error", function()
    local t1 = tide.spawn(function()
      local _ <close> = setmetatable({}, {__close = function(_, e) error(e, 0) end})
      tide.sleep(10)
    end)
    local t2 = tide.spawn(function()
      local _ <close> = setmetatable({}, {__close = function() end})
      tide.sleep(10)
    end)
    tide.sleep(0.01)
    t1:cancel()
    t2:cancel()
    for _, t in ipairs{t1, t2} do
      local _, err = pcall(t.wait, t)
      assert.are.equal("cancelled", err.kind)
      assert.is_nil(err.close_error)
    end
  end)

  it("a task cancelled before it starts never runs", function()
    local ran = false
    local t = tide.spawn(function() ran = true end)
    t:cancel()
    assert.has_error(function() t:wait() end)
    assert.is_false(ran)
    assert.are.equal("cancelled", t:status())
  end)

  it("cancellation reaches grandchildren #timing", function()
    local closed = {}
    local function sleeper(name)
      return function()
        local _ <close> = setmetatable({}, {__close = function() closed[#closed + 1] = name end})
        tide.sleep(10)
      end
    end
    local child, grandchild
    local t = tide.spawn(function()
      child = tide.spawn(function()
        grandchild = tide.spawn(sleeper("grandchild"))
        sleeper("child")()
      end)
      sleeper("parent")()
    end)
    tide.sleep(0.01)
    t:cancel()
    pcall(t.wait, t)
    pcall(child.wait, child)
    pcall(grandchild.wait, grandchild)
    assert.are.equal("cancelled", child:status())
    assert.are.equal("cancelled", grandchild:status())
    table.sort(closed)
    assert.are.same({"child", "grandchild", "parent"}, closed)
  end)

  it("cancellation is level-triggered: a task that swallows it cannot wait again", function()
    local second
    local t = tide.spawn(function()
      pcall(tide.sleep, 10)
      local ok, err = pcall(tide.sleep, 0.01)
      second = err
      return ok
    end)
    tide.sleep(0.01)
    t:cancel()
    assert.is_false(t:wait())
    assert.are.equal("cancelled", second.kind)
  end)

  it("`local t <close> = tide.spawn(...)` cancels the task at the end of the scope", function()
    local t
    do
      local task <close> = tide.spawn(function() tide.sleep(10) end)
      t = task
      tide.sleep(0.01)
    end
    pcall(t.wait, t)
    assert.are.equal("cancelled", t:status())
  end)

  it("tide.current is the running task, nil on the main flow", function()
    assert.is_nil(tide.current())
    local t
    t = tide.spawn(function() return tide.current() == t end)
    assert.is_true(t:wait())
  end)

  it("a task cannot wait for itself", function()
    local t
    t = tide.spawn(function() return t:wait() end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("cannot wait for itself", tostring(err.message))
  end)

  it("tide.run runs a function as a task and returns its results", function()
    assert.are.same({1, 2}, {tide.run(function(a) tide.sleep(0); return a, 2 end, 1)})
    local started = tide.spawn(function() tide.sleep(0.01) end)
    tide.run()
    assert.are.equal("done", started:status())
  end)

  it("raises at once with the argument named on misuse", function()
    assert.has_error(function() tide.spawn(42) end,
      "bad argument #1 to 'spawn' (function expected, got number)")
    assert.has_error(function() tide.sleep(-1) end)
    assert.has_error(function() tide.sleep("x") end)
    assert.has_error(function() tide.spawn(function() end).wait(42) end)
  end)
end)

describe("task contexts", function()
  local core = require "tide.core"
  after_each(assert_clean)

  it("a task's context is inherited by its children, and siblings keep their own", function()
    assert.is_nil(core.task_settings())
    local a, b = core.spawn_in({who = "A"}, function()
      return tide.gather(
        function() tide.sleep(0.01); return core.task_settings().who end,
        function() return core.spawn_in({who = "B"}, function() tide.sleep(0); return core.task_settings().who end):wait() end)
    end):wait()
    assert.are.same({"A", "B"}, {a, b})
    assert.is_nil(core.task_settings())
  end)
end)

describe("where an async call can run", function()
  after_each(assert_clean)

  it("on the main flow it runs the loop until done, and other tasks make progress #timing", function()
    local ticks = 0
    local t = tide.spawn(function() for _ = 1, 3 do tide.sleep(0.001); ticks = ticks + 1 end end)
    tide.sleep(0.05)
    assert.are.equal(3, ticks)
    assert.are.equal("done", t:status())
  end)

  it("inside a plain coroutine within a task it raises an error naming tide.spawn", function()
    local t = tide.spawn(function()
      local gen = coroutine.wrap(function() tide.sleep(0.01); coroutine.yield(1) end)
      return gen()
    end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("tide%.spawn", err.message)
  end)

  it("a plain coroutine on the main flow may wait (it blocks like the main flow)", function()
    local gen = coroutine.wrap(function() tide.sleep(0.001); coroutine.yield("after sleep") end)
    assert.are.equal("after sleep", gen())
  end)

  it("coroutine.wrap generators that do not wait work inside tasks", function()
    local t = tide.spawn(function()
      local out = {}
      for v in coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end) do
        tide.sleep(0)
        out[#out + 1] = v
      end
      return out
    end)
    assert.are.same({1, 2, 3}, t:wait())
  end)

  it("a bare coroutine.yield in a task fails the task with a clear message", function()
    local t = tide.spawn(function() coroutine.yield() end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("tide%.sleep%(0%)", err.message)
  end)

  it("a wait across a C boundary that cannot yield says so", function()
    local t = tide.spawn(function()
      local list = {3, 1, 2}
      table.sort(list, function(a, b) tide.sleep(0); return a < b end)
    end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("cannot wait here", err.message)
  end)

  it("the main flow waiting on something that can never happen is a deadlock error", function()
    local sem = tide.semaphore(1)
    sem:acquire()
    local ok, err = pcall(sem.acquire, sem)
    assert.is_false(ok)
    assert.are.equal("deadlock", err.kind)
    sem:release()
  end)

  it("a deadlocked gather on the main flow unwinds its children and leaves nothing behind", function()
    local sem = tide.semaphore(1)
    sem:acquire()
    local unwound = false
    local ok, err = pcall(tide.gather, function()
      local _ <close> = setmetatable({}, {__close = function() unwound = true end})
      sem:acquire()
    end, function() return 1 end)
    assert.is_false(ok)
    assert.are.equal("deadlock", err.kind)
    assert.is_true(unwound)
    assert.are.equal(0, sem:waiting())
    sem:release()
  end)
end)

describe("sleep", function()
  after_each(assert_clean)

  it("wakes tasks in the order of their deadlines", function()
    local order = {}
    tide.gather(
      function() tide.sleep(0.06); order[#order + 1] = "c" end,
      function() tide.sleep(0.02); order[#order + 1] = "a" end,
      function() tide.sleep(0.04); order[#order + 1] = "b" end)
    assert.are.same({"a", "b", "c"}, order)
  end)

  it("sleep(0) lets every other ready task run first", function()
    local order = {}
    tide.gather(
      function() order[#order + 1] = 1; tide.sleep(0); order[#order + 1] = 3 end,
      function() order[#order + 1] = 2 end)
    assert.are.same({1, 2, 3}, order)
  end)

  it("now() is monotonic seconds", function()
    local a = tide.now()
    tide.sleep(0.01)
    assert.is_true(tide.now() > a)
  end)
end)
