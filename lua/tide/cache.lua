--- The LM cache: a memory LRU in front of an on-disk store.
--
-- Keys are SHA-256 digests of a canonical encoding of the normalised request
-- (provider, model, base URL, messages, sampling options, rollout_id) — never of
-- keys or headers.  Disk entries are one small JSON file each, created 0600 in a
-- 0700 directory and replaced atomically, holding only the answer (text, finish
-- reason, usage, model, id, and raw: the provider's decoded body, when the
-- answer came from a call rather than a stream).
--
-- The disk is an optimisation, never a source of failure or of foreign answers:
-- a directory another user owns or may write is refused, entries are read only
-- when they are regular files of the user's (never through a symlink), and any
-- disk failure turns the disk off for this cache with one warning on stderr
-- naming the directory; calls go on, answered from memory and the network.
--
-- Behind the disk, Redis (tide/shared/): the same keys under a versioned prefix,
-- shared by every process on the same TIDE_REDIS_URL; a Redis hit is checked
-- against the request's key and then kept in memory; Redis down is a miss.
local core = require "tide.core"
local shared_redis = require "tide.shared.redis"
local shared_cache = require "tide.shared.cache"
local cjson = require "cjson"
local json = require "tide.json"

local M = {}

local Cache = {}
Cache.__index = Cache

