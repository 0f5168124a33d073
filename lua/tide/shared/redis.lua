--- tide.shared.redis: the process's link to the Redis that shards share (the LM
-- cache's Redis tier, shared rate buckets), from tide.configure{redis = url} or
-- else $TIDE_REDIS_URL.
--
--   redis://[[user]:password@]host[:port][/db]     (port 6379, db 0 by default)
--
-- Redis is an optimisation shared between processes, never a source of failure:
-- when it is down, refuses the password or answers errors, callers get nil and
-- fall back to their local cache and buckets, and the process is told once per
-- outage on stderr (or M.warn).  The link comes back by itself (tide.core.redis
-- reconnects with back-off).  Messages name host:port, never the password, which
-- is also registered with tide's redaction.
local core = require "tide.core"
local redact = require "tide.redact"
local check = require "tide.check"

local M = {}

--- Where warnings go (a spec may replace it): one line each.
function M.warn(message)
  io.stderr:write("tide: ", message, "\n")
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local serial = 0

--- token(length) → a hex string of length (at most 64) no other holder of a lock
-- or a lease has: this process's serial, clock and a random number, hashed.
function M.token(length)
  serial = serial + 1
  return core.sha256(string.format("%s:%d:%.9f:%d", tostring({}), serial, core.now(),
    math.random(1 << 30))):sub(1, length)
end

--- The URL as messages may show it: credentials replaced by ***.
function M.shown(url)
  return (tostring(url):gsub("^(%a+://)[^@/]*@", "%1***@"))
end

--- parse(url) → {host, port, user, password, db, where}, or nil and why (the
-- URL shown without its credentials).
function M.parse(url)
  if type(url) ~= "string" then return nil, "a redis:// URL expected, got " .. type(url) end
  local scheme, rest = url:match("^(%a+)://(.*)$")
  local bad = function(why)
    return nil, string.format("%s in the Redis URL %q", why, M.shown(url))
  end
  if scheme == "rediss" and not core.redis_tls then
    return nil, string.format("rediss:// (TLS) in %q: this hiredis (%s) was built without " ..
      "TLS; use redis:// on a trusted network or a TLS tunnel (stunnel, a service mesh)",
      M.shown(url), core.hiredis_version)
  end
  if scheme ~= "redis" then return bad("not redis://") end
  local auth, hostport, path = rest:match("^([^@/]*)@([^/]*)(.*)$")
  if not auth then hostport, path = rest:match("^([^/]*)(.*)$") end
  local o = {db = 0, port = 6379}
  if auth then
    local user, password = auth:match("^([^:]*):(.*)$")
    if not user then return bad("credentials without ':' (redis://:password@ or user:password@)") end
    if password == "" then return bad("an empty password") end
    o.user = user ~= "" and unescape(user) or nil
    o.password = unescape(password)
  end
  local host, port = hostport:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([%w%.%-_]+):?(%d*)$") end
  if not host or host == "" then return bad("no host") end
  o.host = host
  if port ~= "" then
    o.port = math.tointeger(tonumber(port))
    if not o.port or o.port < 1 or o.port > 65535 then return bad("a port outside 1-65535") end
  elseif hostport:find(":$") then
    return bad("an empty port")
  end
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    if not db then return bad("a path that is not /DB (a database number)") end
    o.db = math.tointeger(tonumber(db))
    if not o.db or o.db > 1048576 then return bad("a database number too large") end
  end
  o.where = (host:find(":") and "[" .. host .. "]" or host) .. ":" .. o.port
  return o
end

-- ---- a client: commands that fall back instead of failing -----------------------

local Client = {}
Client.__index = Client

--- connect(url, {timeout = s}) → a client (connecting in the background), or nil
-- and why when the URL is malformed.
function M.connect(url, opts)
  local o, why = M.parse(url)
  if not o then return nil, why end
  if o.password then redact.register(redact.usable{o.password}) end
  local conn = core.redis{host = o.host, port = o.port, user = o.user, password = o.password,
    db = o.db, timeout = opts and opts.timeout or 2}
  return setmetatable({conn = conn, where = o.where, down = false, refused = {}}, Client)
end

