--- The tracer: a callback (tide.callbacks) that makes an OpenTelemetry span of
-- every call it hears end and hands each span to the exporter.
--
-- The spans nest as the calls do: evaluation → example → module → LM call, a
-- tool call under the module whose turn asked for it; a call's parent is the
-- call it ran under, across tasks (tide.callbacks hands the enclosing call to the
-- tasks a call starts, as settings are handed on).  LM calls carry the
-- OpenTelemetry GenAI attributes (gen_ai.operation.name, gen_ai.provider.name,
-- gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens,
-- gen_ai.usage.output_tokens, gen_ai.response.finish_reasons, error.type);
-- prompts and answers only when capture_content is on, and then redacted.
--
-- A span is made when its call ends, from the call (its start, duration, inputs
-- and outputs): a call in flight holds no span.  Ids are drawn when first
-- needed — a call's own at its end, or its parent's when a child ends first — and
-- kept on the call (trace_id, span_id), so parent and children agree.
local cjson = require "cjson"
local ids = require "tide.trace.ids"
local redact = require "tide.redact"
local callbacks = require "tide.callbacks"

local M = {}

-- A span is one table: its fields in the array part, by these indices, and its
-- attributes under their names (what tide.trace.otlp writes).
M.TRACE_ID, M.SPAN_ID, M.PARENT_ID, M.NAME, M.KIND, M.START, M.FINISH, M.STATUS, M.MESSAGE =
  1, 2, 3, 4, 5, 6, 7, 8, 9

M.KIND_INTERNAL, M.KIND_CLIENT = 1, 3
M.STATUS_OK, M.STATUS_ERROR = 1, 2

-- gen_ai.provider.name for tide's providers (the conventions' well-known values)
local PROVIDER_NAMES = {openai = "openai", anthropic = "anthropic", gemini = "gcp.gemini",
  azure = "azure.ai.openai"}

