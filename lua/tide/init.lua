--- tide: language-model programs in Lua.
--
-- This file is the public face of the library.  Everything that waits (tasks,
-- gather, timers, HTTP) lives in the C core, `tide.core`; later layers (LM
-- providers, signatures, panels, evaluation) are Lua modules under tide/.

local core = require "tide.core"

local tide = {
  version = core.version,

  -- tasks
  spawn = core.spawn,
  current = core.current,

  -- structured fan-out
  gather = core.gather,
  map = core.map,
  race = core.race,
  timeout = core.timeout,

  -- time and limits
  sleep = core.sleep,
  now = core.now,
  semaphore = core.semaphore,

  -- HTTP
  request = core.request,
  stream = core.stream,

  -- retries and rate limits
  retry = core.retry,
  bucket = core.bucket,

  -- errors
  error = core.error,
  is_error = core.is_error,

  -- driving the loop (hosts, scripts under plain lua5.4)
  poll = core.poll,
  stats = core.stats,
}

--- Runs fn(...) as a task and returns its results, raising its error.  On the main
-- flow this runs the loop until fn is done; inside a task it waits for it.
-- Without a function, runs the loop until no task is left.
function tide.run(fn, ...)
  if fn == nil then
    return core.run_until_idle()
  end
  return core.spawn(fn, ...):wait()
end

return tide