--- client:call(cmd, args...) → the reply, or nil and the error (kind
-- redis_unavailable or redis).  Raises only what is not Redis's: a cancellation,
-- or misuse.
function Client:call(...)
  if self.closed then   -- replaced by tide.configure while a task still held it
    return nil, core.error{kind = "redis_unavailable", retryable = false,
      message = "redis " .. self.where .. ": this link was closed (tide.configure replaced it)"}
  end
  local ok, res = pcall(self.conn.command, self.conn, ...)
  if ok then
    if self.down then
      self.down = false
      M.warn(string.format("redis %s is back: the shared cache and limits are on again",
        self.where))
    end
    return res
  end
  if core.is_error(res, "redis_unavailable") then
    if not self.down and not self.closed then
      self.down = true
      M.warn(string.format("%s; tide uses its local cache and rate limits until it is back",
        res.message))
    end
    return nil, res
  end
  if core.is_error(res, "redis") then return nil, res end
  error(res, 0)
end

--- client:post(cmd, args...) → whether it was sent; its reply is dropped.  Never
-- waits: for a __close handler.
function Client:post(...)
  local ok, sent = pcall(self.conn.post, self.conn, ...)
  return ok and sent
end

--- Says a refusal once per kind of trouble (what, and the error's code): an error
-- reply (OOM, READONLY...) or a value that is not tide's.  consequence: what tide
-- does instead.
function Client:refusal(what, err, consequence)
  local code = type(err) == "table" and err.code or tostring(err)
  local seen = what .. "\0" .. tostring(code)
  if not self.refused[seen] then
    self.refused[seen] = true
    local detail = type(err) == "table" and tostring(err.message) or tostring(err)
    M.warn(string.format("redis %s %s: %s; %s", self.where, what,
      (detail:gsub("^redis %S+ answered an error: ", ""):gsub("%.%s*$", "")), consequence))
  end
end

function Client:state()
  return self.conn:state()
end

--- Closes the link: what waits on it fails (quietly: a close is no outage), and
-- later calls answer nil.
function Client:close()
  self.closed = true
  self.conn:close()
end

-- ---- the process's link -------------------------------------------------------------

local link = {client = nil, configured = false, ttl = nil}

--- configure(url | false | {url =, ttl =, timeout =}), what tide.configure{redis
-- = ...} does: the link every cache and LM uses from now on (false: none, not even
-- $TIDE_REDIS_URL).  ttl: seconds a cache entry lives (none: it stays); timeout:
-- seconds without a reply before the link counts as down (2).  A malformed URL
-- is misuse, raised at the caller's line.
function M.configure(value)
  local opts = type(value) == "table" and value or {url = value}
  if value ~= false then
    if type(value) ~= "table" and type(value) ~= "string" then
      check.fail("configure", "redis", "a redis:// URL, {url =, ttl =, timeout =} or false " ..
        "expected, got " .. type(value))
    end
    check.type("configure", "redis.url", opts.url, "string")
    check.number("configure", "redis.ttl", opts.ttl, {above = 0}, true)
    check.number("configure", "redis.timeout", opts.timeout, {above = 0, max = 86400}, true)
    local parsed, why = M.parse(opts.url)
    if not parsed then check.fail("configure", "redis", why) end
  end
  if link.client then link.client:close() end
  link.client, link.configured, link.ttl = nil, true, nil
  if value == false then return end
  link.client = M.connect(opts.url, opts)
  link.ttl = opts.ttl
end

--- current() → the process's client, or nil when there is none (made from
-- $TIDE_REDIS_URL on first use when nothing was configured; a malformed one is
-- warned about once and ignored).
function M.current()
  if not link.configured then
    link.configured = true
    local url = os.getenv("TIDE_REDIS_URL")
    if url and url ~= "" then
      local client, why = M.connect(url)
      if client then
        link.client = client
        local ttl = tonumber(os.getenv("TIDE_REDIS_TTL") or "")
        link.ttl = ttl and ttl > 0 and ttl or nil
      else
        M.warn("TIDE_REDIS_URL: " .. why .. "; tide runs without Redis")
      end
    end
  end
  return link.client
end

--- The TTL of shared cache entries in seconds, or nil (they stay).
function M.ttl()
  return link.ttl
end

return M
