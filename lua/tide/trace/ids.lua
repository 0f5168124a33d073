--- Trace and span ids: random, as W3C Trace Context wants them (16 and 8 bytes,
-- lowercase hex, never all zero).
--
-- The bytes come from /dev/urandom, read 4 KiB at a time, not from math.random:
-- a program that seeds math.random for its own reproducibility must not make two
-- runs' traces collide.  Where /dev/urandom cannot be read, math.random mixed with
-- the clock stands in.
local core = require "tide.core"

local M = {}

local BLOCK = 4096
local pool, pos = "", 1

local function refill()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(BLOCK)
  if f then f:close() end
  if bytes == nil or #bytes < BLOCK then
    local parts = {}
    local salt = math.floor(core.now() * 1e9) ~ os.time()
    for i = 1, BLOCK // 4 do parts[i] = string.pack("<I4", (math.random(0, 0xffffffff) ~ salt) & 0xffffffff) end
    bytes = table.concat(parts)
  end
  pool, pos = bytes, 1
end

--- A random 64-bit integer from the pool.
local function u64()
  if pos + 7 > #pool then refill() end
  local v = string.unpack("<i8", pool, pos)
  pos = pos + 8
  return v
end

function M.trace_id()
  local a, b
  repeat a, b = u64(), u64() until a ~= 0 or b ~= 0
  return string.format("%016x%016x", a, b)
end

function M.span_id()
  local v
  repeat v = u64() until v ~= 0
  return string.format("%016x", v)
end

return M
