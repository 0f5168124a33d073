--- OTLP/HTTP JSON: a batch of finished spans as the body of a POST to
-- /v1/traces (ExportTraceServiceRequest in the protobuf JSON mapping: ids as hex,
-- 64-bit integers and nanosecond times as decimal strings, attributes as
-- {key, value = {stringValue | intValue | doubleValue | boolValue | arrayValue}}).
-- No list here is ever empty: lua-cjson would write an empty one as {}.
local cjson = require "cjson"

local M = {}

local SCOPE = {name = "tide", version = "0.1.0"}

local function any_value(v)
  local t = type(v)
  if t == "string" then return {stringValue = v} end
  if t == "boolean" then return {boolValue = v} end
  if t == "number" then
    if math.type(v) == "integer" then return {intValue = tostring(v)} end
    if v ~= v or v == math.huge or v == -math.huge then return {stringValue = tostring(v)} end
    return {doubleValue = v}
  end
  if t == "table" then
    local values = {}
    for i, x in ipairs(v) do values[i] = any_value(x) end
    return {arrayValue = {values = values}}
  end
  return {stringValue = tostring(v)}
end

--- attributes(map) → the OTLP list, sorted by key (stable bodies, easy to read).
function M.attributes(map)
  local keys = {}
  for k in pairs(map) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = {key = k, value = any_value(map[k])} end
  return out
end

--- Seconds since the epoch (a float) → nanoseconds as a decimal string.
function M.nanos(t)
  local sec = math.floor(t)
  local ns = math.floor((t - sec) * 1e9 + 0.5)
  if ns >= 1000000000 then sec, ns = sec + 1, ns - 1000000000 end
  return string.format("%d%09d", sec, ns)
end

local function span_json(s)
  local out = {
    traceId = s.trace_id, spanId = s.span_id, parentSpanId = s.parent_id,
    name = s.name, kind = s.kind,
    startTimeUnixNano = M.nanos(s.start), endTimeUnixNano = M.nanos(s.finish),
    attributes = M.attributes(s.attributes),
  }
  if s.status_code then out.status = {code = s.status_code, message = s.status_message} end
  return out
end

--- body(spans, resource) → the JSON text of one export request.
function M.body(spans, resource)
  local list = {}
  for i, s in ipairs(spans) do list[i] = span_json(s) end
  local res = {}
  for k, v in pairs(resource) do res[k] = v end
  if res["service.name"] == nil then res["service.name"] = "unknown_service:tide" end
  res["telemetry.sdk.name"] = "tide"
  res["telemetry.sdk.language"] = "lua"
  res["telemetry.sdk.version"] = SCOPE.version
  return cjson.encode{resourceSpans = {{
    resource = {attributes = M.attributes(res)},
    scopeSpans = {{scope = SCOPE, spans = list}},
  }}}
end

return M
