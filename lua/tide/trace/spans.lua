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

local M = {}

M.KIND_INTERNAL, M.KIND_CLIENT = 1, 3
M.STATUS_OK, M.STATUS_ERROR = 1, 2

-- gen_ai.provider.name for tide's providers (the conventions' well-known values)
local PROVIDER_NAMES = {openai = "openai", anthropic = "anthropic", gemini = "gcp.gemini",
  azure = "azure.ai.openai"}

--- new(cfg, sink) → the tracer: cfg {capture_content, max_attribute, secrets},
-- sink(span) takes each finished span.
function M.new(cfg, sink)
  local spans = setmetatable({}, {__mode = "k"})   -- call → its open span
  local signature_text = setmetatable({}, {__mode = "k"})   -- signature → its text, made once
  local tracer = {}

  --- The span of the nearest call above `call` that has one.
  local function parent_span(call)
    local p = call.parent
    while p do
      local s = spans[p]
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
    local span = {
      trace_id = parent and parent.trace_id or ids.trace_id(),
      span_id = ids.span_id(),
      parent_id = parent and parent.span_id or nil,
      name = name, kind = kind, start = call.start_time,
      attributes = {["tide.call.kind"] = call.kind},
    }
    spans[call] = span
    return span
  end

  local function close(call, span)
    spans[call] = nil
    span.finish = span.start + (call.duration or 0)
    local err = call.error
    if err ~= nil then
      span.status_code = M.STATUS_ERROR
      local kind = type(err) == "table" and err.kind or "lua"
      span.attributes["error.type"] = tostring(kind)
      local msg = type(err) == "table" and (err.message or tostring(err)) or tostring(err)
      span.status_message = text(msg, true)
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

  function tracer.on_lm_start(_, call)
    local lm, req = call.instance, call.inputs
    local model = type(lm) == "table" and tostring(lm.model or "") or tostring(call.name)
    local request_model = model:match("^[^/]+/(.+)$") or model
    local provider = type(lm) == "table" and lm.provider or nil
    local span = open(call, "chat " .. request_model, M.KIND_CLIENT)
    local a = span.attributes
    a["gen_ai.operation.name"] = "chat"
    a["gen_ai.provider.name"] = PROVIDER_NAMES[provider] or provider or "unknown"
    a["gen_ai.request.model"] = request_model
    local kw = type(lm) == "table" and lm.kwargs or {}
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
    local span = spans[call]
    if not span then return end
    local a, r = span.attributes, call.outputs
    if type(r) == "table" then
      if r.model then a["gen_ai.response.model"] = tostring(r.model) end
      if r.id then a["gen_ai.response.id"] = tostring(r.id) end
      if r.finish_reason then a["gen_ai.response.finish_reasons"] = {tostring(r.finish_reason)} end
      local u = r.usage
      if type(u) == "table" then
        a["gen_ai.usage.input_tokens"] = math.tointeger(u.input) or 0
        a["gen_ai.usage.output_tokens"] = math.tointeger(u.output) or 0
      end
      a["tide.lm.cached"] = r.cached == true
      if type(r.cost) == "number" then a["tide.lm.cost"] = r.cost end
      if math.type(r.attempts) == "integer" then a["tide.lm.attempts"] = r.attempts end
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
      span.attributes["tide.signature"] = t
    end
  end

  function tracer.on_tool_start(_, call)
    local span = open(call, "execute_tool " .. tostring(call.name), M.KIND_INTERNAL)
    local a = span.attributes
    a["gen_ai.operation.name"] = "execute_tool"
    a["gen_ai.tool.name"] = tostring(call.name)
    a["gen_ai.tool.type"] = "function"
    if cfg.capture_content then a["gen_ai.tool.call.arguments"] = text(encode(call.inputs), true) end
  end

  function tracer.on_tool_end(_, call)
    local span = spans[call]
    if not span then return end
    if cfg.capture_content and call.outputs ~= nil then
      span.attributes["gen_ai.tool.call.result"] = text(type(call.outputs) == "string" and call.outputs
        or encode(call.outputs), true)
    end
    close(call, span)
  end

  function tracer.on_evaluate_start(_, call)
    local span = open(call, "evaluate", M.KIND_INTERNAL)
    local devset = type(call.inputs) == "table" and call.inputs.devset
    if type(devset) == "table" then span.attributes["tide.eval.examples"] = #devset end
  end

  function tracer.on_evaluate_end(_, call)
    local span = spans[call]
    if not span then return end
    local r = call.outputs
    if type(r) == "table" then
      local a = span.attributes
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
    local span = spans[call]
    if not span then return end
    if math.type(call.index) == "integer" then span.attributes["tide.example.index"] = call.index end
    if type(call.score) == "number" then span.attributes["tide.example.score"] = call.score end
    close(call, span)
  end

  local function plain_end(_, call)
    local span = spans[call]
    if span then close(call, span) end
  end
  tracer.on_module_end = plain_end

  return tracer
end

return M
