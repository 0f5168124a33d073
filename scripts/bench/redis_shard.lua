--- One shard process for the Redis bench (redis_run) and specs: N LM calls to
-- mockllm, 16 at a time, printing one JSON line {texts, cached, warnings}.  Its
-- Redis comes from TIDE_REDIS_URL, as a real shard's would; the disk cache is
-- off, so that only Redis can share answers or a rate between shards.
--   tide scripts/bench/redis_shard.lua MOCKLLM_URL N [RPM] [PREFIX] [SHARED]
-- RPM 0: none; SHARED: the LM's max_parallel_shared (calls in flight across shards).
local tide = require "tide"
local cjson = require "cjson"
local shared_redis = require "tide.shared.redis"

local base, n = arg[1], math.tointeger(tonumber(arg[2]))
local rpm, prefix = tonumber(arg[3] or "0"), arg[4] or "question"
local shared = arg[5] and math.tointeger(tonumber(arg[5]))
local warnings = {}
shared_redis.warn = function(message) warnings[#warnings + 1] = message end
tide.configure{cache = {dir = false}}

local lm = tide.LM("openai/gpt-4o-mini", {base_url = base .. "/v1", api_key = "sk-shard-secret",
  rpm = rpm > 0 and rpm or nil, max_parallel_requests = 16, max_parallel_shared = shared})
local ids = {}
for i = 1, n do ids[i] = i end
local results = tide.map(ids, function(i)
  return lm:call(string.format("%s %d", prefix, i))
end)
local texts, cached = {}, 0
for i, r in ipairs(results) do
  texts[i] = r.text
  if r.cached then cached = cached + 1 end
end
print(cjson.encode({texts = texts, cached = cached, warnings = warnings}))
