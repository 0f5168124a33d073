-- Timers last at least what was asked, even armed after CPU-bound work, and the
-- numbers of seconds the API takes are checked.  (Only lower bounds are asserted:
-- a loaded machine may always be late, never early.)
local tide = require "tide"
local core = require "tide.core"
local assert_clean = require "support.clean"

-- Keeps the CPU busy for `seconds`: the loop's cached time goes stale meanwhile.
local function busy(seconds)
  local t0 = core.now()
  while core.now() - t0 < seconds do end
end

describe("a timer armed after CPU-bound work", function()
  after_each(assert_clean)

  it("tide.sleep inside a task lasts at least what was asked", function()
    local elapsed = tide.spawn(function()
      tide.sleep(0)   -- a fresh loop iteration, then 0.1 s of work in it
      busy(0.1)
      local t0 = core.now()
      tide.sleep(0.2)
      return core.now() - t0
    end):wait()
    assert.is_true(elapsed >= 0.2, "slept " .. elapsed .. " s of 0.2")
  end)

  it("tide.sleep on the main flow lasts at least what was asked", function()
    tide.sleep(0.001)
    busy(0.1)
    local t0 = core.now()
    tide.sleep(0.2)
    local elapsed = core.now() - t0
    assert.is_true(elapsed >= 0.2, "slept " .. elapsed .. " s of 0.2")
  end)

  it("tide.timeout gives its function at least the time asked", function()
    tide.sleep(0.001)
    busy(0.1)
    local t0 = core.now()
    local ok, err = pcall(tide.timeout, 0.2, function() tide.sleep(5) end)
    local elapsed = core.now() - t0
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(elapsed >= 0.2, "timed out after " .. elapsed .. " s of 0.2")
  end)

  it("a retry's back-off waits at least the delay it announced", function()
    local tries, delays, gaps, last = 0, {}, {}, nil
    local ok = pcall(tide.retry, {tries = 3, base = 0.1, max_delay = 0.1,
      on_retry = function(_, _, delay) delays[#delays + 1] = delay end}, function()
      tries = tries + 1
      local now = core.now()
      if last then gaps[#gaps + 1] = now - last end
      busy(0.05)
      last = core.now()
      error(tide.error{kind = "flaky", message = "again", retryable = true})
    end)
    assert.is_false(ok)
    assert.are.equal(3, tries)
    for i, gap in ipairs(gaps) do
      assert.is_true(gap >= delays[i], string.format("waited %.3f s of %.3f", gap, delays[i]))
    end
  end)

  it("a bucket's waiter gets its token no sooner than the rate allows", function()
    local b = tide.bucket(10, 1)   -- one token each 0.1 s
    local t0 = core.now()
    b:take()
    busy(0.05)
    b:take()
    assert.is_true(core.now() - t0 >= 0.1, "second token after " .. (core.now() - t0) .. " s")
  end)
end)

describe("numbers of seconds", function()
  after_each(assert_clean)

  local absurd = {1e300, math.huge, -math.huge, 0 / 0, -1, 1e10}

  it("tide.sleep refuses what is not a number of seconds from 0 to 1e9, naming the range", function()
    for _, v in ipairs(absurd) do
      local ok, err = pcall(tide.sleep, v)
      assert.is_false(ok, tostring(v))
      assert.matches("bad argument #1 to '[%w.]*sleep' %(a number of seconds >= 0 and <= 1e9 " ..
        "expected, got ", err)
    end
    assert.matches("got nan%)", select(2, pcall(tide.sleep, 0 / 0)))
    assert.matches("got string%)", select(2, pcall(tide.sleep, "soon")))
    tide.sleep(0)   -- the bounds themselves are fine
  end)

  it("tide.timeout refuses them too, before running anything", function()
    for _, v in ipairs(absurd) do
      local ran = false
      local ok, err = pcall(tide.timeout, v, function() ran = true end)
      assert.is_false(ok, tostring(v))
      assert.matches("a number of seconds >= 0 and <= 1e9 expected", err)
      assert.is_false(ran)
    end
  end)

  it("tide.retry refuses absurd waits and tries, naming the field", function()
    local function refused(opts, pattern)
      local ran = false
      local ok, err = pcall(tide.retry, opts, function() ran = true end)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.is_false(ran)
    end
    for _, field in ipairs{"base", "max_delay", "deadline", "max_retry_after"} do
      for _, v in ipairs(absurd) do
        refused({[field] = v}, "field '" .. field .. "' must be a number of seconds >= 0 and <= 1e9")
      end
    end
    refused({tries = 0 / 0}, "field 'tries' must be a whole number >= 1")
    refused({tries = math.huge}, "field 'tries' must be a whole number >= 1")
    refused({tries = 0}, "field 'tries' must be a whole number >= 1")
    refused({tries = 2.5}, "field 'tries' must be a whole number >= 1")
  end)

  it("tide.bucket refuses rates and token counts that would make its level NaN", function()
    assert.has_error(function() tide.bucket(math.huge, 1) end)
    assert.has_error(function() tide.bucket(1, math.huge) end)
    assert.has_error(function() tide.bucket(0 / 0, 1) end)
    local b = tide.bucket(1, 1)
    assert.has_error(function() b:take(math.huge) end)
    assert.has_error(function() b:put(math.huge) end)
    assert.has_error(function() b:take(0 / 0) end)
    assert.are.equal(1, b:level())   -- untouched
  end)
end)
