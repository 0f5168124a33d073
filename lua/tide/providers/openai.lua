--- OpenAI chat completions (POST {base}/chat/completions), also spoken by
-- Ollama, vLLM, llama.cpp, OpenRouter and Groq.
local common = require "tide.providers.common"
local media = require "tide.providers.media"

local get, str = common.get, common.str
local json_null = require("tide.json").null

local M = {
  name = "openai",
  takes_n = true,    -- n answers in one request
  request_id_header = "x-request-id",
}
local NAME = M.name

-- finish_reason values as they are, with the legacy function_call folded in.
local FINISH = {stop = "stop", length = "length", content_filter = "content_filter",
                tool_calls = "tool_calls", function_call = "tool_calls"}

local function finish_of(reason)
  return FINISH[reason] or "other"
end

-- Reasoning models (o1, o3, o4-mini, gpt-5...) reject max_tokens.
local function takes_completion_tokens(model)
  return model:match("^o%d") ~= nil or model:match("^gpt%-5") ~= nil
end

local function response_format(rf)
  if rf == nil then return nil end
  if rf.type == "json_schema" then
    return {type = "json_schema", json_schema = {
      name = rf.name or common.SCHEMA_NAME, schema = common.schema(rf.schema), strict = rf.strict}}
  end
  return {type = rf.type}
end

-- A provider-neutral message with tool calls or a tool's result, in OpenAI's shape.
local function tool_message(m)
  if m.role == "tool" then
    return {role = "tool", tool_call_id = m.tool_call_id, content = m.content}
  end
  local calls = {}
  for i, c in ipairs(m.tool_calls) do
    calls[i] = {id = c.id, type = "function",
                ["function"] = {name = c.name, arguments = common.encode(c.args or {})}}
  end
  return {role = m.role, content = m.content or json_null, tool_calls = calls}
end

local function tools_of(tools)
  local out = {}
  for i, t in ipairs(tools) do
    out[i] = {type = "function", ["function"] = {name = t.name, description = t.description,
      parameters = common.schema(t.parameters)}}
  end
  return out
end

local CHOICES = {auto = true, required = true, none = true}

local function tool_choice(choice)
  if choice == nil or CHOICES[choice] then return choice end
  return {type = "function", ["function"] = {name = choice}}
end

--- build(cfg, req) → {url, headers, body}.  Azure's deployments take the same
-- body at their own path, with the key in their own header (path and
-- key_header).  One function, not a body() under it: the frame more would
-- deepen every waiting call's coroutine stack (spec/memory_spec.lua bounds it).
function M.build(cfg, req, path, key_header)
  common.require_messages(req, NAME)
  local messages = {}
  for i, m in ipairs(req.messages) do
    if req.tool_messages and (m.tool_calls or m.role == "tool") then
      messages[i] = tool_message(m)
    else
      messages[i] = {role = m.role, content = media.openai(m.content)}   -- system stays in the list
    end
  end
  local body = {
    model = cfg.model,
    messages = messages,
    temperature = req.temperature,
    top_p = req.top_p,
    stop = common.list(req.stop),
    n = req.n,
    stream = req.stream or nil,
    response_format = response_format(req.response_format),
  }
  if req.max_tokens then
    local field = takes_completion_tokens(cfg.model) and "max_completion_tokens" or "max_tokens"
    body[field] = req.max_tokens
  end
  if req.stream then body.stream_options = {include_usage = true} end
  if req.tools then
    body.tools = tools_of(req.tools)
    body.tool_choice = tool_choice(req.tool_choice)
  end
  if path then return common.request(cfg, req, path, body, key_header) end
  return common.request(cfg, req, "/chat/completions", body, "Authorization", "Bearer ")
end

--- usage(u, input, output) → usage: an OpenAI usage object whose counts are
-- named <input>_tokens and <output>_tokens ("prompt"/"completion" here,
-- "input"/"output" in the Responses API); cached_tokens are part of the input's,
-- reasoning_tokens of the output's, each under <name>_tokens_details.
function M.usage(u, input, output)
  return common.usage(get(u, input .. "_tokens"), get(u, output .. "_tokens"),
    get(u, "total_tokens"), get(u, input .. "_tokens_details", "cached_tokens"),
    get(u, output .. "_tokens_details", "reasoning_tokens"))
end

local function usage_of(u)
  return M.usage(u, "prompt", "completion")
end

-- The status an error payload stands for when it has none of its own: by its
-- code or type, else a server error.
local STATUS_OF = {
  rate_limit_exceeded = 429, insufficient_quota = 429, requests = 429, tokens = 429,
  invalid_api_key = 401, authentication_error = 401, permission_error = 403,
  not_found = 404, model_not_found = 404, invalid_request_error = 400,
  context_length_exceeded = 400, server_error = 500,
}

