--- measure.lua: CPU and peak RSS of this process, for the Lua contenders, and the
-- JSON line the run script reads (curl_floor's shape).
--
--   local measure = require "measure"      -- with scripts/bench/ on package.path
--   local m = measure.start()  ...  local line = m:line(client, n, ok, wall)
--   local m = measure.start()  ...  local seconds = m:cpu()
--
-- CPU is the batch's alone (read before and after), as every contender reports it,
-- so start-up does not count; peak RSS is the whole process's.  Both come from
-- /proc: stock Lua has no getrusage.

local M = {}

local function read_file(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

-- utime and stime in /proc/self/stat are in clock ticks; ask once, before timing.
local clk_tck
local function ticks_per_second()
  if not clk_tck then
    clk_tck = 100
    local p = io.popen("getconf CLK_TCK 2>/dev/null")
    if p then
      clk_tck = tonumber(p:read("l")) or 100
      p:close()
    end
  end
  return clk_tck
end

--- The CPU this process has used: (total ns, user ticks, system ticks).
-- /proc/self/stat has user and system time in whole ticks (10 ms), too coarse for
-- small runs; the kernel's own total, in ns, is in /proc/self/schedstat (per
-- thread; tide runs on one), so the ticks only split that total, as getrusage does.
local function cpu_raw()
  -- the command name (field 2) may hold spaces: count fields after its ')'
  local rest = read_file("/proc/self/stat"):match("%) (.*)$")
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  -- rest starts at field 3, so utime (14) and stime (15) are its 12th and 13th
  local utick, stick = tonumber(fields[12]), tonumber(fields[13])
  local threads = tonumber(read_file("/proc/self/status"):match("Threads:%s*(%d+)"))
  local ns = tonumber(read_file("/proc/self/schedstat"):match("^(%d+)"))
  if threads ~= 1 or not ns then
    ns = (utick + stick) / ticks_per_second() * 1e9   -- no precise total: ticks it is
  end
  return {ns = ns, utick = utick, stick = stick}
end

--- user and system CPU seconds between two cpu_raw() readings.
local function cpu_between(a, b)
  local total = (b.ns - a.ns) / 1e9
  local u, s = b.utick - a.utick, b.stick - a.stick
  if u + s <= 0 then
    return total, 0   -- no tick sampled in between: the kernel would call it user time
  end
  return total * u / (u + s), total * s / (u + s)
end

function M.peak_rss_kb()
  return tonumber(read_file("/proc/self/status"):match("VmHWM:%s*(%d+)"))
end

local Meter = {}
Meter.__index = Meter

--- measure.start() → a meter; its CPU count starts now.
function M.start()
  ticks_per_second()   -- the popen's cost stays out of the batch
  return setmetatable({at = cpu_raw()}, Meter)
end

--- meter:cpu() → the CPU seconds (user + system) since start().
function Meter:cpu()
  return (cpu_raw().ns - self.at.ns) / 1e9
end

--- meter:line(client, n, ok, wall) → the JSON line: CPU since start(), peak RSS.
function Meter:line(client, n, ok, wall)
  local user, sys = cpu_between(self.at, cpu_raw())
  return string.format('{"client":"%s","n":%d,"ok":%d,"wall_s":%.6f,"cpu_user_s":%.6f,' ..
                       '"cpu_sys_s":%.6f,"maxrss_kb":%d}\n',
                       client, n, ok, wall, user, sys, M.peak_rss_kb())
end

return M
