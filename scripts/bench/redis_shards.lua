--- redis_shards.lua: SHARDS shard processes × CALLS calls on one shared rpm, and
-- the aggregate request rate mockllm saw (issue 20's goal: within 5 % of the limit).
--
--   tide scripts/bench/redis_shards.lua MOCKLLM_URL REDIS_URL [SHARDS] [CALLS] [RPM]
--
-- Each shard is its own tide process (redis_shard.lua, on TIDE_REDIS_URL).  The
-- rate is read from mockllm's request log: the requests after the bucket's first
-- burst (its capacity, one second's worth) over the time between the first request
-- and the last.  Without sharing, SHARDS processes would make SHARDS times the rate.
local tide = require "tide"
local cjson = require "cjson"

local url, redis_url = arg[1], arg[2]
if not (url and redis_url) then
  io.stderr:write("usage: redis_shards.lua MOCKLLM_URL REDIS_URL [SHARDS] [CALLS] [RPM]\n")
  os.exit(2)
end
local shards = math.tointeger(tonumber(arg[3] or "4"))
local calls = math.tointeger(tonumber(arg[4] or "250"))
local rpm = tonumber(arg[5] or "6000")
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local tide_bin = os.getenv("TIDE_BIN") or (here .. "/../../build/tide")

local function get(path)
  local r = tide.request{url = url .. path, timeout = 30}
  assert(r.status == 200, path .. " answered " .. r.status)
  return cjson.decode(r.body)
end

get("/__reset")
local t0 = tide.now()
local pipes = {}
for k = 1, shards do
  pipes[k] = assert(io.popen(string.format("TIDE_REDIS_URL='%s' %s %s/redis_shard.lua %s %d %s s%d-%f",
    redis_url, tide_bin, here, url, calls, rpm, k, t0)))
end
for k = 1, shards do
  local out = pipes[k]:read("a")
  pipes[k]:close()
  local line = out:match("[^\n]+")
  local ok, result = pcall(cjson.decode, line or "")
  if not ok or #result.texts ~= calls then error("shard " .. k .. " failed: " .. out) end
  if next(result.warnings) then error("shard " .. k .. " warned: " .. result.warnings[1]) end
end
local times = {}
for _, e in ipairs(get("/__log").requests) do
  if e.path == "/v1/chat/completions" then times[#times + 1] = e.t end
end
table.sort(times)
local limit = rpm / 60
local rate = (#times - limit) / (times[#times] - times[1])
print(string.format("shards       %d × %d calls at rpm %g: %d requests, %.1f/s sustained at the " ..
  "server against a limit of %.1f/s (%+.1f %%, goal within 5 %%)", shards, calls, rpm, #times,
  rate, limit, (rate / limit - 1) * 100))
