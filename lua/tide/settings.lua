--- Settings: what a call uses when it does not say — the global values set by
-- tide.configure, overridden per task by tide.context.
--
-- A task's settings are a table whose __index is its parent's; tasks inherit
-- their parent's (the C core hands them on at spawn; core.task_settings() reads the
-- running task's), so parallel tasks can run under different LMs without
-- touching each other.  A value false unsets the one beneath it:
-- tide.context({lm = false}, fn) runs fn with no LM even when one is configured.
local core = require "tide.core"
local check = require "tide.check"

local M = {}

M.global = {lm = nil, adapter = nil}

--- key → function(value) told when tide.context sets that key (tide.callbacks
-- checks a callback list there and turns callbacks on).
M.watch = {}

local task_settings = core.task_settings   -- the running task's table, or nil

--- The value of `key` for the running task: its chain of settings, then the
-- globals; nil when unset (false at some level).
function M.get(key)
  local own = task_settings()
  if own then
    local v = own[key]
    if v ~= nil then return v or nil end
  end
  return M.global[key]
end

--- Runs fn(...) as a task under `overrides` (layered over the current context)
-- and returns its results.
function M.with(overrides, fn, ...)
  check.type("context", 1, overrides, "table")
  if not check.callable(fn) then
    check.fail("context", 2, "function expected, got " .. type(fn))
  end
  local own = {}
  for k, v in pairs(overrides) do
    local watch = M.watch[k]
    if watch then watch(v) end
    own[k] = v
  end
  setmetatable(own, {__index = task_settings()})
  return core.spawn_in(own, fn, ...):wait()
end

return M
