--- The LM cache: a memory LRU in front of an on-disk store.
--
-- Keys are SHA-256 digests of a canonical encoding of the normalised request
-- (provider, model, base URL, messages, sampling options, rollout_id) — never of
-- keys or headers.  Disk entries are one small JSON file each, created 0600 in a
-- 0700 directory and replaced atomically, holding only the answer (text, finish
-- reason, usage, model).
local core = require "tide.core"
local cjson = require "cjson"

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

--- Cache.new{memory = 10000 entries, dir = path or false (no disk)}
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    capacity = opts.memory or 10000,
    dir = opts.dir,
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

local function integers(usage)
  local u = {}
  for k, v in pairs(usage or {}) do u[k] = math.tointeger(v) or v end
  return u
end

--- The stored answer for key, or nil.
function Cache:get(key)
  local node = self.map[key]
  if node then
    self:_touch(node)
    self.hits = self.hits + 1
    return node.value
  end
  if self.dir then
    local f = io.open(self:_path(key), "r")
    if f then
      local text = f:read("a")
      f:close()
      local ok, value = pcall(cjson.decode, text)
      if ok and type(value) == "table" and type(value.text) == "string" then
        value.usage = integers(value.usage)
        self:_remember(key, value)
        self.hits = self.hits + 1
        return value
      end
    end
  end
  self.misses = self.misses + 1
  return nil
end

--- Stores an answer: {text, finish_reason, usage, model}.
function Cache:put(key, answer)
  local value = {
    text = answer.text,
    texts = answer.texts,
    finish_reason = answer.finish_reason,
    usage = answer.usage,
    model = answer.model,
  }
  self:_remember(key, value)
  if self.dir then
    local sub = self.dir .. "/" .. key:sub(1, 2)
    local ok, err = core.mkdir_private(sub)
    if ok then ok, err = core.write_atomic(self:_path(key), cjson.encode(value)) end
    if not ok then
      -- a cache that cannot write is a slower cache, not a failed call
      self.write_error = err
    end
  end
end

function Cache:clear_memory()
  self.map, self.size = {}, 0
  self.head.next, self.head.prev = self.head, self.head
end

M.canonical = function(v) return table.concat(canonical(v, {})) end

return M
