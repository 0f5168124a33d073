--- Settings: what a call uses when it does not say — the global values set by
-- tide.configure, overridden per task by tide.context.
--
-- A context is a table whose __index is its parent context; tasks inherit their
-- parent's (the C core copies it at spawn), so parallel tasks can run under
-- different LMs without touching each other.
local core = require "tide.core"
local check = require "tide.check"

local M = {}

M.global = {lm = nil, adapter = nil}

--- The value of `key` for the running task: its context chain, then the globals.
function M.get(key)
  local ctx = core.context()
  if ctx then
    local v = ctx[key]
    if v ~= nil then return v end
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
  local ctx = {}
  for k, v in pairs(overrides) do ctx[k] = v end
  local parent = core.context()
  setmetatable(ctx, {__index = parent})
  return core.spawn_in(ctx, fn, ...):wait()
end

return M
