local tide = require "tide"
local assert_clean = require "support.clean"

describe("semaphore", function()
  after_each(assert_clean)

  it("holds at most n tasks in the critical section, first come first served", function()
    local sem = tide.semaphore(2)
    local inside, peak, order = 0, 0, {}
    local items = {}
    for i = 1, 8 do items[i] = i end
    tide.map(items, function(i)
      sem:acquire()
      order[#order + 1] = i
      inside = inside + 1
      peak = math.max(peak, inside)
      tide.sleep(0.002)
      inside = inside - 1
      sem:release()
    end)
    assert.are.equal(2, peak)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, order)
    assert.are.equal(2, sem:available())
  end)

  it("with() releases on error, and <close> releases at the end of a scope", function()
    local sem = tide.semaphore(1)
    assert.has_error(function() sem:with(function() error("inside") end) end)
    assert.are.equal(1, sem:available())
    assert.are.same({3, 4}, {sem:with(function(a, b) return a, b end, 3, 4)})
    do
      local _ <close> = sem:acquire()
      assert.are.equal(0, sem:available())
    end
    assert.are.equal(1, sem:available())
  end)

  it("a cancelled waiter leaves the queue and the permit goes to the next", function()
    local sem = tide.semaphore(1)
    sem:acquire()
    local waiting = tide.spawn(function() sem:acquire() end)
    local next_one = tide.spawn(function() sem:acquire(); sem:release(); return "got it" end)
    tide.sleep(0.01)
    assert.are.equal(2, sem:waiting())
    waiting:cancel()
    pcall(waiting.wait, waiting)
    assert.are.equal(1, sem:waiting())
    sem:release()
    assert.are.equal("got it", next_one:wait())
    assert.are.equal(1, sem:available())
  end)

  it("refuses a release without an acquire, and bad sizes", function()
    local sem = tide.semaphore(1)
    assert.has_error(function() sem:release() end,
      "semaphore:release: released more often than acquired")
    assert.has_error(function() tide.semaphore(0) end)
  end)
end)
