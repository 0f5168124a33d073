--- The tracer's settings: OpenTelemetry's standard variables, or
-- tide.configure{trace = {...}} (whose fields win over the variables).
--
--   OTEL_TRACES_EXPORTER=otlp                    turns tracing on (none: off)
--   OTEL_SDK_DISABLED=true                       off, whatever else is set
--   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=url       used as it is
--   OTEL_EXPORTER_OTLP_ENDPOINT=url              + /v1/traces (default http://localhost:4318)
--   OTEL_EXPORTER_OTLP_[TRACES_]HEADERS=k=v,...  sent with every export (values %-decoded)
--   OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL         http/json (the one tide speaks)
--   OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT=ms       per export request (10000)
--   OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES=k=v,...
--   OTEL_BSP_SCHEDULE_DELAY=ms (5000), OTEL_BSP_MAX_QUEUE_SIZE (2048),
--   OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512)
--   OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT / OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (16384 here)
--   OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true   prompts and answers, redacted
--   OTEL_PROPAGATORS=...                         a traceparent header on LM requests
--                                                unless set without tracecontext
local check = require "tide.check"

local M = {}

M.PROTOCOL = "http/json"

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- pairs_of("k=v,k2=v2") → {k = v, k2 = v2} (W3C Baggage-like, as OTel writes
-- headers and resource attributes); entries without "=" are skipped.
function M.pairs_of(text)
  local out = {}
  for item in (text or ""):gmatch("[^,]+") do
    local k, v = item:match("^([^=]+)=(.*)$")
    if k then out[percent_decode(trim(k))] = percent_decode(trim(v)) end
  end
  return out
end

local function env_ms(getenv, name, default)
  local v = tonumber(getenv(name) or "")
  if v == nil or v < 0 then return default end
  return v / 1000
end

local function env_int(getenv, name, default)
  local v = math.tointeger(tonumber(getenv(name) or ""))
  if v == nil or v < 1 then return default end
  return v
end

--- Whether OTEL_PROPAGATORS asks for W3C Trace Context (its default does).
local function propagates(v)
  if v == nil or v == "" then return true end
  for name in v:gmatch("[^,%s]+") do
    if name == "tracecontext" then return true end
  end
  return false
end

--- The traces URL from an OTLP base endpoint.
local function traces_url(base)
  return (base:gsub("/+$", "")) .. "/v1/traces"
end

--- from_env([getenv]) → settings, or nil (tracing off) and why when the
-- variables ask for something tide cannot do.
function M.from_env(getenv)
  getenv = getenv or os.getenv
  if (getenv("OTEL_SDK_DISABLED") or ""):lower() == "true" then return nil end
  local exporters = getenv("OTEL_TRACES_EXPORTER") or ""
  local wanted = false
  for name in exporters:gmatch("[^,%s]+") do
    if name == "otlp" then wanted = true end
  end
  if not wanted then return nil end
  local protocol = getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
  if protocol and protocol ~= "" and protocol ~= M.PROTOCOL then
    return nil, string.format("OTEL_EXPORTER_OTLP_PROTOCOL=%s: tide exports %s only; tracing is off",
      protocol, M.PROTOCOL)
  end
  local endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
  if endpoint == nil or endpoint == "" then
    endpoint = traces_url(getenv("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
  end
  local headers = M.pairs_of(getenv("OTEL_EXPORTER_OTLP_HEADERS"))
  for k, v in pairs(M.pairs_of(getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS"))) do headers[k] = v end
  local resource = M.pairs_of(getenv("OTEL_RESOURCE_ATTRIBUTES"))
  local service = getenv("OTEL_SERVICE_NAME")
  if service and service ~= "" then resource["service.name"] = service end
  return {
    endpoint = endpoint,
    headers = headers,
    resource = resource,
    timeout = env_ms(getenv, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
      env_ms(getenv, "OTEL_EXPORTER_OTLP_TIMEOUT", 10)),
    schedule_delay = env_ms(getenv, "OTEL_BSP_SCHEDULE_DELAY", 5),
    max_queue = env_int(getenv, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
    batch_size = env_int(getenv, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
    max_attribute = env_int(getenv, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
      env_int(getenv, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", 16384)),
    capture_content = (getenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") or ""):lower() == "true",
    traceparent = propagates(getenv("OTEL_PROPAGATORS")),
  }
end

local FIELDS = {endpoint = "string", headers = "table", resource = "table", service_name = "string",
  timeout = "number", schedule_delay = "number", max_queue = "number", batch_size = "number",
  max_attribute = "number", capture_content = "boolean", traceparent = "boolean",
  retries = "number"}
local NAMES   -- the fields' names, sorted, for the message of an unknown one
do
  local names = {}
  for k in pairs(FIELDS) do names[#names + 1] = k end
  table.sort(names)
  NAMES = table.concat(names, ", ")
end

--- merged(opts [, getenv]) → the settings of tide.configure{trace = opts}: the
-- variables' values (as if OTEL_TRACES_EXPORTER=otlp) under opts' own, checked.
function M.merged(opts, getenv)
  check.type("configure", "trace", opts, "table")
  for k, v in pairs(opts) do
    local want = FIELDS[k]
    if want == nil then
      check.fail("configure", "trace", string.format("unknown field '%s'; the fields are %s",
        tostring(k), NAMES))
    end
    if type(v) ~= want then check.type("configure", "trace." .. k, v, want) end
  end
  if opts.endpoint and not opts.endpoint:match("^https?://[^/]") then
    check.fail("configure", "trace.endpoint", "an http:// or https:// URL expected, got " ..
      string.format("%q", opts.endpoint))
  end
  for _, f in ipairs{"timeout", "schedule_delay"} do
    check.number("configure", "trace." .. f, opts[f], {min = 0, max = 3600}, true)
  end
  for _, f in ipairs{"max_queue", "batch_size", "max_attribute"} do
    check.number("configure", "trace." .. f, opts[f], {min = 1, integer = true}, true)
  end
  check.number("configure", "trace.retries", opts.retries, {min = 0, max = 10, integer = true}, true)
  for k, v in pairs(opts.headers or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      check.fail("configure", "trace.headers", "string names and values expected")
    end
  end
  getenv = getenv or os.getenv
  local base = M.from_env(function(name)
    if name == "OTEL_TRACES_EXPORTER" then return "otlp" end
    if name == "OTEL_SDK_DISABLED" or name:match("PROTOCOL$") then return nil end
    return getenv(name)
  end)
  for k, v in pairs(opts) do
    if k ~= "service_name" and k ~= "resource" and k ~= "headers" then base[k] = v end
  end
  for k, v in pairs(opts.headers or {}) do base.headers[k] = v end
  for k, v in pairs(opts.resource or {}) do base.resource[k] = tostring(v) end
  if opts.service_name then base.resource["service.name"] = opts.service_name end
  base.max_queue, base.batch_size = math.tointeger(base.max_queue), math.tointeger(base.batch_size)
  base.max_attribute = math.tointeger(base.max_attribute)
  return base
end

return M
