--- Identical LM calls in flight in several processes, made once: the process that
-- takes a short lock in Redis makes the call; the others wait for its answer to
-- appear in the shared cache.
--
--   local lock, answer = inflight.claim(cache, key)
--   if answer then ... end                 -- another process made the call
--   local _ <close> = lock                 -- released when the call is concluded
--
-- The lock is `SET tide:v1:lock:<key> <token> NX PX <ttl>`: a holder that crashes
-- (or hangs) blocks the others no longer than the TTL, after which one of them takes
-- the lock and makes the call itself.  Waiters look for the answer at growing
-- intervals (20 ms doubling to 0.5 s).  A holder whose call failed releases the lock
-- with no answer stored, and the next waiter takes over.  Without a Redis link, or
-- with one that fails, there is nothing to claim: every process calls, as before.
local core = require "tide.core"
local shared_cache = require "tide.shared.cache"
local shared_redis = require "tide.shared.redis"

local M = {}

M.PREFIX = "tide:v1:lock:"
-- Seconds a lock lives: long enough for most calls, short enough that a crashed
-- holder costs little.  A call that outlives it may then be made twice.
M.TTL = 30

-- Deletes the lock only if it is still this holder's (its TTL may have passed and
-- another process taken it).
local RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then " ..
  "return redis.call('DEL', KEYS[1]) end return 0"

local Lock = {}
Lock.__index = Lock

--- Releasing never waits (it runs in a __close handler, also on cancellation).
function Lock:__close()
  if not self.released then
    self.released = true
    self.client:post("EVAL", RELEASE, "1", self.key, self.token)
  end
end

--- claim(cache, key) → a lock to hold while making the call, or nil and the
-- answer another process stored meanwhile, or nil (no Redis: just call).
function M.claim(cache, key)
  local client = cache:_redis()
  if client == nil then return nil end
  local lock_key = M.PREFIX .. key
  local token = shared_redis.token(32)
  local ttl_ms = string.format("%d", M.TTL * 1000)
  local deadline = core.now() + M.TTL + 1
  local delay = 0.02
  while true do
    local set, err = client:call("SET", lock_key, token, "NX", "PX", ttl_ms)
    if set == "OK" then
      return setmetatable({client = client, key = lock_key, token = token}, Lock)
    end
    if err or core.now() > deadline then return nil end   -- Redis failed: just call
    -- another process holds it: its answer, once stored, is ours
    core.sleep(delay)
    local answer = shared_cache.get(client, key)
    if answer then
      cache:_remember(key, answer)
      return nil, answer
    end
    delay = math.min(delay * 2, 0.5)
  end
end

return M