--- A stable text for any JSON-like value: object keys sorted, so two equal
-- requests give the same digest whatever order their tables were built in.
local function canonical(v, out)
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        canonical(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = cjson.encode(k)
        out[#out + 1] = ":"
        local value = v[k]
        if value == nil then value = v[tonumber(k)] end
        canonical(value, out)
      end
      out[#out + 1] = "}"
    end
  elseif t == "string" or t == "number" or t == "boolean" then
    out[#out + 1] = cjson.encode(v)
  else
    out[#out + 1] = "null"
  end
  return out
end

--- The cache key of a request description (a table of JSON-like values).
function M.key(parts)
  return core.sha256(table.concat(canonical(parts, {})))
end

--- Where the disk cache lives unless configured: $TIDE_CACHE_DIR, else
-- $XDG_CACHE_HOME/tide, else ~/.cache/tide.
function M.default_dir(env)
  env = env or os.getenv
  local dir = env("TIDE_CACHE_DIR")
  if dir and dir ~= "" then return dir end
  local xdg = env("XDG_CACHE_HOME")
  if xdg and xdg ~= "" then return xdg .. "/tide" end
  local home = env("HOME")
  return home and home .. "/.cache/tide" or nil
end

local function warn_stderr(message)
  io.stderr:write("tide: ", message, "\n")
end

--- Cache.new{memory = 10000 entries, dir = path or false (no disk), warn = fn,
-- redis = client or false}
-- warn(message) receives the one warning a disk failure gives (default: stderr).
-- redis: a tide.shared.redis client, false for none, nil for the process's link
-- (tide.configure{redis = url}, or $TIDE_REDIS_URL).
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    capacity = opts.memory or 10000,
    dir = opts.dir,
    warn = opts.warn or warn_stderr,
    redis = opts.redis,
    subdirs = {},    -- the entry folders checked (made private) so far
    map = {},
    size = 0,
    hits = 0,
    misses = 0,
  }, Cache)
  self.head = {}   -- sentinel: head.next is the most recently used
  self.head.next, self.head.prev = self.head, self.head
  return self
end

local function unlink(node)
  node.prev.next, node.next.prev = node.next, node.prev
end

function Cache:_touch(node)
  unlink(node)
  local head = self.head
  node.next, node.prev = head.next, head
  head.next.prev = node
  head.next = node
end

function Cache:_remember(key, value)
  local node = self.map[key]
  if node then
    node.value = value
    self:_touch(node)
    return
  end
  node = {key = key, value = value}
  local head = self.head
  node.next, node.prev = head.next, head
  head.next.prev = node
  head.next = node
  self.map[key] = node
  self.size = self.size + 1
  if self.size > self.capacity then
    local oldest = head.prev
    unlink(oldest)
    self.map[oldest.key] = nil
    self.size = self.size - 1
  end
end

function Cache:_path(key)
  return self.dir .. "/" .. key:sub(1, 2) .. "/" .. key .. ".json"
end

local function message_of(err)
  return type(err) == "table" and tostring(err.message) or tostring(err)
end

--- Says the first disk problem of this cache on stderr (or to opts.warn), once.
function Cache:_warn_once(text)
  if not self.warned then
    self.warned = true
    self.warn(text)
  end
end

--- Turns the disk off after a failure to create, check or write: later calls
-- skip it quietly.
function Cache:_disk_failed(err)
  if self.disk_error == nil then
    self.disk_error = err
    self:_warn_once(string.format("the disk cache in %s is off for this run: %s", self.dir,
      message_of(err)))
  end
end

--- Whether the disk may be used: a directory configured, no failure so far, and
-- the directory itself private (checked, or created 0700, on first use).
function Cache:_disk()
  if not self.dir or self.disk_error ~= nil then return false end
  if not self.dir_checked then
    local ok, err = pcall(core.mkdir_private, self.dir)
    if not ok then
      self:_disk_failed(err)
      return false
    end
    self.dir_checked = true
  end
  return true
end

--- The entry of key read from the disk, or nil (absent, unreadable or refused).
function Cache:_load(key)
  if not self:_disk() then return nil end
  local ok, text = pcall(core.read_private, self:_path(key))
  if not ok then
    -- a symlink or another user's file where an entry belongs: never served; the
    -- next put renames a real entry over it
    self:_warn_once(string.format("the disk cache in %s skipped an entry: %s", self.dir,
      message_of(text)))
    return nil
  end
  if text == nil then return nil end
  local decoded, value = pcall(json.decode, text)   -- raw's integers stay integers
  if decoded and type(value) == "table" and type(value.text) == "string" then
    return value
  end
  return nil   -- a torn or foreign-format entry is a miss; the next put replaces it
end

--- The Redis tier's client, or nil.
function Cache:_redis()
  if self.redis ~= nil then return self.redis or nil end
  return shared_redis.current()
end

--- The stored answer for key, or nil.
function Cache:get(key)
  local node = self.map[key]
  if node then
    self:_touch(node)
    self.hits = self.hits + 1
    return node.value
  end
  local value = self:_load(key)
  local client = value == nil and self:_redis()
  if client then value = shared_cache.get(client, key) end
  if value then
    self:_remember(key, value)
    self.hits = self.hits + 1
    return value
  end
  self.misses = self.misses + 1
  return nil
end

--- Writes an encoded entry; a failure turns the disk off (see _disk_failed).
function Cache:_store(key, text)
  if not self:_disk() then return end
  local sub = self.dir .. "/" .. key:sub(1, 2)
  local ok, err = true, nil
  if not self.subdirs[sub] then
    ok, err = pcall(core.mkdir_private, sub)
    self.subdirs[sub] = ok or nil
  end
  if ok then ok, err = pcall(core.write_atomic, self:_path(key), text) end
  if not ok then self:_disk_failed(err) end
end

--- Stores an answer: {text, texts, finish_reason, usage, model, id, raw}.  An
-- entry written before raw and id were kept reads as an answer without them.  Never raises for the
-- value or the disk: a cache that cannot store is a slower cache, not a failed
-- call.  An answer JSON cannot encode (NaN or an infinite count, a function) is
-- stored nowhere, not even in memory, so memory never serves what the disk
-- refused; a disk failure keeps the (sound) answer in memory.
function Cache:put(key, answer)
  local value = {
    text = answer.text,
    texts = answer.texts,
    finish_reason = answer.finish_reason,
    usage = answer.usage,
    model = answer.model,
    id = answer.id,
    raw = answer.raw,
    tool_calls = answer.tool_calls,   -- {{id, name, args}} of a tool-call answer
  }
  local encoded, text = pcall(cjson.encode, value)
  if not encoded and value.raw ~= nil then
    -- a raw body JSON cannot write back (a count of 1e999) is left out; the
    -- answer, whose counts the provider made sound, is kept
    value.raw = nil
    encoded, text = pcall(cjson.encode, value)
  end
  if not encoded then
    self.refused = (self.refused or 0) + 1
    return false
  end
  self:_remember(key, value)
  self:_store(key, text)
  local client = self:_redis()
  if client then shared_cache.put(client, key, text, shared_redis.ttl()) end
  return true
end

function Cache:clear_memory()
  self.map, self.size = {}, 0
  self.head.next, self.head.prev = self.head, self.head
end

M.canonical = function(v) return table.concat(canonical(v, {})) end

return M
