--- The span exporter: a bounded queue and a background task that posts the
-- spans in batches to an OTLP/HTTP collector through tide.request.
--
-- A finished span is queued as its OTLP JSON text (or, the queue full, dropped and
-- counted) and the program goes on: nothing here blocks it or raises into it.  The
-- task starts with the first span queued and ends once the queue is empty, so a
-- program that traces nothing holds no task or timer.  It sends a batch when one is full, when
-- the schedule delay has passed, at once when nothing but itself is left running
-- (a script that has returned, a host with nothing to do: that is how a `tide`
-- script's spans go out as it ends), or when flush() asks.  A failed export is
-- tried again with back-off (a 429 or 5xx from the collector, a refused
-- connection); a batch that still fails, or a 4xx, is dropped and counted, and
-- the first failure is said once on stderr.
local core = require "tide.core"
local otlp = require "tide.trace.otlp"
local retry_after = require("tide.providers.common").retry_after

local M = {}
M.__index = M

local IDLE_STEP = 0.02   -- how often a waiting exporter looks whether the program is idle
local LAST_WAIT = 2      -- the retries' deadline for a batch sent as the program ends

--- new(cfg) → an exporter: cfg {endpoint, headers, resource, timeout,
-- schedule_delay, max_queue, batch_size, retries}.
function M.new(cfg)
  local headers = {["Content-Type"] = "application/json", ["User-Agent"] = "tide-otlp/0.1.0"}
  for k, v in pairs(cfg.headers or {}) do headers[k] = v end
  return setmetatable({cfg = cfg, headers = headers, queue = {}, task = nil, flushing = false,
    counts = {exported = 0, dropped = 0, exports = 0, failed_exports = 0}, warned = false}, M)
end

-- The collector's Retry-After, read as an LM provider's is, at most 30 s.
local function retry_after_of(headers)
  local v = retry_after(headers)
  return v and math.min(v, 30)
end

--- One POST of a body; raises a retryable error for what a new attempt may cure.
local function post(self, body)
  local cfg = self.cfg
  local r = core.request{url = cfg.endpoint, method = "POST", headers = self.headers, body = body,
    timeout = cfg.timeout, connect_timeout = math.min(cfg.timeout, 5), max_body = 1024 * 1024}
  if r.status >= 200 and r.status < 300 then return end
  local status = r.status
  error(core.error{kind = "trace_export", status = status, retry_after = retry_after_of(r.headers),
    retryable = status == 408 or status == 429 or status >= 500,
    message = string.format("the collector answered HTTP %d", status)}, 0)
end

local function warn_once(self, err, n)
  if self.warned then return end
  self.warned = true
  local msg = type(err) == "table" and tostring(err.message or err.kind) or tostring(err)
  io.stderr:write(string.format("tide: exporting %d span(s) to %s failed: %s; failed spans are " ..
    "dropped and counted (tide.trace.stats()), the program goes on\n", n,
    (self.cfg.endpoint:gsub("[?#].*$", "")), msg))
end

--- Sends the first `n` queued spans → nothing; counts what went and what was lost.
local function export(self, n, last)
  local batch = table.move(self.queue, 1, n, 1, {})
  table.move(self.queue, n + 1, #self.queue + n, 1)   -- the rest moves up (nil fills the tail)
  local ok, body = pcall(otlp.body, batch, self.cfg.resource)
  if ok then
    local retry = {tries = self.cfg.retries + 1, base = 0.5, max_delay = 5,
                   deadline = last and LAST_WAIT or nil}
    ok, body = pcall(core.retry, retry, post, self, body)
  end
  local c = self.counts
  if ok then
    c.exported, c.exports = c.exported + n, c.exports + 1
  else
    c.dropped, c.failed_exports = c.dropped + n, c.failed_exports + 1
    if not core.is_error(body, "cancelled") then warn_once(self, body, n) end
  end
  return ok or not core.is_error(body, "cancelled")
end

--- Waits until a batch is due → whether the program looks finished or a flush asked.
local function wait_for_batch(self)
  local waited = 0
  while #self.queue < self.cfg.batch_size and not self.flushing do
    if waited >= self.cfg.schedule_delay then return false end
    core.sleep(IDLE_STEP)
    waited = waited + IDLE_STEP
    -- nothing but this task is left: a script that returned, or an idle host
    if core.stats().tasks <= 1 then return true end
  end
  return self.flushing
end

--- The background task: batches until the queue is empty.  It returns rather
-- than raising, whatever happens (a cancellation included).
local function run(self)
  pcall(function()
    while #self.queue > 0 do
      local last = wait_for_batch(self)
      if #self.queue == 0 then break end
      if not export(self, math.min(#self.queue, self.cfg.batch_size), last) then break end
    end
  end)
  self.task = nil
end

--- push(span): queues a finished span, as its JSON text (dropped and counted when
-- the queue is full).  Text, not the table: a queue of strings is nothing for the
-- garbage collector to walk while it waits for its batch.
function M:push(span)
  local q = self.queue
  if #q >= self.cfg.max_queue then
    self.counts.dropped = self.counts.dropped + 1
    return
  end
  local ok, text = pcall(otlp.span, span)
  if not ok then
    self.counts.dropped = self.counts.dropped + 1
    return
  end
  q[#q + 1] = text
  if self.task == nil then self.task = core.spawn(run, self) end
end

--- flush(timeout) → true when every queued span was sent (or dropped and
-- counted) within timeout seconds; past it, the export is given up and what was
-- left counted as dropped.  Works on the main flow and in a task.
function M:flush(timeout)
  if self.task == nil and #self.queue == 0 then return true end
  self.flushing = true
  if self.task == nil then self.task = core.spawn(run, self) end
  local t = self.task
  local ok = pcall(core.timeout, timeout, t.wait, t)
  if not ok then
    t:cancel()
    pcall(t.wait, t)
    self.counts.dropped = self.counts.dropped + #self.queue
    self.queue = {}
  end
  self.flushing = false
  return ok
end

--- stats() → {queued, exported, dropped, exports, failed_exports}
function M:stats()
  local c = self.counts
  return {queued = #self.queue, exported = c.exported, dropped = c.dropped, exports = c.exports,
          failed_exports = c.failed_exports}
end

return M
