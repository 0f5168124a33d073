--- A cap on calls in flight shared by every process on the same Redis, for the LMs
-- of one (provider, model, key): tide.LM(model, {max_parallel_shared = n}).
--
--   local g = gate.new(n, redis_key)
--   local holder <close> = g:acquire(local_semaphore_or_nil)   -- then the call
--
-- Each call in flight holds a lease: a member of a sorted set in Redis whose score
-- is when it expires.  Taking one is one EVALSHA that drops the expired leases and
-- adds this one if fewer than n are left; a holder renews its process's leases
-- every third of their life (one call for all of them) and removes its own when
-- the call ends.  So a process that dies mid-call holds its places no longer than
-- a lease's life (LEASE), and blocks nobody after that.
--
-- Releases are not announced: a waiter asks again at growing intervals (5 ms
-- doubling to 100 ms, never past the earliest lease's end), one task per process
-- at a time, in arrival order.  Without Redis (none configured, down, refusing)
-- the cap holds per process instead: a local semaphore of n.
local core = require "tide.core"
local shared_redis = require "tide.shared.redis"
local script = require "tide.shared.script"

local M = {}

M.PREFIX = "tide:v1:gate:"
-- Seconds a lease lives unless renewed.
M.LEASE = 30

-- KEYS[1]: the set of leases.  ARGV: mode ("take" or "renew"), limit, lease in
-- ms, then the token (take) or the tokens (renew).  take → 0 when taken, else the
-- ms until the earliest lease ends; renew → how many were still there.
M.SCRIPT = [[
local limit, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] == 'renew' then
  local n = 0
  for i = 4, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
      n = n + 1
    end
  end
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return n
end
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(first[2]) - now)
]]

local gate_script = script.new(M.SCRIPT, "gate")

--- One run of the script → its integer, or nil and the error.
local function run(client, key, ...)
  local n, err = gate_script:run(client, key, ...)
  if n == nil then return nil, err end
  if math.type(n) == "integer" then return n end
  return nil, {code = "reply", message = "the gate script answered " .. tostring(n)}
end

local Gate = {}
Gate.__index = Gate

--- gate.new(n, redis_key) → a gate of n places shared through Redis.
function M.new(limit, redis_key)
  return setmetatable({limit = limit, key = redis_key, held = {}, count = 0,
    turn = core.semaphore(1), fallback = core.semaphore(limit)}, Gate)
end

local function lease_ms()
  return string.format("%d", math.ceil(M.LEASE * 1000))
end

--- Renews the process's leases of this gate every third of their life, while any
-- is held (the last release cancels it).
local function renew_all(self, client)
  while true do
    core.sleep(M.LEASE / 3)
    local tokens = {}
    for token in pairs(self.held) do tokens[#tokens + 1] = token end
    if #tokens > 0 then
      run(client, self.key, "renew", tostring(self.limit), lease_ms(), table.unpack(tokens))
    end
  end
end

local Lease = {}
Lease.__index = Lease

function Lease:release()
  if self.released then return end
  self.released = true
  local gate = self.gate
  if self.token then
    gate.held[self.token] = nil
    gate.count = gate.count - 1
    self.client:post("ZREM", gate.key, self.token)   -- never waits: also on cancellation
    if gate.count == 0 and gate.renewer then
      gate.renewer:cancel()
      gate.renewer = nil
    end
  elseif self.fallback then
    gate.fallback:release()
  end
  if self.permit then self.permit:release() end
end
Lease.__close = Lease.release

--- A place: a lease in Redis, or (no Redis) one of the local semaphore's permits.
function Gate:_place()
  local client = shared_redis.current()
  if client == nil then
    self.fallback:acquire()
    return {fallback = true}
  end
  local token = shared_redis.token(24)
  local taken = false
  do
    local _ <close> = self.turn:acquire()
    local delay = 0.005
    while true do
      local wait, err = run(client, self.key, "take", tostring(self.limit), lease_ms(), token)
      if wait == nil then
        if type(err) == "table" and err.kind ~= "redis_unavailable" then
          client:refusal("refused a place at the shared gate", err,
            "such calls are capped in this process only")
        end
        break
      end
      if wait == 0 then
        taken = true
        break
      end
      core.sleep(math.min(delay, wait / 1000))
      delay = math.min(delay * 2, 0.1)
    end
  end
  if not taken then
    self.fallback:acquire()
    return {fallback = true}
  end
  self.held[token] = true
  self.count = self.count + 1
  local r = self.renewer
  if r == nil or r:status() ~= "pending" and r:status() ~= "running" then
    self.renewer = core.spawn(renew_all, self, client)
  end
  return {token = token, client = client}
end

--- acquire([permit_source]) → a holder (release() or <close>): a permit of the
-- process's own semaphore first, when given, then a place at the shared gate.
function Gate:acquire(local_gate)
  local permit = local_gate and local_gate:acquire()
  local ok, place = pcall(self._place, self)
  if not ok then
    if permit then permit:release() end
    error(place, 0)
  end
  place.gate, place.permit = self, permit
  return setmetatable(place, Lease)
end

return M
