--- trace_waterfall.lua: OTLP/HTTP JSON exports (what tide.trace posts) as one HTML page,
-- a waterfall of each trace's spans, for a look without a tracing backend.
--
--   build/tide scripts/trace_waterfall.lua EXPORTS.json > trace.html
--
-- EXPORTS.json holds one export request ({"resourceSpans": ...}) or a list of them
-- (as spec/support/otlp_receiver.js's /__received gives: [{body = ...}, ...]).  Each
-- trace is drawn as rows, one per span, indented under its parent, its bar placed on
-- the trace's time line; LM calls show their model and tokens.  docs/img/trace.png is
-- this page for a `tide eval` of three drafts (docs/tracing.md).
local tide = require "tide"
local escape = require("tide.eval.html_escape").escape

local path = arg[1]
if not path then
  io.stderr:write("usage: trace_waterfall.lua EXPORTS.json > trace.html\n")
  os.exit(2)
end
local f = assert(io.open(path, "rb"))
local data = tide.json.decode(f:read("a"))
f:close()

--- Every span of the exports, attributes as a plain table.
local function spans_of(doc)
  local requests = doc.resourceSpans and {doc} or {}
  if not doc.resourceSpans then
    for _, item in ipairs(doc) do requests[#requests + 1] = item.body or item end
  end
  local out = {}
  for _, req in ipairs(requests) do
    for _, rs in ipairs(req.resourceSpans or {}) do
      for _, ss in ipairs(rs.scopeSpans or {}) do
        for _, s in ipairs(ss.spans or {}) do
          local attrs = {}
          for _, a in ipairs(s.attributes or {}) do
            local v = a.value or {}
            attrs[a.key] = v.stringValue or v.intValue or v.doubleValue or v.boolValue
          end
          out[#out + 1] = {trace = s.traceId, id = s.spanId, parent = s.parentSpanId, name = s.name,
            start = tonumber(s.startTimeUnixNano) / 1e9, finish = tonumber(s.endTimeUnixNano) / 1e9,
            error = s.status and s.status.code == 2, attrs = attrs}
        end
      end
    end
  end
  return out
end

--- The spans of one trace in tree order: each after its parent, siblings by start.
local function ordered(list)
  local by_id, children, roots = {}, {}, {}
  for _, s in ipairs(list) do by_id[s.id] = s end
  for _, s in ipairs(list) do
    if s.parent and by_id[s.parent] then
      children[s.parent] = children[s.parent] or {}
      table.insert(children[s.parent], s)
    else
      roots[#roots + 1] = s
    end
  end
  local out = {}
  local function walk(s, depth)
    s.depth = depth
    out[#out + 1] = s
    local kids = children[s.id] or {}
    table.sort(kids, function(a, b) return a.start < b.start end)
    for _, k in ipairs(kids) do walk(k, depth + 1) end
  end
  table.sort(roots, function(a, b) return a.start < b.start end)
  for _, r in ipairs(roots) do walk(r, 0) end
  return out
end

local COLORS = {evaluate = "#5b6abf", example = "#8e7cc3", chat = "#e69138", execute_tool = "#6aa84f"}
local function color_of(s)
  if s.error then return "#cc4125" end
  local op = s.attrs["gen_ai.operation.name"]
  if op then return COLORS[op] or "#e69138" end
  return COLORS[s.name] or (s.name:match("^example") and COLORS.example) or "#3d85c6"
end

local function label_of(s)
  local a = s.attrs
  local text = s.name
  if a["gen_ai.usage.input_tokens"] then
    text = string.format("%s · %s in / %s out", text, a["gen_ai.usage.input_tokens"],
      a["gen_ai.usage.output_tokens"] or "?")
  end
  return text
end

local ROW, LABEL_W, BAR_W, INDENT = 20, 360, 640, 14

local function trace_svg(list)
  local t0, t1 = math.huge, -math.huge
  for _, s in ipairs(list) do t0, t1 = math.min(t0, s.start), math.max(t1, s.finish) end
  local span_s = math.max(t1 - t0, 1e-6)
  local parts = {string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
    'font-family="sans-serif" font-size="12">', LABEL_W + BAR_W + 80, (#list + 1) * ROW + 4)}
  parts[#parts + 1] = string.format('<text x="%d" y="14" fill="#555">0 s</text>' ..
    '<text x="%d" y="14" fill="#555" text-anchor="end">%.3f s</text>', LABEL_W, LABEL_W + BAR_W, span_s)
  for i, s in ipairs(list) do
    local y = i * ROW
    local x = LABEL_W + (s.start - t0) / span_s * BAR_W
    local w = math.max((s.finish - s.start) / span_s * BAR_W, 1)
    parts[#parts + 1] = string.format(
      '<text x="%d" y="%d">%s</text><rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"/>' ..
      '<text x="%.1f" y="%d" fill="#333">%.0f ms</text>',
      4 + s.depth * INDENT, y + 13, escape(label_of(s)), x, y + 3, w, ROW - 6, color_of(s),
      x + w + 4, y + 13, (s.finish - s.start) * 1000)
  end
  parts[#parts + 1] = "</svg>"
  return table.concat(parts)
end

local by_trace, order = {}, {}
for _, s in ipairs(spans_of(data)) do
  if not by_trace[s.trace] then by_trace[s.trace] = {}; order[#order + 1] = s.trace end
  table.insert(by_trace[s.trace], s)
end
local out = {'<!DOCTYPE html><html><head><meta charset="utf-8"><title>tide traces</title>',
  '<style>body{font-family:sans-serif;margin:16px;background:#fff}h2{font-size:15px;margin:18px 0 4px}</style>',
  '</head><body>'}
for _, trace in ipairs(order) do
  local list = ordered(by_trace[trace])
  out[#out + 1] = string.format("<h2>trace %s · %d spans</h2>", escape(trace), #list)
  out[#out + 1] = trace_svg(list)
end
out[#out + 1] = "</body></html>\n"
io.write(table.concat(out, "\n"))
