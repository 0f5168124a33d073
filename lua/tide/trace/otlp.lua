--- OTLP/HTTP JSON: a batch of finished spans as the body of a POST to
-- /v1/traces (ExportTraceServiceRequest in the protobuf JSON mapping: ids as hex,
-- 64-bit integers and nanosecond times as decimal strings, attributes as
-- {key, value = {stringValue | intValue | doubleValue | boolValue | arrayValue}}).
--
-- The text is written as pieces into one list and joined once, rather than built
-- as tables for cjson: exporting is most of what tracing costs a program, and a
-- span's dozen attributes would otherwise be three tables and a few strings
-- each; an attribute whose value repeats is written once and kept.  cjson
-- escapes every string.
local cjson = require "cjson"

local M = {}

local VERSION = "0.1.0"
local quote = cjson.encode   -- a Lua string → its JSON string literal
local format, concat = string.format, table.concat
local mtype = math.type

local key_json = setmetatable({}, {__index = function(t, k)   -- '{"key":"k","value":'
  local v = '{"key":' .. quote(k) .. ',"value":'
  t[k] = v
  return v
end})

--- Appends the JSON literal of string s → the new length.
local function put_string(out, n, s)
  out[n + 1] = quote(s)
  return n + 1
end

--- Appends the AnyValue of v → the new length.
local function put_value(out, n, v)
  local t = type(v)
  if t == "string" then
    out[n + 1] = '{"stringValue":'
    n = put_string(out, n + 1, v)
    out[n + 1] = "}"
    return n + 1
  elseif t == "boolean" then
    out[n + 1] = v and '{"boolValue":true}' or '{"boolValue":false}'
    return n + 1
  elseif t == "number" then
    if mtype(v) == "integer" then
      out[n + 1], out[n + 2], out[n + 3] = '{"intValue":"', v, '"}'
      return n + 3
    end
    if v ~= v or v == math.huge or v == -math.huge then
      out[n + 1], out[n + 2], out[n + 3] = '{"stringValue":"', tostring(v), '"}'
      return n + 3
    end
    out[n + 1], out[n + 2], out[n + 3] = '{"doubleValue":', format("%.17g", v), "}"
    return n + 3
  elseif t == "table" then
    out[n + 1] = '{"arrayValue":{"values":['
    n = n + 1
    for i, x in ipairs(v) do
      if i > 1 then out[n + 1] = ","; n = n + 1 end
      n = put_value(out, n, x)
    end
    out[n + 1] = "]}}"
    return n + 1
  end
  return put_value(out, n, tostring(v))
end

-- The text of whole attributes whose values repeat from span to span (the
-- operation, the provider, the model, a finish reason, a flag): key → value → text,
-- at most MEMO_VALUES values a key (an id never repeats, and stops being kept).
local MEMO_VALUES, MEMO_LENGTH = 64, 200
local memo, memo_count = {}, {}

local function attribute_text(k, v)
  local t = type(v)
  if t == "table" then   -- a list of one string, the tracer's own for a finish reason
    if #v ~= 1 or type(v[1]) ~= "string" then return nil end
  elseif t == "number" then
    if mtype(v) ~= "integer" then return nil end
  elseif t == "string" then
    if #v > MEMO_LENGTH then return nil end
  elseif t ~= "boolean" then
    return nil
  end
  local by_value = memo[k]
  if by_value == nil then
    by_value = {}
    memo[k], memo_count[k] = by_value, 0
  end
  local text = by_value[v]
  if text then return text end
  if memo_count[k] >= MEMO_VALUES then return nil end
  local out = {key_json[k]}
  local n = put_value(out, 1, v)
  out[n + 1] = "}"
  text = concat(out, "", 1, n + 1)
  by_value[v] = text
  memo_count[k] = memo_count[k] + 1
  return text
end

--- Appends the attribute list of a map (its string keys) → the new length.
-- after: the key to start after (a span's last field, 9: its attributes follow).
local function put_attributes(out, n, map, after)
  out[n + 1] = "["
  n = n + 1
  local first = true
  for k, v in next, map, after do
    if type(k) ~= "string" then goto next_key end
    if not first then out[n + 1] = ","; n = n + 1 end
    first = false
    local text = attribute_text(k, v)
    if text then
      out[n + 1] = text
      n = n + 1
    else
      out[n + 1] = key_json[k]
      n = put_value(out, n + 1, v)
      out[n + 1] = "}"
      n = n + 1
    end
    ::next_key::
  end
  out[n + 1] = "]"
  return n + 1
end

--- Seconds since the epoch (a float) → nanoseconds, an integer (table.concat
-- writes it in decimal).  A double near 1.7e9 s holds a quarter microsecond at
-- best, which the product keeps.
local floor = math.floor
function M.nanos(t)
  return floor(t * 1e9)
end

-- span names repeat ("chat gpt-4o-mini", "Predict"), up to a few hundred kept
local NAMES_KEPT = 256
local name_json, names_kept = {}, 0
local function quoted_name(name)
  local v = name_json[name]
  if v then return v end
  v = quote(name)
  if names_kept < NAMES_KEPT then
    name_json[name], names_kept = v, names_kept + 1
  end
  return v
end

--- A span (tide.trace.spans' layout): [1] trace id, [2] span id, [3] parent id
-- or false, [4] name, [5] kind, [6] start, [7] end, [8] status code or false,
-- [9] status message; its attributes under their names.
local SPAN_HEAD = '{"traceId":"%s","spanId":"%s",%s"name":%s,"kind":%d,' ..
  '"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":'

local function put_span(out, n, s)
  local parent = s[3]
  out[n + 1] = format(SPAN_HEAD, s[1], s[2], parent and '"parentSpanId":"' .. parent .. '",' or "",
    quoted_name(s[4]), s[5], M.nanos(s[6]), M.nanos(s[7]))
  n = put_attributes(out, n + 1, s, 9)
  if s[8] then
    out[n + 1], out[n + 2], out[n + 3] = ',"status":{"code":', s[8], ',"message":'
    n = put_string(out, n + 3, s[9] or "")
    out[n + 1] = "}"
    n = n + 1
  end
  out[n + 1] = "}"
  return n + 1
end

--- attributes(map) → the JSON text of the OTLP attribute list.
function M.attributes(map)
  local out = {}
  return concat(out, "", 1, put_attributes(out, 0, map))
end

--- body(spans, resource) → the JSON text of one export request.
function M.body(spans, resource)
  local res = {}
  for k, v in pairs(resource) do res[k] = v end
  if res["service.name"] == nil then res["service.name"] = "unknown_service:tide" end
  res["telemetry.sdk.name"] = "tide"
  res["telemetry.sdk.language"] = "lua"
  res["telemetry.sdk.version"] = VERSION
  local head = {'{"resourceSpans":[{"resource":{"attributes":'}
  local n = put_attributes(head, 1, res)
  head[n + 1] = '},"scopeSpans":[{"scope":{"name":"tide","version":"' .. VERSION .. '"},"spans":['
  -- each span joined on its own (one buffer, reused): the batch is then a list of
  -- span texts, not of the tens of thousands of pieces they are made of
  local texts, buf = {}, {}
  for i, s in ipairs(spans) do texts[i] = concat(buf, "", 1, put_span(buf, 0, s)) end
  return concat(head, "", 1, n + 1) .. concat(texts, ",") .. "]}]}]}"
end

return M
