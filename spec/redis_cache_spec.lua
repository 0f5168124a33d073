--- tide.core.redis on a real redis-server, the redis:// URLs, and the LM cache's
-- Redis tier: two processes on one Redis (the second repeats no request, counted
-- at mockllm), foreign values, error replies, and Redis killed and restarted mid-run.
local tide = require "tide"
local core = require "tide.core"
local cjson = require "cjson"
local cache_mod = require "tide.cache"
local shared_redis = require "tide.shared.redis"
local shared_cache = require "tide.shared.cache"
local inflight = require "tide.shared.inflight"
local redis = require "support.redis"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local run_shards = require "support.redis_shards"
local redis_tier = require "support.redis_tier"
local eventually = require "support.eventually"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"

--- Waits (running the loop) until the connection's state is `want`.
local function wait_state(conn, want)
  return eventually(function() return conn:state() == want end, 6)
end

--- Runs scripts/bench/redis_shard.lua as its own tide process → its JSON line.
local function shard(server_url, redis_url, n, prefix)
  return run_shards(redis_url, server_url, {string.format("%d 0 %s", n, prefix)})[1]
end

describe("tide.core.redis", function()
  local server
  setup(function() server = redis.start{password = "s3cret-pw"} end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  local function open(opts)
    opts = opts or {}
    return core.redis{host = "127.0.0.1", port = server.port,
      password = opts.password or "s3cret-pw", timeout = opts.timeout}
  end

  it("sends commands and gives their replies as Lua values", function()
    local r <close> = open()
    assert.are.equal("OK", r:command("SET", "greeting", "hello\0world"))
    assert.are.equal("hello\0world", r:command("GET", "greeting"))
    assert.is_nil(r:command("GET", "absent"))
    assert.are.equal(3, r:command("RPUSH", "list", "a", 2, "c"))
    assert.are.same({"a", "2", "c"}, r:command("LRANGE", "list", 0, -1))
    assert.are.same({1, false, {"x"}},
      r:command("EVAL", "return {1, redis.call('GET', 'nothing'), {'x'}}", 0))
    assert.are.equal("ready", r:state())
  end)

  it("pipelines the commands of many tasks on one link, each reply to its caller", function()
    local r <close> = open()
    r:command("DEL", "counter")
    local ids = {}
    for i = 1, 200 do ids[i] = i end
    local got = tide.map(ids, function(i)
      local n = r:command("INCR", "counter")
      assert.are.equal(tostring(i), r:command("ECHO", tostring(i)))
      return n
    end)
    table.sort(got)
    for i = 1, 200 do assert.are.equal(i, got[i]) end
    assert.are.equal(1, r:stats().connects)
    assert.are.equal(0, r:stats().pending)
  end)

  it("has every task's command out at once while the server holds them (pipelined)", function()
    local r <close> = open()
    local admin <close> = open()
    admin:command("CLIENT", "PAUSE", "300", "ALL")   -- the server reads, answers nothing
    local ids = {}
    for i = 1, 100 do ids[i] = i end
    local run = tide.spawn(tide.map, ids, function(i) return r:command("ECHO", tostring(i)) end)
    tide.sleep(0.1)
    assert.are.equal(100, r:stats().pending)   -- none waited for another's reply to be sent
    local got = run:wait()
    for i = 1, 100 do assert.are.equal(tostring(i), got[i]) end
  end)

  it("raises an error reply as kind redis with its code, and goes on", function()
    local r <close> = open()
    local ok, err = pcall(r.command, r, "EVALSHA", string.rep("0", 40), 0)
    assert.is_false(ok)
    assert.are.equal("redis", err.kind)
    assert.are.equal("NOSCRIPT", err.code)
    assert.matches("127.0.0.1:" .. server.port, err.message, 1, true)
    assert.are.equal("PONG", r:command("PING"))
  end)

  it("says a wrong password without showing either password", function()
    local r <close> = open{password = "not-the-one"}
    local ok, err = pcall(r.command, r, "GET", "x")
    assert.is_false(ok)
    assert.are.equal("redis_unavailable", err.kind)
    assert.matches("WRONGPASS", err.message)
    assert.is_nil(err.message:find("not-the-one", 1, true))
    assert.is_nil(err.message:find("s3cret-pw", 1, true))
    assert.are.equal("down", r:state())
    -- while down, a command fails at once (callers fall back without waiting)
    ok, err = pcall(r.command, r, "GET", "x")
    assert.are.equal("redis_unavailable", err.kind)
  end)

  it("fails commands at once when nothing listens, then connects once Redis is there", function()
    local r <close> = core.redis{host = "127.0.0.1", port = 1}
    local ok, err = pcall(r.command, r, "PING")
    assert.is_false(ok)
    assert.are.equal("redis_unavailable", err.kind)
    assert.matches("refused", err.message)
  end)

  it("resolves a host name without blocking, and connects", function()
    local r <close> = core.redis{host = "localhost", port = server.port, password = "s3cret-pw"}
    assert.are.equal("PONG", r:command("PING"))
  end)

  it("fails what waits when closed, and refuses use after close", function()
    local r = open()
    local t = tide.spawn(function() return r:command("BLPOP", "never-filled", 0) end)
    tide.sleep(0.05)
    r:close()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("redis_unavailable", err.kind)
    assert.matches("closed", err.message)
    assert.has_error(function() r:command("PING") end, "attempt to use a closed tide.redis")
    r:close()   -- twice is fine
  end)

  it("drops a link whose server answers nothing within the timeout", function()
    local r <close> = open{timeout = 0.2}
    local ok, err = pcall(r.command, r, "BLPOP", "never-filled", 0)
    assert.is_false(ok)
    assert.are.equal("redis_unavailable", err.kind)
    assert.matches("no reply within 0.2 s", err.message)
    assert.is_true(wait_state(r, "ready"))   -- and comes back after its back-off
    assert.are.equal("PONG", r:command("PING"))
  end)

  it("cancels a waiting command without disturbing the others on the link", function()
    local r <close> = open()
    local waiting = tide.spawn(function() return r:command("BLPOP", "never-filled", "0.3") end)
    tide.sleep(0.02)
    waiting:cancel()
    assert.are.equal("cancelled", select(2, pcall(waiting.wait, waiting)).kind)
    assert.are.equal("PONG", r:command("PING"))   -- its reply (nil after 0.3 s) is dropped
  end)

  it("refuses wrong arguments, naming them", function()
    assert.has_error(function() core.redis{port = 1} end)
    assert.has_error(function() core.redis{host = "h", port = 70000} end,
      "bad argument #1 to 'redis' (field 'port' must be an integer from 1 to 65535)")
    local r <close> = open()
    assert.has_error(function() r:command() end, "bad argument #1 to 'command' (a command name expected)")
    assert.has_error(function() r:command("GET", {}) end,
      "bad argument #2 to 'command' (string or number expected, got table)")
  end)
end)

describe("redis:// URLs", function()
  it("parses host, port, credentials and database", function()
    local o = shared_redis.parse("redis://user:p%40ss@cache.example:6380/3")
    assert.are.same({host = "cache.example", port = 6380, user = "user", password = "p@ss",
      db = 3, where = "cache.example:6380"}, o)
    o = shared_redis.parse("redis://:pw@[::1]")
    assert.are.same({host = "::1", port = 6379, password = "pw", db = 0, where = "[::1]:6379"}, o)
    assert.are.same({host = "h", port = 6379, db = 0, where = "h:6379"},
      shared_redis.parse("redis://h/"))
  end)

  it("says what is wrong with a malformed URL, without its password", function()
    local cases = {
      {"http://h:1", "not redis://"},
      {"redis://:secretpw@h:99999", "a port outside 1%-65535"},
      {"redis://:secretpw@h/x", "a path that is not /DB"},
      {"redis://:secretpw@/0", "no host"},
      {"redis://secretpw@h", "credentials without ':'"},
    }
    for _, c in ipairs(cases) do
      local o, why = shared_redis.parse(c[1])
      assert.is_nil(o)
      assert.matches(c[2], why)
      assert.is_nil(why:find("secretpw", 1, true))
    end
  end)

  it("refuses rediss:// saying this hiredis has no TLS", function()
    local o, why = shared_redis.parse("rediss://:pw@h:6380")
    assert.is_nil(o)
    assert.matches("this hiredis %(" .. core.hiredis_version .. "%) was built without TLS", why)
  end)

  it("makes tide.configure{redis = ...} misuse raise at the caller's line", function()
    local ok, err = pcall(tide.configure, {redis = "redis://:pw@h:0"})
    assert.is_false(ok)
    assert.matches("bad argument 'redis' to 'configure' %(a port outside", err)
    assert.has_error(function() tide.configure{redis = 42} end)
    assert.has_error(function() tide.configure{redis = {url = "redis://h", ttl = -1}} end)
  end)
end)

describe("the LM cache's Redis tier", function()
  local tier = redis_tier.new()   -- tier.server, tier.llm, tier.warnings

  local function new_lm(cache)
    return tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = "sk-tier-secret",
      cache = cache})
  end

  it("lets a second process repeat no request the first one made", function()
    local first = shard(tier.llm.url, tier.server.url, 12, "shared")
    assert.are.equal(12, tier.llm:stats().requests)
    assert.are.equal(0, first.cached)
    local second = shard(tier.llm.url, tier.server.url, 12, "shared")
    assert.are.equal(12, tier.llm:stats().requests)   -- none more: every answer came from Redis
    assert.are.equal(12, second.cached)
    assert.are.same(first.texts, second.texts)
    assert.are.same({}, second.warnings)
    -- what Redis holds: tide's entries under the versioned prefix, no key in them
    local keys = tier.server:cli("KEYS", "*")
    for key in keys:gmatch("[^\n]+") do
      assert.matches("^tide:v1:lm:%x+$", key)
      assert.is_nil(tier.server:cli("GET", key):find("sk-shard-secret", 1, true))
    end
  end)

  it("serves a fresh cache from Redis, keeping what it read in memory", function()
    local lm1 = new_lm(cache_mod.new{dir = false})
    local answer = lm1:call("colour?")
    assert.are.equal(1, tier.llm:stats().requests)
    local c2 = cache_mod.new{dir = false}
    local lm2 = new_lm(c2)
    local again = lm2:call("colour?")
    assert.is_true(again.cached)
    assert.are.equal(answer.text, again.text)
    assert.are.equal(1, tier.llm:stats().requests)
    assert.are.equal(1, c2.size)
  end)

  it("shares embedder results too: a second embedder on a fresh cache sends nothing", function()
    local function embedder()
      return require("tide.embedder").new("openai/text-embedding-3-small", {base_url = tier.llm.url .. "/v1",
        api_key = "sk-embed", cache = cache_mod.new{dir = false}})
    end
    local first = embedder():embed{"alpha beta", "gamma"}
    local requests = tier.llm:stats().requests
    assert.is_true(requests >= 1)
    local again = embedder()
    assert.are.same(first, again:embed{"alpha beta", "gamma"})
    assert.are.equal(requests, tier.llm:stats().requests)
    assert.are.equal(2, again.usage.cache_hits)
  end)

  it("makes identical calls in flight in two processes once", function()
    local slow = mockllm.start{latency_ms = 800}   -- well past a process's start-up
    local cached = 0
    for _, out in ipairs(run_shards(tier.server.url, slow.url, {"6 0 together", "6 0 together"})) do
      cached = cached + out.cached
    end
    local requests = slow:stats().requests
    slow:stop()
    assert.are.equal(6, requests)   -- not 12: each question was asked by one process
    assert.are.equal(6, cached)
    assert.are.equal("", tier.server:cli("KEYS", inflight.PREFIX .. "*"))   -- every lock released
  end)

  it("waits out a lock whose holder died, then takes it; or takes the holder's answer", function()
    local c = cache_mod.new{dir = false}
    local key = ("c"):rep(64)
    tier.server:cli("SET", inflight.PREFIX .. key, "a-holder-that-crashed", "PX", "300")
    local lock, answer = inflight.claim(c, key)
    assert.is_nil(answer)
    assert.are.equal(lock.token, tier.server:cli("GET", inflight.PREFIX .. key))
    lock:__close()
    assert.is_true(wait_state(shared_redis.current().conn, "ready"))
    tide.sleep(0.05)   -- the release was posted, not awaited
    assert.are.equal("", tier.server:cli("GET", inflight.PREFIX .. key))
    -- a live holder stores its answer: the waiter takes it and makes no call
    tier.server:cli("SET", inflight.PREFIX .. key, "a-live-holder", "PX", "5000")
    tide.spawn(function()
      tide.sleep(0.1)
      shared_cache.put(shared_redis.current(), key, cjson.encode{text = "theirs"})
    end)
    lock, answer = inflight.claim(c, key)
    assert.is_nil(lock)
    assert.are.equal("theirs", answer.text)
    assert.are.equal("theirs", c:get(key).text)   -- and keeps it in memory
  end)

  it("never writes an API key to Redis, even one a server put in its answer", function()
    local key = "sk-redis-canary-4242"
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = tier.llm.url .. "/v1", api_key = key,
      cache = cache_mod.new{dir = false}, headers = {["X-Mock-Scenario"] = "reply=your key is " .. key}})
    assert.matches(key, lm:call("echo?").text, 1, true)   -- the caller gets the answer as it came
    local stored = tier.server:cli("GET", tier.server:cli("KEYS", shared_cache.PREFIX .. "*"))
    assert.is_nil(stored:find(key, 1, true))
    assert.matches("your key is [redacted]", stored, 1, true)
  end)

  it("lets calls holding a link that tide.configure replaced go on, without a warning", function()
    local old = shared_redis.current()
    local run = tide.spawn(function() return old:call("BLPOP", "never-filled", "5") end)
    tide.sleep(0.05)
    tide.configure{redis = tier.server.url}   -- a new link; the old one closes
    local value, err = run:wait()
    assert.is_nil(value)
    assert.are.equal("redis_unavailable", err.kind)
    value, err = old:call("GET", "x")
    assert.is_nil(value)
    assert.matches("this link was closed", err.message)
    assert.are.same({}, tier.warnings)
    assert.are.equal("PONG", shared_redis.current():call("PING"))
  end)

  it("writes entries with the configured TTL", function()
    tide.configure{redis = {url = tier.server.url, ttl = 300}}
    new_lm(cache_mod.new{dir = false}):call("ttl?")
    local key = tier.server:cli("KEYS", "tide:v1:lm:*")
    local ttl = tonumber(tier.server:cli("TTL", key))
    assert.is_true(ttl > 290 and ttl <= 300)
  end)

  it("ignores a value under the prefix that is not tide's, and says so once", function()
    local c = cache_mod.new{dir = false}
    local key = ("a"):rep(64)
    tier.server:cli("SET", shared_cache.PREFIX .. key, "not json at all")
    assert.is_nil(c:get(key))
    -- a tide entry of another request copied under this key is refused too
    tier.server:cli("SET", shared_cache.PREFIX .. key,
      cjson.encode{key = ("b"):rep(64), answer = {text = "poisoned"}})
    assert.is_nil(c:get(key))
    assert.are.equal(1, #tier.warnings)
    assert.matches("not tide's", tier.warnings[1])
    -- and a call whose key holds such a value is made, then stored over it
    local lm1 = new_lm(cache_mod.new{dir = false})
    lm1:call("real?")
    local stored = tier.server:cli("KEYS", shared_cache.PREFIX .. "*")
    assert.is_truthy(stored:find("\n", 1, true))   -- two entries now
  end)

  it("falls back when Redis answers errors (OOM), with one warning", function()
    local full = redis.start{extra = {"--maxmemory", "1", "--maxmemory-policy", "noeviction"}}
    tide.configure{redis = full.url}
    local lm1 = new_lm(cache_mod.new{dir = false})
    local a = lm1:call("one?")
    local b = lm1:call("two?")
    assert.is_string(a.text)
    assert.is_string(b.text)
    assert.are.equal(2, tier.llm:stats().requests)
    assert.are.equal(1, #tier.warnings)
    assert.matches("refused to store an answer: OOM", tier.warnings[1])
    tide.configure{redis = false}
    full:stop()
  end)

  it("loses nothing when Redis is killed mid-run, and shares again once it is back", function()
    local slow = mockllm.start{latency_ms = 300}
    local lm_slow = tide.LM("openai/gpt-4o-mini", {base_url = slow.url .. "/v1", api_key = "sk-x",
      cache = cache_mod.new{dir = false}})
    local ids = {}
    for i = 1, 20 do ids[i] = i end
    local run = tide.spawn(tide.map, ids, function(i) return lm_slow:call("killed " .. i).text end)
    slow:wait_for(function(s) return s.in_flight == 20 end)
    tier.server:kill()   -- every call is in flight: their answers cannot be stored in Redis
    local texts = run:wait()
    slow:stop()
    local lm1 = new_lm(cache_mod.new{dir = false})
    for i = 1, 20 do assert.are.equal("Mock reply to: killed " .. i, texts[i]) end
    assert.are.equal(1, #tier.warnings)
    assert.matches("is unavailable", tier.warnings[1])
    assert.matches("local cache", tier.warnings[1])
    -- calls go on without it
    assert.are.equal("Mock reply to: down", lm1:call("down").text)
    -- back: the link reconnects by itself, and answers are shared again
    tier.server:restart()
    local client = shared_redis.current()
    assert.is_true(wait_state(client.conn, "ready"))
    lm1:call("after restart")
    local fresh = new_lm(cache_mod.new{dir = false})
    local before = tier.llm:stats().requests
    assert.is_true(fresh:call("after restart").cached)
    assert.are.equal(before, tier.llm:stats().requests)
    assert.matches("is back", tier.warnings[#tier.warnings])
  end)

  it("gives tide eval --redis: a second run on another disk cache makes no request", function()
    local files = require "support.files"
    local dir = files.tmpdir()
    files.write(dir .. "/program.lua", [[
local tide = require "tide"
local critic = tide.Predict("content -> score: int, approved: bool")
return {program = function(inputs) return critic{content = inputs.content} end,
        metric = function() return true end, inputs = {"content"}}
]])
    local rows = {}
    for i = 1, 6 do rows[i] = cjson.encode{content = "draft " .. i} end
    files.write(dir .. "/data.jsonl", table.concat(rows, "\n") .. "\n")
    local function eval(run, redis_url)
      local cmd = string.format("cd %s && env -u TIDE_MODEL -u MOCKLLM_URL -u TIDE_REDIS_URL " ..
        "OPENAI_API_KEY=sk-eval OPENAI_BASE_URL=%s/v1 TIDE_CACHE_DIR=%s/cache%d %s eval " ..
        "program.lua --model openai/mock --data data.jsonl --out out%d.jsonl --progress none " ..
        "--redis '%s' 2>&1", dir, tier.llm.url, dir, run, TIDE, run, redis_url)
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      local _, _, code = p:close()
      return code, out
    end
    local code, out = eval(1, tier.server.url)
    assert.are.equal(0, code, out)
    assert.are.equal(6, tier.llm:stats().requests)
    code, out = eval(2, tier.server.url)
    assert.are.equal(0, code, out)
    assert.are.equal(6, tier.llm:stats().requests)
    code, out = eval(3, "redis://:pw@h:0")
    assert.are.equal(2, code)
    assert.matches("tide eval: %-%-redis: a port outside 1%-65535", out)
    assert.is_nil(out:find(":pw@", 1, true))
    os.execute("rm -rf " .. dir)
  end)

  it("runs a process whose Redis password is wrong on its local cache, saying so once", function()
    local url = string.format("redis://:wrong-pw-123@127.0.0.1:%d", tier.server.port)
    local out = shard(tier.llm.url, url, 3, "wrongpw")
    assert.are.equal(3, #out.texts)
    assert.are.equal(1, #out.warnings)
    assert.matches("refused the credentials", out.warnings[1])
    assert.matches("local cache and rate limits", out.warnings[1])
    assert.is_nil(out.warnings[1]:find("wrong-pw-123", 1, true))
  end)

  it("runs without Redis when TIDE_REDIS_URL is malformed, saying so once", function()
    local cmd = string.format("TIDE_REDIS_URL='redis://:pw@h:0' %s scripts/bench/redis_shard.lua %s 2 0 bad",
      TIDE, tier.llm.url)
    local p = assert(io.popen(cmd .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.matches('"cached":0', out)
    assert.matches("TIDE_REDIS_URL: a port outside 1%-65535", out)
    assert.is_nil(out:find(":pw@", 1, true))
  end)
end)
