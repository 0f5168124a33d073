--- tide.trace: OpenTelemetry traces of a program's LM calls, modules, tools and
-- evaluations, exported over OTLP/HTTP JSON to any collector (Jaeger, Tempo,
-- Honeycomb, Langfuse, Phoenix...).
--
--   OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 tide eval.lua
--   tide.configure{trace = {endpoint = "http://localhost:4318/v1/traces", service_name = "critics"}}
--   tide.trace.flush()     -- a plain lua5.4 script, before it ends (tide_close does it)
--   tide.trace.stats()     -- {queued, exported, dropped, exports, failed_exports}
--
-- Built on tide.callbacks: the tracer is one more callback, beside the user's.
-- The variables are read when tide is first required (tide/trace/config.lua
-- lists them); tide.configure{trace = ...} sets or changes the settings later,
-- and {trace = false} turns tracing off.
local core = require "tide.core"
local callbacks = require "tide.callbacks"
local redact = require "tide.redact"
local config = require "tide.trace.config"
local spans = require "tide.trace.spans"
local exporter_mod = require "tide.trace.exporter"

local M = {}

local FLUSH_TIMEOUT = 5   -- seconds flush() waits for the collector by default
local CLOSE_TIMEOUT = 3   -- seconds tide_close waits for the spans still queued

local active = nil   -- {cfg, tracer, exporter} while tracing is on
local retired = {}   -- exporters of earlier settings that still had spans to send

local close_hooked = false

local function start(cfg)
  if not close_hooked then   -- a host's tide_close sends what is queued first
    close_hooked = true
    core.at_close(function() M.flush(CLOSE_TIMEOUT) end)
  end
  cfg.retries = cfg.retries or 3
  local header_values = {}
  for _, v in pairs(cfg.headers) do header_values[#header_values + 1] = v end
  -- what content capture redacts: the providers' keys, every LM's secrets, and
  -- the collector's own headers (an ingest key)
  cfg.secrets = function()
    local keys = redact.known_keys()
    for _, v in ipairs(header_values) do keys[#keys + 1] = v end
    return keys
  end
  local exporter = exporter_mod.new(cfg)
  local tracer = spans.new(cfg, function(span) exporter:push(span) end)
  active = {cfg = cfg, tracer = tracer, exporter = exporter}
  callbacks.add(tracer)
  callbacks.propagate = cfg.traceparent ~= false and tracer.traceparent or nil
end

local function stop()
  if active == nil then return end
  callbacks.remove(active.tracer)
  callbacks.propagate = nil
  local e = active.exporter
  if e.task or #e.queue > 0 then retired[#retired + 1] = e end
  active = nil
end

--- configure(opts | false): tide.configure{trace = ...}.  opts: endpoint (the
-- full traces URL), headers, service_name, resource, capture_content, timeout,
-- schedule_delay, max_queue, batch_size, max_attribute, retries; unset fields
-- come from the OTEL_* variables.
function M.configure(opts)
  if opts == false then
    stop()
    return
  end
  local cfg = config.merged(opts)
  stop()
  start(cfg)
end

--- from_env(): turns tracing on when the OTEL_* variables ask for it (tide's
-- init does this once); a setting tide cannot honour is said on stderr.
function M.from_env(getenv)
  local cfg, why = config.from_env(getenv)
  if why then io.stderr:write("tide: ", why, "\n") end
  if cfg then
    stop()
    start(cfg)
  end
end

--- enabled() → whether spans are being made.
function M.enabled()
  return active ~= nil
end

--- flush([timeout]) → true when every finished span was sent, or dropped and
-- counted, within timeout seconds (default 5).  Never raises for the collector.
function M.flush(timeout)
  timeout = timeout or FLUSH_TIMEOUT
  local ok = true
  for _, e in ipairs(retired) do ok = e:flush(timeout) and ok end
  retired = {}
  if active then ok = active.exporter:flush(timeout) and ok end
  return ok
end

--- stats() → {queued, exported, dropped, exports, failed_exports} of the
-- current settings' exporter (zeros when tracing is off).
function M.stats()
  if active == nil then
    return {queued = 0, exported = 0, dropped = 0, exports = 0, failed_exports = 0}
  end
  return active.exporter:stats()
end

return M
