--- Runs generated Lua code in a sandbox: ProgramOfThought's interpreter.
--
--   local out, err = sandbox.run(code, {budget = 1e6})
--
-- The code sees Lua's string, table, math and utf8 libraries and the plain base
-- functions — no io, os, require, load, debug, coroutine, getmetatable,
-- collectgarbage or finalizers (__gc) — and FINAL(value), which ends it with that
-- value.  It runs under an instruction budget (a count hook: an endless loop is
-- stopped), and its strings' methods are the sandbox's too (string.rep capped, no
-- string.dump) while it runs, since ("x"):rep(n) reaches the string metatable, not
-- the sandbox's table.  pcall inside the code cannot catch the budget or FINAL.
--
-- The code runs to its end without yielding (it can call nothing that waits), so
-- swapping the string metatable's __index for that time affects no other task.
local M = {}

local DEFAULT_BUDGET = 1000000      -- VM instructions, counted by the hook in steps
local HOOK_STEP = 1000
local MAX_REP = 1024 * 1024         -- bytes string.rep may make

local BUDGET = setmetatable({}, {__tostring = function() return "instruction budget exceeded" end})
local FINAL = {}

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local safe_string = copy(string)
safe_string.dump = nil
function safe_string.rep(s, n, sep)
  local size = #tostring(s) * (tonumber(n) or 0) + #(sep or "") * math.max((tonumber(n) or 0) - 1, 0)
  if size > MAX_REP then error(string.format("string.rep: %d bytes is over the sandbox's %d", size, MAX_REP), 2) end
  return string.rep(s, n, sep)
end

--- The value as JSON text, as DSPy's json.dumps shows the result.
local function dumps(v)
  return require("tide.adapters.pyjson").dumps(v)
end

-- A finalizer would run at some later collection, outside the code's budget and
-- its string methods: a metatable with __gc is refused (Lua reads it once, here).
local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc is not allowed in the sandbox", 2)
  end
  return setmetatable(t, mt)
end

local function environment(printed, final)
  local function rethrowing_pcall(f, ...)
    local r = table.pack(pcall(f, ...))
    if not r[1] and (r[2] == BUDGET or r[2] == FINAL) then error(r[2], 0) end
    return table.unpack(r, 1, r.n)
  end
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = rethrowing_pcall, rawequal = rawequal, rawget = rawget, rawlen = rawlen,
    rawset = rawset, select = select, setmetatable = safe_setmetatable, tonumber = tonumber,
    tostring = tostring, type = type, unpack = table.unpack,
    string = safe_string, table = copy(table), math = copy(math), utf8 = copy(utf8),
  }
  env.xpcall = function(f, handler, ...)
    return rethrowing_pcall(function(...)
      return select(2, assert(xpcall(f, function(e)
        if e == BUDGET or e == FINAL then return e end
        return handler(e)
      end, ...)))
    end, ...)
  end
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    printed[#printed + 1] = table.concat(parts, "\t")
  end
  env.FINAL = function(value)
    final.value, final.set = value, true
    error(FINAL, 0)
  end
  env._G = env
  return env
end

--- run(code [, {budget = n}]) → the output as JSON text (FINAL's value, else what the
-- chunk returned, else what it printed), or nil and an error message.
function M.run(code, opts)
  local budget = opts and opts.budget or DEFAULT_BUDGET
  local printed, final = {}, {}
  local chunk, err = load(code, "=code", "t", environment(printed, final))
  if not chunk then return nil, "syntax error: " .. err end
  local string_mt = getmetatable("")
  local saved_index = string_mt.__index
  local steps = 0
  local saved_hook = {debug.gethook()}
  string_mt.__index = safe_string
  debug.sethook(function()
    steps = steps + HOOK_STEP
    if steps > budget then error(BUDGET, 0) end
  end, "", HOOK_STEP)
  local results = table.pack(pcall(chunk))
  debug.sethook(table.unpack(saved_hook))
  string_mt.__index = saved_index
  local ok, e = results[1], results[2]
  if not ok and e == BUDGET then
    return nil, string.format("the code ran past its budget of %d instructions", budget)
  elseif not ok and e ~= FINAL then
    return nil, tostring(e)
  end
  if final.set then return dumps(final.value) end
  if results.n > 1 then return dumps(results[2]) end
  if #printed > 0 then return table.concat(printed, "\n") end
  return nil, "the code neither called FINAL(...) nor returned nor printed a value"
end

return M