--- new(cfg, sink) → the tracer: cfg {capture_content, max_attribute, secrets},
-- sink(span) takes each finished span.
function M.new(cfg, sink)
  local tracer = {}
  local signature_text = setmetatable({}, {__mode = "k"})   -- signature → its text, made once
  local lm_names = setmetatable({}, {__mode = "k"})   -- LM → {span name, request model, provider}
  local finish_lists = {}   -- finish reason → {reason}: the attribute's list, shared

  --- A call's trace id and span id: its root's trace, a span id of its own, kept
  -- on the call itself (call.trace_id, call.span_id: a callback may read them), not
  -- in a weak table beside it, which the collector would have to clear per call.
  local function ids_of(call)
    local trace_id = call.trace_id
    if trace_id == nil then
      local parent = call.parent
      trace_id = parent and (ids_of(parent)) or ids.trace_id()
      call.trace_id, call.span_id = trace_id, ids.span_id()
    end
    return trace_id, call.span_id
  end

  --- A string attribute, redacted when it may hold what a user typed, then cut.
  local function text(v, redacted)
    if type(v) ~= "string" then v = tostring(v) end
    if redacted then v = redact.text(v, cfg.secrets()) end
    local cut = cfg.max_attribute
    if #v > cut then
      -- at a character's start: half a UTF-8 sequence would make the batch invalid JSON text
      while cut > 0 and (v:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
      v = v:sub(1, cut)
    end
    return v
  end

  --- The span of a call that has ended, with its status; not yet handed on.
  local function span_of(call, name, kind)
    local trace_id, span_id = ids_of(call)
    local parent = call.parent
    local start = callbacks.unix_time(call.started)
    local span = {trace_id, span_id, parent and select(2, ids_of(parent)) or false, name, kind, start,
      start + (call.duration or 0), false, false, ["tide.call.kind"] = call.kind}
    local err = call.error
    if err ~= nil then
      span[8] = M.STATUS_ERROR
      local kind_of = type(err) == "table" and err.kind or "lua"
      span["error.type"] = tostring(kind_of)
      local msg = type(err) == "table" and (err.message or tostring(err)) or tostring(err)
      span[9] = text(msg, true)
    end
    return span
  end

  local function encode(v)
    local ok, s = pcall(cjson.encode, v)
    return ok and s or "[]"
  end

  -- ---- LM calls ------------------------------------------------------------

  local function messages_of(req)
    if type(req) == "string" then return {{role = "user", content = req}} end
    if type(req) ~= "table" then return {} end
    if req.messages then return req.messages end
    if req.prompt then return {{role = "user", content = req.prompt}} end
    if req[1] ~= nil then return req end
    return {}
  end

  -- GenAI's message shape: {role, parts = {{type = "text", content}}}
  local function gen_ai_messages(list)
    local out = {}
    for i, m in ipairs(list) do
      local parts = {}
      if type(m.content) == "string" and m.content ~= "" then
        parts[1] = {type = "text", content = m.content}
      end
      for _, c in ipairs(type(m.tool_calls) == "table" and m.tool_calls or {}) do
        parts[#parts + 1] = {type = "tool_call", id = c.id, name = c.name, arguments = c.args}
      end
      if m.role == "tool" then
        parts = {{type = "tool_call_response", id = m.tool_call_id, response = m.content}}
      end
      out[i] = {role = m.role, parts = parts}
    end
    return out
  end

  local function output_messages(r)
    local out = {}
    for i, t in ipairs(type(r.texts) == "table" and r.texts or {r.text}) do
      out[i] = {role = "assistant", parts = {{type = "text", content = t}}, finish_reason = r.finish_reason}
    end
    if r.tool_calls and out[1] then
      for _, c in ipairs(r.tool_calls) do
        out[1].parts[#out[1].parts + 1] = {type = "tool_call", id = c.id, name = c.name, arguments = c.args}
      end
    end
    return out
  end

  --- An LM's span name, request model and provider name, worked out once.
  local function lm_names_of(lm)
    local names = lm_names[lm]
    if names == nil then
      local model = tostring(lm.model or "")
      local request_model = model:match("^[^/]+/(.+)$") or model
      local provider = lm.provider
      names = {"chat " .. request_model, request_model, PROVIDER_NAMES[provider] or provider or "unknown"}
      lm_names[lm] = names
    end
    return names
  end

  local function finish_list(reason)
    reason = tostring(reason)
    local list = finish_lists[reason]
    if list == nil then
      list = {reason}
      finish_lists[reason] = list
    end
    return list
  end

  function tracer.on_lm_end(_, call)
    local lm, req, r = call.instance, call.inputs, call.outputs
    if type(lm) ~= "table" then lm = {model = call.name} end
    local names = lm_names_of(lm)
    local a = span_of(call, names[1], M.KIND_CLIENT)
    a["gen_ai.operation.name"] = "chat"
    a["gen_ai.provider.name"] = names[3]
    a["gen_ai.request.model"] = names[2]
    local kw = lm.kwargs or {}
    local q = type(req) == "table" and req or {}
    local temperature = q.temperature or kw.temperature
    local max_tokens = q.max_tokens or kw.max_tokens
    local top_p = q.top_p or kw.top_p
    if type(temperature) == "number" then a["gen_ai.request.temperature"] = temperature end
    if math.type(max_tokens) == "integer" then a["gen_ai.request.max_tokens"] = max_tokens end
    if type(top_p) == "number" then a["gen_ai.request.top_p"] = top_p end
    if math.type(q.n) == "integer" and q.n > 1 then a["gen_ai.request.choice.count"] = q.n end
    if cfg.capture_content then
      a["gen_ai.input.messages"] = text(encode(gen_ai_messages(messages_of(req))), true)
    end
    if type(r) == "table" then
      if r.model then a["gen_ai.response.model"] = tostring(r.model) end
      if r.id then a["gen_ai.response.id"] = tostring(r.id) end
      if r.finish_reason then a["gen_ai.response.finish_reasons"] = finish_list(r.finish_reason) end
      local u = r.usage
      if type(u) == "table" then
        a["gen_ai.usage.input_tokens"] = math.tointeger(u.input) or 0
        a["gen_ai.usage.output_tokens"] = math.tointeger(u.output) or 0
      end
      -- tide's own, only when they say something: a hit, a price, a retry
      if r.cached == true then a["tide.lm.cached"] = true end
      if type(r.cost) == "number" and r.cost > 0 then a["tide.lm.cost"] = r.cost end
      if math.type(r.attempts) == "integer" and r.attempts > 1 then a["tide.lm.attempts"] = r.attempts end
      if cfg.capture_content then a["gen_ai.output.messages"] = text(encode(output_messages(r)), true) end
    elseif type(call.error) == "table" and math.type(call.error.status) == "integer" then
      a["http.response.status_code"] = call.error.status
    end
    sink(a)
  end

  -- ---- modules, tools, evaluations, examples -------------------------------

  function tracer.on_module_end(_, call)
    local span = span_of(call, tostring(call.name), M.KIND_INTERNAL)
    local inst = call.instance
    local sig = type(inst) == "table" and inst.signature
    if sig then
      local t = signature_text[sig]
      if t == nil then
        t = text(tostring(sig))
        signature_text[sig] = t
      end
      span["tide.signature"] = t
    end
    sink(span)
  end

  function tracer.on_tool_end(_, call)
    local a = span_of(call, "execute_tool " .. tostring(call.name), M.KIND_INTERNAL)
    a["gen_ai.operation.name"] = "execute_tool"
    a["gen_ai.tool.name"] = tostring(call.name)
    a["gen_ai.tool.type"] = "function"
    if cfg.capture_content then
      a["gen_ai.tool.call.arguments"] = text(encode(call.inputs), true)
      if call.outputs ~= nil then
        a["gen_ai.tool.call.result"] = text(type(call.outputs) == "string" and call.outputs
          or encode(call.outputs), true)
      end
    end
    sink(a)
  end

  function tracer.on_evaluate_end(_, call)
    local a = span_of(call, "evaluate", M.KIND_INTERNAL)
    local devset = type(call.inputs) == "table" and call.inputs.devset
    if type(devset) == "table" then a["tide.eval.examples"] = #devset end
    local r = call.outputs
    if type(r) == "table" then
      if type(r.score) == "number" then a["tide.eval.score"] = r.score end
      if math.type(r.done) == "integer" then a["tide.eval.done"] = r.done end
      if math.type(r.errors) == "integer" then a["tide.eval.errors"] = r.errors end
    end
    sink(a)
  end

  function tracer.on_example_end(_, call)
    local a = span_of(call, tostring(call.name), M.KIND_INTERNAL)
    if math.type(call.index) == "integer" then a["tide.example.index"] = call.index end
    if type(call.score) == "number" then a["tide.example.score"] = call.score end
    sink(a)
  end

  --- traceparent(call) → the W3C Trace Context header of a request the call makes
  -- (the call's own span as the parent, sampled).
  function tracer.traceparent(call)
    local trace_id, span_id = ids_of(call)
    return "00-" .. trace_id .. "-" .. span_id .. "-01"
  end

  return tracer
end

return M
