--- The Redis specs' other processes: scripts/bench/redis_shard.lua run as tide
-- processes side by side against one Redis and one mockllm, as real shards
-- would be.
--
--   local run_shards = require "support.redis_shards"
--   local outs = run_shards(redis.url, llm.url, {"6 0 together", "6 0 together"})

local cjson = require "cjson"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"

--- Starts one shard per entry of args (each "N [RPM] [PREFIX] [SHARED]", as
-- redis_shard.lua takes them), all before reading any → each one's JSON line
-- decoded ({texts, cached, warnings}), in the order of args.
return function(redis_url, mockllm_url, args)
  local pipes = {}
  for k, a in ipairs(args) do
    pipes[k] = assert(io.popen(string.format("TIDE_REDIS_URL='%s' %s scripts/bench/redis_shard.lua %s %s",
      redis_url, TIDE, mockllm_url, a)))
  end
  local outs = {}
  for k, pipe in ipairs(pipes) do
    local out = pipe:read("a")
    pipe:close()
    outs[k] = cjson.decode(out:match("[^\n]+"))
  end
  return outs
end
