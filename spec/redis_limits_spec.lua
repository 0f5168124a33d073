--- rpm/tpm buckets shared through a real redis-server: processes on one Redis keep
-- the rate one process would (measured at mockllm's request log), NOSCRIPT is
-- recovered, and Redis down or refusing falls back to the local bucket.
local tide = require "tide"
local shared_redis = require "tide.shared.redis"
local limits = require "tide.shared.limits"
local gate = require "tide.shared.gate"
local redis = require "support.redis"
local mockllm = require "support.mockllm"
local run_shards = require "support.redis_shards"
local redis_tier = require "support.redis_tier"
local eventually = require "support.eventually"

--- The sustained rate at the server: the requests after the bucket's first burst
-- (its capacity) over the time they took, from the log's timestamps.
local function sustained_rate(server, capacity, weight)
  local log = server:get_json("/__log").requests
  local times = {}
  for _, e in ipairs(log) do
    if e.path == "/v1/chat/completions" then times[#times + 1] = e.t end
  end
  table.sort(times)
  weight = weight or 1
  return (#times * weight - capacity) / (times[#times] - times[1]), #times
end

describe("shared rate limits", function()
  local tier = redis_tier.new()   -- tier.server, tier.llm, tier.warnings

  it("keeps three processes together at one rpm, measured at the server", function()
    local rpm, per_shard = 1200, 30   -- 20/s, bursts of 20
    local args = {}
    for k = 1, 3 do args[k] = string.format("%d %d shard%d", per_shard, rpm, k) end
    for _, out in ipairs(run_shards(tier.server.url, tier.llm.url, args)) do
      assert.are.same({}, out.warnings)
    end
    local rate, n = sustained_rate(tier.llm, rpm / 60)
    assert.are.equal(3 * per_shard, n)
    -- one process alone would allow 20/s; three unshared buckets 60/s and 60 at once
    assert.is_true(rate <= rpm / 60 * 1.1, "rate at the server: " .. rate)
    -- Redis holds the bucket under a hash: no key, no model name in clear
    local keys = tier.server:cli("KEYS", "tide:v1:rate:*")
    assert.matches("^tide:v1:rate:rpm:%x+$", keys)
    assert.is_nil(tier.server:cli("HGETALL", keys):find("sk-shard-secret", 1, true))
  end)

  it("shares tpm between LMs of the same provider, model and key", function()
    local tpm = 120000   -- 2000 tokens/s, bursts of 2000
    local function new_lm()
      return tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = "sk-tpm",
        tpm = tpm, max_tokens = 500, cache = false})
    end
    local a, b = new_lm(), new_lm()
    local ids = {}
    for i = 1, 6 do ids[i] = i end
    tide.gather(
      function() tide.map(ids, function(i) return a:call("a" .. i) end) end,
      function() tide.map(ids, function(i) return b:call("b" .. i) end) end)
    -- each call takes ceil(#prompt / 4) + max_tokens = 501 tokens
    local rate, n = sustained_rate(tier.llm, tpm / 60, 501)
    assert.are.equal(12, n)
    assert.is_true(rate <= tpm / 60 * 1.1, "tokens per second at the server: " .. rate)
    assert.are.same({}, tier.warnings)
  end)

  it("loads the script again after SCRIPT FLUSH (NOSCRIPT), without falling back", function()
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = "sk-ns",
      rpm = 600, cache = false})
    lm:call("before")
    local key = limits.redis_key("rpm", "openai", "gpt-4o-mini", "sk-ns")
    local last = tier.server:cli("HGET", key, "last")
    tier.server:cli("SCRIPT", "FLUSH")
    tide.sleep(0.01)
    lm:call("after")
    assert.are_not.equal(last, tier.server:cli("HGET", key, "last"))   -- the take went to Redis
    assert.are.same({}, tier.warnings)
  end)

  it("falls back to the local bucket when Redis refuses the script's write (OOM)", function()
    local full = redis.start{extra = {"--maxmemory", "1", "--maxmemory-policy", "noeviction"}}
    tide.configure{redis = full.url}
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = "sk-oom",
      rpm = 600, cache = false})
    assert.is_string(lm:call("one").text)
    assert.is_string(lm:call("two").text)
    assert.are.equal(2, tier.llm:stats().requests)
    assert.are.equal(1, #tier.warnings)
    assert.matches("refused a take from the shared rpm bucket: OOM", tier.warnings[1])
    tide.configure{redis = false}
    full:stop()
  end)

  it("keeps the limit per process when Redis is down, with one warning", function()
    tide.configure{redis = "redis://127.0.0.1:1"}
    local rpm = 6000   -- 100/s, bursts of 100
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = "sk-down",
      rpm = rpm, cache = false})
    local ids = {}
    for i = 1, 150 do ids[i] = i end
    tide.map(ids, function(i) return lm:call("down " .. i) end)
    local rate, n = sustained_rate(tier.llm, rpm / 60)
    assert.are.equal(150, n)
    assert.is_true(rate <= rpm / 60 * 1.1, "rate at the server: " .. rate)
    assert.are.equal(1, #tier.warnings)
    assert.matches("unavailable.*local cache and rate limits", tier.warnings[1])
  end)

  it("goes on with the local bucket when Redis is killed mid-run, and shares again after", function()
    local rpm = 3000   -- 50/s, bursts of 50
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = "sk-kill",
      rpm = rpm, cache = false})
    local key = limits.redis_key("rpm", "openai", "gpt-4o-mini", "sk-kill")
    local ids = {}
    for i = 1, 120 do ids[i] = i end
    local run = tide.spawn(tide.map, ids, function(i) return lm:call("kill " .. i).text end)
    tier.llm:wait_for(function(s) return s.requests >= 60 end, 1000)   -- past the burst: waiting on Redis
    tier.server:kill()
    local texts = run:wait()
    for i = 1, 120 do assert.are.equal("Mock reply to: kill " .. i, texts[i]) end
    -- the local bucket starts full: one more burst when it takes over, then the rate
    local rate = sustained_rate(tier.llm, 2 * rpm / 60)
    assert.is_true(rate <= rpm / 60 * 1.1, "rate at the server: " .. rate)
    assert.are.equal(1, #tier.warnings)
    assert.matches("unavailable", tier.warnings[1])
    tier.server:restart()
    local client = shared_redis.current()
    assert.is_true(eventually(function() return client:state() == "ready" end, 6))
    lm:call("after restart")
    assert.matches("^%d", tier.server:cli("HGET", key, "level"))   -- the take went to Redis again
    assert.matches("is back", tier.warnings[#tier.warnings])
  end)

  describe("max_parallel_shared", function()
    local slow
    local saved_lease = gate.LEASE
    after_each(function()
      gate.LEASE = saved_lease
      if slow then slow:stop() end
      slow = nil
    end)

    local function slow_lm(n, latency_ms)
      slow = mockllm.start{latency_ms = latency_ms}
      return tide.LM("openai/gpt-4o-mini", {base_url = slow.url .. "/v1", api_key = "sk-gate",
        max_parallel_shared = n, cache = false})
    end

    it("caps the calls in flight of three processes together", function()
      slow = mockllm.start{latency_ms = 300}
      local args = {"8 0 gate1 4", "8 0 gate2 4", "8 0 gate3 4"}
      for _, out in ipairs(run_shards(tier.server.url, slow.url, args)) do
        assert.are.same({}, out.warnings)
      end
      local stats = slow:stats()
      assert.are.equal(24, stats.requests)
      assert.is_true(stats.peak_in_flight <= 4, "peak in flight " .. stats.peak_in_flight)
      assert.is_true(stats.peak_in_flight >= 2)   -- the cap was used, not a queue of one
      assert.are.equal("0", tier.server:cli("ZCARD", tier.server:cli("KEYS", gate.PREFIX .. "*")))
    end)

    it("renews a lease while its call runs, past the lease's life", function()
      gate.LEASE = 0.3
      local lm = slow_lm(1, 1000)
      tide.gather(function() return lm:call("first") end, function() return lm:call("second") end)
      assert.are.equal(2, slow:stats().requests)
      assert.are.equal(1, slow:stats().peak_in_flight)
    end)

    it("gives a dead holder's place to others once its lease has ended", function()
      local lm = slow_lm(1, 0)
      local key = gate.PREFIX .. limits.identity("openai", "gpt-4o-mini", "sk-gate")
      local secs, usecs = tier.server:cli("TIME"):match("^(%d+)\n(%d+)$")
      local ends = math.tointeger(secs) * 1000 + math.tointeger(usecs) // 1000 + 300
      tier.server:cli("ZADD", key, tostring(ends), "a-process-that-died")
      assert.are.equal("Mock reply to: after", lm:call("after").text)
      assert.are.equal("", tier.server:cli("ZSCORE", key, "a-process-that-died"))
      assert.are.same({}, tier.warnings)
    end)

    it("refuses a max_parallel_shared that is not a count, naming it", function()
      assert.has_error(function() tide.LM("openai/x", {api_key = "k", max_parallel_shared = 0}) end,
        "bad argument 'opts.max_parallel_shared' to 'LM' (an integer >= 1 and <= 1000000 expected, got 0)")
    end)

    it("caps each process alone when Redis is down", function()
      tide.configure{redis = "redis://127.0.0.1:1"}
      local lm = slow_lm(2, 200)
      local ids = {}
      for i = 1, 6 do ids[i] = i end
      tide.map(ids, function(i) return lm:call("down " .. i) end)
      assert.are.equal(6, slow:stats().requests)
      assert.are.equal(2, slow:stats().peak_in_flight)
      assert.are.equal(1, #tier.warnings)
    end)
  end)

  it("hashes the key into the bucket's name", function()
    local k1 = limits.redis_key("rpm", "openai", "gpt-4o-mini", "sk-one")
    assert.are_not.equal(k1, limits.redis_key("rpm", "openai", "gpt-4o-mini", "sk-two"))
    assert.are_not.equal(k1, limits.redis_key("tpm", "openai", "gpt-4o-mini", "sk-one"))
    assert.are.equal(k1, limits.redis_key("rpm", "openai", "gpt-4o-mini", "sk-one"))
    assert.is_nil(k1:find("sk-one", 1, true))
    assert.are.equal(16, #limits.key_fingerprint("sk-one"))
  end)
end)
