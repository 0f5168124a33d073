--- The circuit of a host: what an LM call does when the server behind it is gone.
--
-- Per-call retries are short (a few seconds); a server that was killed, or is
-- restarting, refuses connections for longer.  So the LM's requests go through
-- circuit.request, which counts the consecutive connection failures (refused, DNS,
-- TLS: the host is not there; not timeouts, not HTTP statuses: those are answers)
-- across every call to one host.  At `failures` of them in a row, or when a call
-- has used all its retries on them, the circuit opens: the calls to that host are
-- held (not failed) while one task probes the host with back-off (a GET of the
-- base URL's origin: any HTTP answer means it is back).  When it answers, the held
-- calls go on as if nothing happened; when it stays down for `wait` seconds, every
-- held call fails with a `server_down` error, which tide.Evaluate takes as the end
-- of the run (its finished rows are kept, and the same command resumes).
--
-- The state lives per host (scheme://host:port), shared by every LM that talks to
-- it: two LMs on one local server see the same server go away.  The thresholds are
-- each LM's own (`lm.circuit = {failures = 8, wait = 30}`).  Calls are held only
-- where a wait is set: by the LM, or by a run (tide.Evaluate holds for 30 s unless
-- told otherwise; tide eval's --wait-for-server overrides every LM's wait).  A
-- plain call outside a run fails after its retries, as it always did.
local core = require "tide.core"
local settings = require "tide.settings"
local check = require "tide.check"
local tls = require "tide.tls"

local M = {}

M.FAILURES = 8    -- connection failures in a row that open a circuit
M.WAIT = 30       -- seconds a held call waits for its host to come back
M.PROBE_TIMEOUT = 2
M.PROBE_MAX_DELAY = 2

-- The kinds of a transfer's error that say the host is not there.
local DOWN = {connect = true, dns = true, tls = true}

-- libcurl's code for a TLS handshake that broke (the server went away in the
-- middle of it).  Every other `tls` error — a certificate refused (60), a CA file
-- that cannot be read (77), a pinned key that differs — comes from a host that
-- is there, and waiting will not change it: such a call fails at once.
local CURLE_SSL_CONNECT_ERROR = 35

--- Whether a transfer's error says its host is not there.
local function host_gone(err)
  if not (core.is_error(err) and DOWN[err.kind]) then return false end
  return err.kind ~= "tls" or err.curl_code == CURLE_SSL_CONNECT_ERROR
end

local hosts = {}      -- origin → {failures, cause, probe, opened, deadline, held}
local watchers = {}   -- fn(event, origin, info) for "open", "closed", "down"

--- The checked circuit options of an LM (opts.circuit), or nil.
function M.check(fname, v)
  if v == nil then return nil end
  check.type(fname, "opts.circuit", v, "table")
  check.number(fname, "opts.circuit.failures", v.failures, {integer = true, min = 1, max = 1000000}, true)
  check.number(fname, "opts.circuit.wait", v.wait, {min = 0, max = 86400}, true)
  return {failures = v.failures and math.tointeger(v.failures), wait = v.wait}
end

--- "http://host:port" of a URL (the scheme's default port left implicit).
local function origin_of(url)
  local o = tostring(url):match("^(%a[%w+.-]*://[^/?#]+)")
  return o and o:lower() or tostring(url)
end
M.origin_of = origin_of

local function notify(event, origin, info)
  for _, fn in ipairs(watchers) do pcall(fn, event, origin, info) end
end

--- circuit.watch(fn) → a handle whose :close() (or <close>) stops the calls.
-- fn(event, origin, info): "open" (info.wait: the seconds it may hold calls),
-- "closed" (the host answered again), "down" (info.message: it did not).
function M.watch(fn)
  watchers[#watchers + 1] = fn
  return setmetatable({}, {__close = function() M.unwatch(fn) end,
    __index = {close = function() M.unwatch(fn) end}})
end

function M.unwatch(fn)
  for i = #watchers, 1, -1 do
    if watchers[i] == fn then table.remove(watchers, i) end
  end
end

--- The hosts whose circuit is open now: {origin = seconds it may still wait}.
function M.open_hosts()
  local list = {}
  for origin, c in pairs(hosts) do
    if c.probe then list[origin] = math.max(0, c.deadline - core.now()) end
  end
  return list
end

local VERB = {connect = "refused %d connections", dns = "did not resolve %d times",
  tls = "failed %d TLS handshakes"}

local function down_message(origin, c, waited)
  return string.format("the server at %s " .. (VERB[c.cause] or VERB.connect) ..
    " in a row and did not come back within %g s", origin, c.failures, waited)
end

--- Whether the host answers: any HTTP status will do.
-- The probe goes the way the calls go: through the same proxy, trusting the same
-- CAs (request_opts: the TLS and proxy options of the LM that opened the circuit).
local function answers(origin, request_opts)
  local ok, err = pcall(core.request, tls.apply({url = origin .. "/", timeout = M.PROBE_TIMEOUT,
    max_body = 65536}, request_opts))
  if ok then return true end
  return not (host_gone(err) or core.is_error(err, "timeout"))
end

--- The probing task's body → true when the host came back, false at its deadline.
local function probe(origin, c)
  local delay = 0.05
  while true do
    local left = c.deadline - core.now()
    core.sleep(math.max(0, math.min(delay, left)))
    if answers(origin, c.request_opts) then
      c.failures, c.probe, c.down = 0, nil, nil
      notify("closed", origin, {})
      return true
    end
    c.failures = c.failures + 1
    if core.now() >= c.deadline then
      c.probe = nil
      c.down = down_message(origin, c, c.deadline - c.opened)
      c.failures = 0
      notify("down", origin, {message = c.down})
      return false
    end
    delay = math.min(delay * 2, M.PROBE_MAX_DELAY)
  end
end

--- How long a call may be held: a run's explicit wait (tide eval's
-- --wait-for-server), else the LM's own, else a run's default (tide.Evaluate sets
-- M.WAIT), else 0: outside a run, a call to a host that is gone fails after its
-- retries, as an interactive user wants.
local function wait_of(cfg)
  return settings.get("circuit_wait") or (cfg and cfg.wait) or settings.get("circuit_default_wait") or 0
end

local function open(origin, c, wait, request_opts)
  c.request_opts = request_opts
  c.opened = core.now()
  c.deadline = c.opened + wait
  c.held = 0
  c.probe = core.spawn(probe, origin, c)
  notify("open", origin, {wait = wait, failures = c.failures, cause = c.cause})
end

--- Raises server_down for the host, telling the run the call belongs to (the
-- `circuit_run` setting: tide.Evaluate's, which ends the run).
local function raise_down(origin, c, run)
  local err = core.error{kind = "server_down", message = c.down, url = origin, retryable = false}
  if run then run.down(err) end
  error(err, 0)
end

--- A held call: waits for the probe's verdict; raises server_down when the host
-- stayed away.  The last held call to leave (cancelled) stops the probing.  The
-- run the call belongs to is told while it is held (its progress line says so).
local function hold(origin, c, wait)
  c.deadline = math.max(c.deadline, c.opened + wait)
  c.held = c.held + 1
  local run = settings.get("circuit_run")
  if run then run.held(origin, wait) end
  local _ <close> = setmetatable({}, {__close = function()
    c.held = c.held - 1
    if c.held == 0 and c.probe then
      c.probe:cancel()
      c.probe = nil
    end
    if run then run.released(origin) end
  end})
  while c.probe do
    local t = c.probe
    local ok, came_back = pcall(t.wait, t)
    if ok and not came_back then
      raise_down(origin, c, run)
    elseif ok then
      return
    end
    -- The probe is a child of the call that opened the circuit, and went with it
    -- when that call was cancelled: another takes its place.  Our own cancellation
    -- leaves the probe running, and goes on up.
    if c.probe ~= t or t:status() ~= "cancelled" then error(came_back, 0) end
    c.probe = core.spawn(probe, origin, c)
  end
end

--- circuit.pass(origin, cfg, retrying): before a request to origin; holds the
-- call while the host's circuit is open (cfg: the LM's circuit options).  Raises
-- server_down when the host stays away, and at once for a call's retry once the
-- host was given up: its first try still goes, and finds the host back.
function M.pass(origin, cfg, retrying)
  local c = hosts[origin]
  if c == nil then return end
  -- a call that may not be held (wait 0) goes as if there were no circuit
  local wait = wait_of(cfg)
  if wait <= 0 then return end
  if c.probe then return hold(origin, c, wait) end
  if c.down and retrying then raise_down(origin, c, settings.get("circuit_run")) end
end

--- circuit.answered(origin): the host answered (any HTTP status).
function M.answered(origin)
  local c = hosts[origin]
  if c then c.failures, c.down = 0, nil end
end

--- circuit.failed(err, cfg, last) → whether the call should try again once the
-- host is back (its circuit is open) rather than fail.  err: a failed transfer's
-- error (it carries the url); last: the call has no retry left.  Only connection
-- failures count; at cfg.failures of them in a row, or on a call's last try, the
-- circuit opens.  request_opts: the LM's TLS and proxy options, for the probe.
function M.failed(err, cfg, last, request_opts)
  if not (host_gone(err) and err.url) then return false end
  local wait = wait_of(cfg)
  if wait <= 0 then return false end
  local origin = origin_of(err.url)
  local c = hosts[origin]
  if c == nil then
    c = {failures = 0}
    hosts[origin] = c
  end
  c.failures, c.cause = c.failures + 1, err.kind
  if c.probe == nil and not c.down and (last or c.failures >= (cfg and cfg.failures or M.FAILURES)) then
    open(origin, c, wait, request_opts)
  end
  return c.probe ~= nil
end

--- Forgets every host's state (for tests).
function M.reset()
  for origin, c in pairs(hosts) do
    if c.probe then c.probe:cancel() end
    hosts[origin] = nil
  end
end

return M
