--- redis.lua: what Redis costs a tide client, in CPU (issue 20's goals).
--
--   tide scripts/bench/redis.lua MOCKLLM_URL REDIS_URL [N]
--
-- hit-disk     lm:call answered by the disk cache (memory tier off: every call
--              reads its 1 KB entry file)
-- hit-redis    the same answers from Redis (memory and disk off: every call is a
--              GET and a check of the entry against the request key)
-- take-redis   a shared rpm bucket's take: one EVALSHA (never waiting: the rate is
--              far above what is asked)
-- Each side runs N operations, 64 tasks at a time; prints one line each with the
-- client CPU per operation, and the goal's ratio.  Goals: hit-redis ≤ 1.5 × hit-disk;
-- take-redis ≤ 100 µs.
local tide = require "tide"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"
local cache_mod = require "tide.cache"
local shared_redis = require "tide.shared.redis"
local limits = require "tide.shared.limits"

local url, redis_url = arg[1], arg[2]
if not (url and redis_url) then
  io.stderr:write("usage: redis.lua MOCKLLM_URL REDIS_URL [N]\n")
  os.exit(2)
end
local n = math.tointeger(tonumber(arg[3] or "2000"))
local REPLY = ("y"):rep(770)   -- with the JSON around it, a ~1 KB entry

local p = io.popen("mktemp -d")
local dir = p:read("l")
p:close()
local client = assert(shared_redis.connect(redis_url))

local ids = {}
for i = 1, n do ids[i] = i end

local function lm_on(cache)
  return tide.LM("openai/gpt-4o-mini", {base_url = url .. "/v1", api_key = "sk-bench",
    cache = cache, max_parallel_requests = 64,
    headers = {["X-Mock-Scenario"] = "reply=" .. REPLY}})
end

--- Runs op(i) for every i, 64 at a time; → CPU µs per op.
local function cpu_per_op(op)
  local m = measure.start()
  local sem = tide.semaphore(64)
  tide.map(ids, function(i) return sem:with(op, i) end)
  return m:cpu() * 1e6 / n
end

-- the answers, made once and stored in both tiers
local fill = lm_on(cache_mod.new{memory = 0, dir = dir, redis = client})
tide.map(ids, function(i) return fill:call("question " .. i) end)

local disk = lm_on(cache_mod.new{memory = 0, dir = dir, redis = false})
local redis = lm_on(cache_mod.new{memory = 0, dir = false, redis = client})
local function hit(lm)
  return function(i)
    assert(lm:call("question " .. i).cached, "not a cache hit")
  end
end
local disk_us = cpu_per_op(hit(disk))
local redis_us = cpu_per_op(hit(redis))

tide.configure{redis = redis_url}
local bucket = limits.bucket("rpm", 1e9, 1e9, limits.redis_key("rpm", "bench", "bench", "sk-bench"))
local take_us = cpu_per_op(function() bucket:take(1) end)
tide.configure{redis = false}

print(string.format("hit-disk     %7.1f µs CPU per cache hit (N = %d)", disk_us, n))
print(string.format("hit-redis    %7.1f µs CPU per cache hit: %.2f × disk (goal ≤ 1.5)",
  redis_us, redis_us / disk_us))
print(string.format("take-redis   %7.1f µs CPU per shared bucket take (goal ≤ 100)", take_us))
client:close()
os.execute("rm -rf '" .. dir .. "'")
