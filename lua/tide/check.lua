--- Argument checks that blame the caller's line.
--
--   local check = require "tide.check"
--   check.type("LM", 1, model, "string")                  -- bad argument #1 to 'LM' (string expected, got nil)
--   check.number("LM", "opts.timeout", v, {above = 0, max = 86400})
--   check.fail("Evaluate", "metric", "a function(example, prediction) expected, got number")
--   check.misuse("tide.run() waits for a task; inside a task use task:wait()")
--
-- Lua's luaL_argerror blames the line that called the C function, whatever the
-- depth of C underneath.  Here the depth of Lua underneath varies (tide.Evaluate{}
-- goes through __call and new; a predictor through its module), so a hand-counted
-- error(msg, 3) drifts.  Instead the error is raised at the first frame on the
-- stack that is not part of the tide library: the user's line.
local M = {}

-- Every file of the library starts with this: "@/path/to/lua/tide/".
local LIB_PREFIX = debug.getinfo(1, "S").source:match("^(@.*[/\\]tide[/\\])[^/\\]+$")

local function internal(source)
  if source == "=[C]" then return true end
  return LIB_PREFIX ~= nil and source:sub(1, #LIB_PREFIX) == LIB_PREFIX
end

--- level() → the error level of the nearest frame outside the library, as seen
-- from the function that calls level()'s caller (so that `error(msg,
-- check.level())` inside a check helper blames the user's line).
local function user_level()
  local level = 3   -- 1: user_level, 2: the check helper
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil then return 2 end   -- only library frames: blame the nearest caller
    if not internal(info.source) then return level - 1 end
    level = level + 1
  end
end

--- misuse(message): raises message at the caller's line.
function M.misuse(message)
  error(message, user_level())
end

--- fail(fname, arg, message): raises "bad argument #n to 'fname' (message)"
-- (arg a number), or "bad argument 'name' to 'fname' (message)" (arg a string,
-- an option's name).
function M.fail(fname, arg, message)
  local what = type(arg) == "number" and ("#" .. arg) or ("'" .. tostring(arg) .. "'")
  error(string.format("bad argument %s to '%s' (%s)", what, fname, message), user_level())
end

local function got(v)
  if v ~= v then return "nan" end
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

--- type(fname, arg, v, expected[, optional]) → v; expected is a Lua type name.
function M.type(fname, arg, v, expected, optional)
  if type(v) == expected or (optional and v == nil) then return v end
  M.fail(fname, arg, string.format("%s expected, got %s", expected, type(v)))
end

local function range_text(r)
  local parts = {}
  if r.above ~= nil then parts[#parts + 1] = "> " .. r.above end
  if r.min ~= nil then parts[#parts + 1] = ">= " .. r.min end
  if r.max ~= nil then parts[#parts + 1] = "<= " .. r.max end
  local noun = r.integer and "an integer" or "a number"
  if #parts == 0 then return noun end
  return noun .. " " .. table.concat(parts, " and ")
end

--- number(fname, arg, v, range[, optional]) → v; range = {min, max, above,
-- integer}.  NaN and infinities are refused unless the range allows them
-- (max = math.huge).
function M.number(fname, arg, v, range, optional)
  if v == nil and optional then return nil end
  local ok = type(v) == "number" and v == v
  if ok and range.integer then ok = math.type(v) == "integer" or v == math.floor(v) end
  if ok and range.min ~= nil then ok = v >= range.min end
  if ok and range.above ~= nil then ok = v > range.above end
  if ok and range.max ~= nil then ok = v <= range.max end
  if ok and range.max ~= math.huge then ok = v > -math.huge and v < math.huge end
  if not ok then
    M.fail(fname, arg, string.format("%s expected, got %s", range_text(range), got(v)))
  end
  return v
end

--- callable(v) → whether v can be called: a function, or a table or userdata
-- whose metatable has __call.
function M.callable(v)
  if type(v) == "function" then return true end
  local mt = (type(v) == "table" or type(v) == "userdata") and getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

return M