-- OpenAI's {"error": {message, type, code}}, and the looser shapes of
-- compatible servers ({"error": "..."}, FastAPI's {"detail": "..."},
-- {"message": "...", "code": 400}).
local function describe(raw)
  local err = get(raw, "error")
  if type(err) ~= "table" then
    return {message = str(err) or str(get(raw, "detail")) or str(get(raw, "message"))}
  end
  local code = str(err.code) or str(err.type)
  local d = {
    message = str(err.message), code = code,
    status = common.error_status(err.code) or STATUS_OF[code] or STATUS_OF[str(err.type)],
  }
  -- a spent quota answers 429 too, but waiting will not refill it
  if code == "insufficient_quota" then
    d.kind = "quota"
    d.retryable = false
  end
  return d
end

local errors = common.errors(NAME, describe, M.request_id_header)

--- describe(raw) → {message, code, status, kind, retryable}: what an OpenAI
-- error payload says (the Responses API writes the same payload).
M.describe = describe

--- classify(status, headers, body) → error object, for a non-2xx answer.
M.classify = errors.classify

-- message.tool_calls → {{id, name, args}}, the arguments decoded.
local function calls_of(calls)
  local out = {}
  for i, c in ipairs(calls) do
    local name = str(get(c, "function", "name"))
    out[i] = {id = str(get(c, "id")), name = name,
              args = common.tool_args(NAME, name, str(get(c, "function", "arguments")))}
  end
  return out
end

--- parse(status, headers, body) → {text, texts, finish_reason, usage, model, id,
-- request_id, raw} for a 2xx answer; raises parse / content_filter / empty errors.
function M.parse(status, headers, body)
  local raw = errors.answer(status, headers, body, "a chat completion JSON object")
  local choices = raw.choices
  if type(get(choices, 1, "message")) ~= "table" then
    common.parse_error(NAME, status, body, "a chat completion with choices[1].message", true)
  end
  local texts = {}
  for i, c in ipairs(choices) do
    texts[i] = str(get(c, "message", "content")) or ""
  end
  local first = choices[1]
  local finish = finish_of(first.finish_reason)
  local refusal = str(first.message.refusal)
  if refusal and texts[1] == "" then finish = "content_filter" end
  local r = {texts = texts, finish_reason = finish, reason = refusal,
    usage = usage_of(raw.usage), model = str(raw.model), id = str(raw.id),
    request_id = common.request_id(headers, M.request_id_header), raw = raw}
  local calls = get(first, "message", "tool_calls")
  if type(calls) == "table" and #calls > 0 then return common.tool_result(r, calls_of(calls)) end
  return common.result(NAME, r)
end

-- delta.tool_calls: a call's id and name first, then its arguments in pieces,
-- each by the call's index.
local function stream_calls(state, calls)
  for _, tc in ipairs(calls) do
    local index = math.tointeger(get(tc, "index")) or 0
    local c = common.stream_call(state, index + 1)
    c.id = c.id or str(get(tc, "id"))
    c.name = c.name or str(get(tc, "function", "name"))
    local piece = str(get(tc, "function", "arguments"))
    if piece then c.parts[#c.parts + 1] = piece end
  end
end

--- stream_event(state, {event, data}) → text_delta or nil, done
-- Text comes from choice 0; usage from the last chunk (include_usage).  The
-- stream is complete at [DONE] or at choice 0's finish_reason: some compatible
-- servers never send [DONE].
function M.stream_event(state, ev)
  if ev.data == "[DONE]" then
    state.complete = true
    return nil, true
  end
  local chunk = errors.event(ev.data, "a chat completion chunk")
  if chunk == nil then return nil, false end
  state.model = str(chunk.model) or state.model
  state.id = state.id or str(chunk.id)
  if type(chunk.usage) == "table" then state.usage = usage_of(chunk.usage) end
  local text
  for _, c in ipairs(get(chunk, "choices") or {}) do
    if type(c) == "table" and (c.index == nil or c.index == 0) then
      text = str(get(c, "delta", "content"))
      local calls = get(c, "delta", "tool_calls")
      if type(calls) == "table" then stream_calls(state, calls) end
      local refusal = str(get(c, "delta", "refusal"))
      if refusal then state.block_reason = (state.block_reason or "") .. refusal end
      if type(c.finish_reason) == "string" then
        state.finish_reason = finish_of(c.finish_reason)
        state.complete = true
      end
    end
  end
  if text then state.text_seen = true end
  return text, false
end

--- stream_end(state): at the end of a stream, raises `transport` (cause
-- `incomplete`) when it was cut before its end, content_filter / empty when no
-- text arrived.
function M.stream_end(state)
  errors.stream_end(state, "a finish_reason or data: [DONE]")
end

return M
