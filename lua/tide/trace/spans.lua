--- The tracer: a callback (tide.callbacks) that makes an OpenTelemetry span of
-- every call it hears of and hands each finished span to the exporter.
--
-- The spans nest as the calls do: evaluation → example → module → LM call, a
-- tool call under the LM turn's module; a call's parent is the nearest call above
-- it that has a span, across tasks (tide.callbacks hands the enclosing call to
-- the tasks a call starts, as settings are handed on).  LM calls carry the
-- OpenTelemetry GenAI attributes (gen_ai.operation.name, gen_ai.provider.name,
-- gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens,
-- gen_ai.usage.output_tokens, gen_ai.response.finish_reasons, error.type);
-- prompts and answers only when capture_content is on, and then redacted.
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
  local open_spans = {}   -- call id → its span, while the call runs
  local signature_text = setmetatable({}, {__mode = "k"})   -- signature → its text, made once
  local lm_names = setmetatable({}, {__mode = "k"})   -- LM → {span name, request model, provider}
  local finish_lists = {}   -- finish reason → {reason}: the attribute's list, shared

  --- The span of the nearest call above `call` that has one.
  local function parent_span(call)
    local p = call.parent
    while p do
      local s = open_spans[p.id]
      if s then return s end
      p = p.parent
    end
    return nil
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

  local function open(call, name, kind)
    local parent = parent_span(call)
    local span = {parent and parent[1] or ids.trace_id(), ids.span_id(), parent and parent[2] or false,
      name, kind, callbacks.unix_time(call.started), false, false, false, ["tide.call.kind"] = call.kind}
    open_spans[call.id] = span
    return span
  end

  local function close(call, span)
    open_spans[call.id] = nil
    span[7] = span[6] + (call.duration or 0)
    local err = call.error
    if err ~= nil then
      span[8] = M.STATUS_ERROR
      local kind = type(err) == "table" and err.kind or "lua"
      span["error.type"] = tostring(kind)
      local msg = type(err) == "table" and (err.message or tostring(err)) or tostring(err)
      span[9] = text(msg, true)
    end
    sink(span)
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

  local function encode(v)
    local ok, s = pcall(cjson.encode, v)
    return ok and s or "[]"
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

  function tracer.on_lm_start(_, call)
    local lm, req = call.instance, call.inputs
    if type(lm) ~= "table" then lm = {model = call.name} end
    local names = lm_names_of(lm)
    local a = open(call, names[1], M.KIND_CLIENT)
    a["gen_ai.operation.name"] = "chat"
    a["gen_ai.provider.name"] = names[3]
    a["gen_ai.request.model"] = names[2]
    local kw = lm.kwargs or {}
    local r = type(req) == "table" and req or {}
    local temperature = r.temperature or kw.temperature
    local max_tokens = r.max_tokens or kw.max_tokens
    local top_p = r.top_p or kw.top_p
    if type(temperature) == "number" then a["gen_ai.request.temperature"] = temperature end
    if math.type(max_tokens) == "integer" then a["gen_ai.request.max_tokens"] = max_tokens end
    if type(top_p) == "number" then a["gen_ai.request.top_p"] = top_p end
    if math.type(r.n) == "integer" and r.n > 1 then a["gen_ai.request.choice.count"] = r.n end
    if cfg.capture_content then
      a["gen_ai.input.messages"] = text(encode(gen_ai_messages(messages_of(req))), true)
    end
  end

  function tracer.on_lm_end(_, call)
    local span = open_spans[call.id]
    if not span then return end
    local a, r = span, call.outputs
    if type(r) == "table" then
      if r.model then a["gen_ai.response.model"] = tostring(r.model) end
      if r.id then a["gen_ai.response.id"] = tostring(r.id) end
      local reason = r.finish_reason
      if reason then
        reason = tostring(reason)
        local list = finish_lists[reason]
        if list == nil then
          list = {reason}
          finish_lists[reason] = list
        end
        a["gen_ai.response.finish_reasons"] = list
      end
      local u = r.usage
      if type(u) == "table" then
        a["gen_ai.usage.input_tokens"] = math.tointeger(u.input) or 0
        a["gen_ai.usage.output_tokens"] = math.tointeger(u.output) or 0
      end
      -- tide's own, only when they say something: a hit, a price, a retry
      if r.cached == true then a["tide.lm.cached"] = true end
      if type(r.cost) == "number" and r.cost > 0 then a["tide.lm.cost"] = r.cost end
      if math.type(r.attempts) == "integer" and r.attempts > 1 then a["tide.lm.attempts"] = r.attempts end
      if cfg.capture_content then
        local out = {}
        for i, t in ipairs(type(r.texts) == "table" and r.texts or {r.text}) do
          out[i] = {role = "assistant", parts = {{type = "text", content = t}},
                    finish_reason = r.finish_reason}
        end
        if r.tool_calls and out[1] then
          for _, c in ipairs(r.tool_calls) do
            out[1].parts[#out[1].parts + 1] = {type = "tool_call", id = c.id, name = c.name, arguments = c.args}
          end
        end
        a["gen_ai.output.messages"] = text(encode(out), true)
      end
    elseif type(call.error) == "table" and math.type(call.error.status) == "integer" then
      a["http.response.status_code"] = call.error.status
    end
    close(call, span)
  end

  -- ---- modules, tools, evaluations, examples -------------------------------

  function tracer.on_module_start(_, call)
    local span = open(call, tostring(call.name), M.KIND_INTERNAL)
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
  end

  function tracer.on_tool_start(_, call)
    local a = open(call, "execute_tool " .. tostring(call.name), M.KIND_INTERNAL)
    a["gen_ai.operation.name"] = "execute_tool"
    a["gen_ai.tool.name"] = tostring(call.name)
    a["gen_ai.tool.type"] = "function"
    if cfg.capture_content then a["gen_ai.tool.call.arguments"] = text(encode(call.inputs), true) end
  end

  function tracer.on_tool_end(_, call)
    local span = open_spans[call.id]
    if not span then return end
    if cfg.capture_content and call.outputs ~= nil then
      span["gen_ai.tool.call.result"] = text(type(call.outputs) == "string" and call.outputs
        or encode(call.outputs), true)
    end
    close(call, span)
  end

  function tracer.on_evaluate_start(_, call)
    local span = open(call, "evaluate", M.KIND_INTERNAL)
    local devset = type(call.inputs) == "table" and call.inputs.devset
    if type(devset) == "table" then span["tide.eval.examples"] = #devset end
  end

  function tracer.on_evaluate_end(_, call)
    local span = open_spans[call.id]
    if not span then return end
    local r = call.outputs
    if type(r) == "table" then
      local a = span
      if type(r.score) == "number" then a["tide.eval.score"] = r.score end
      if math.type(r.done) == "integer" then a["tide.eval.done"] = r.done end
      if math.type(r.errors) == "integer" then a["tide.eval.errors"] = r.errors end
    end
    close(call, span)
  end

  function tracer.on_example_start(_, call)
    open(call, tostring(call.name), M.KIND_INTERNAL)
  end

  function tracer.on_example_end(_, call)
    local span = open_spans[call.id]
    if not span then return end
    if math.type(call.index) == "integer" then span["tide.example.index"] = call.index end
    if type(call.score) == "number" then span["tide.example.score"] = call.score end
    close(call, span)
  end

  local function plain_end(_, call)
    local span = open_spans[call.id]
    if span then close(call, span) end
  end
  tracer.on_module_end = plain_end

  return tracer
end

return M
