--- Rate buckets shared through Redis: every process on the same Redis that makes
-- an LM with the same (provider, model, key fingerprint) and rpm/tpm takes from
-- one bucket, so N shards keep the rate and burst one process would.
--
--   local b = limits.bucket("rpm", rate_per_s, capacity, limits.redis_key("rpm", provider, model, key))
--   b:take(n)      -- waits until n tokens (at most the capacity) are there
--
-- A take is one EVALSHA of the script below, which refills by Redis's own clock
-- and takes atomically (NOSCRIPT after a restart or SCRIPT FLUSH: SCRIPT LOAD and
-- again).  Nothing is held between takes, so a process that dies holds nothing
-- back.  Within a process, takes of one bucket queue behind a local semaphore:
-- one task at a time asks Redis, in arrival order, and the others do not poll it.
-- Without Redis (none configured, down, or answering errors) the take goes to
-- the bucket's local twin: the limit then holds per process, as before.
--
-- The bucket's key holds no secret: the identity is hashed, and the key's
-- fingerprint in it is itself a hash (key_fingerprint).
local core = require "tide.core"
local shared_redis = require "tide.shared.redis"
local script = require "tide.shared.script"

local M = {}

M.PREFIX = "tide:v1:rate:"

-- Runs in Redis (Lua 5.1).  KEYS[1]: the bucket; ARGV: rate per second, capacity,
-- tokens wanted.  → "0" when taken, else the seconds to wait before asking again
-- (a string: Redis would truncate a Lua number to an integer).  As the local
-- bucket (engine/core/bucket.c): a take of n proceeds once the level reaches
-- min(n, capacity) and may leave debt, which delays later takes.
M.SCRIPT = [[
local rate, capacity, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'level', 'last')
local level, last = tonumber(s[1]), tonumber(s[2])
if level == nil or last == nil then level, last = capacity, now end
if now > last then level = math.min(capacity, level + (now - last) * rate) end
local need = math.min(n, capacity)
local wait = 0
if level >= need then level = level - n else wait = (need - level) / rate end
redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level),
  'last', string.format('%.6f', math.max(now, last)))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity / rate + 60) * 1000))
return string.format('%.6f', wait)
]]

--- A key's fingerprint: a hash, so that neither Redis nor anyone reading its keys
-- learns the key; nil keys share "none".
function M.key_fingerprint(api_key)
  if api_key == nil or api_key == "" then return "none" end
  return core.sha256("tide-key-fingerprint\0" .. api_key):sub(1, 16)
end

--- Who a limit is for, as Redis may see it: a hash of (provider, model, key
-- fingerprint).
function M.identity(provider, model, api_key)
  return core.sha256(table.concat({tostring(provider), tostring(model),
    M.key_fingerprint(api_key)}, "\0"))
end

--- The Redis key of a bucket: kind ("rpm", "tpm") and the hashed identity.
function M.redis_key(kind, provider, model, api_key)
  return M.PREFIX .. kind .. ":" .. M.identity(provider, model, api_key)
end

local bucket_script = script.new(M.SCRIPT, "bucket")

--- One run of the script; → the wait in seconds (0: taken), or nil and the error.
local function ask(client, key, rate, capacity, n)
  local wait, err = bucket_script:run(client, key, string.format("%.17g", rate),
    string.format("%.17g", capacity), string.format("%.17g", n))
  if wait == nil then return nil, err end
  local w = tonumber(wait)
  if w then return w end
  return nil, {code = "reply", message = "the bucket script answered " .. tostring(wait)}
end

local Bucket = {}
Bucket.__index = Bucket

--- bucket(kind, rate, capacity, redis_key) → a bucket shared when Redis is there.
function M.bucket(kind, rate, capacity, redis_key)
  return setmetatable({kind = kind, rate = rate, capacity = capacity, key = redis_key,
    ["local"] = core.bucket(rate, capacity), turn = core.semaphore(1)}, Bucket)
end

--- Takes n tokens (1 when absent): shared when the process has a Redis link that
-- answers, else from the local twin.
function Bucket:take(n)
  n = n or 1
  local client = shared_redis.current()
  if client == nil then return self["local"]:take(n) end
  local _ <close> = self.turn:acquire()
  while true do
    local wait, err = ask(client, self.key, self.rate, self.capacity, n)
    if wait == nil then
      if type(err) == "table" and err.kind ~= "redis_unavailable" then
        client:refusal("refused a take from the shared " .. self.kind .. " bucket", err,
          "such takes use this process's own bucket")
      end
      return self["local"]:take(n)
    end
    if wait <= 0 then return end
    core.sleep(wait)
  end
end

return M
