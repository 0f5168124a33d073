--- OTLP/HTTP JSON: finished spans as the body of a POST to /v1/traces
-- (ExportTraceServiceRequest in the protobuf JSON mapping).  The text is written
-- by the core (core.otlp_span, core.otlp_body: engine/core/otlp.c): built here in
-- Lua, piece by piece, it was most of what tracing cost a program.  A span is
-- written as it ends (span()); a batch of those texts is one request (body()).
local core = require "tide.core"

local M = {}

local VERSION = "0.1.0"

--- span(span) → one span's JSON text; span: a table in tide.trace.spans' layout.
M.span = core.otlp_span

--- body(texts, resource) → the JSON text of one export request: texts are span()'s,
-- resource the resource's attributes by name.
function M.body(texts, resource)
  local res = {}
  for k, v in pairs(resource) do res[k] = v end
  if res["service.name"] == nil then res["service.name"] = "unknown_service:tide" end
  res["telemetry.sdk.name"] = "tide"
  res["telemetry.sdk.language"] = "lua"
  res["telemetry.sdk.version"] = VERSION
  return core.otlp_body(texts, res, VERSION)
end

return M
