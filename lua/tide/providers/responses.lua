--- OpenAI's Responses API (POST {base}/responses): tide.LM("openai/...",
-- {api = "responses"}), for models that only speak it and for its usage
-- details.  The provider contract is providers/init.lua's.
--
-- Request: system messages become `instructions`; the other messages become
-- input items (a user's text as input_text, an assistant's as output_text,
-- tool calls as function_call items, tool results as function_call_output);
-- max_tokens is max_output_tokens, response_format is text.format, tools are
-- flat {type = "function", name, description, parameters}.  Answer: the text
-- of the message items' output_text parts (the SDK's output_text), function
-- calls as tool_calls, usage with cached and reasoning tokens.  Streams:
-- response.output_text.delta, function-call argument deltas, and
-- response.completed (or .incomplete) as the end marker.
local common = require "tide.providers.common"
local openai = require "tide.providers.openai"
local check = require "tide.check"

local get, str = common.get, common.str

local M = {
  name = "openai",      -- messages are OpenAI's (media parts and all)
  takes_n = false,      -- one answer per response: lm:call{n = 3} makes three calls
  request_id_header = "x-request-id",
}
local NAME = "openai"

-- The API's smallest max_output_tokens.
M.MIN_OUTPUT_TOKENS = 16

--- check(req): what the Responses API cannot take, raised in the caller's task.
function M.check(req)
  for i, m in ipairs(req.messages) do
    if m.content ~= nil and type(m.content) ~= "string" then
      check.misuse(string.format("tide.LM: messages[%d] has media parts, which tide sends to "
        .. "the Chat Completions API only: use api = \"chat\"", i))
    end
  end
  if req.stop ~= nil then
    check.misuse("tide.LM: the Responses API has no stop sequences: drop `stop` or use "
      .. "api = \"chat\"")
  end
  if req.max_tokens ~= nil and req.max_tokens < M.MIN_OUTPUT_TOKENS then
    check.misuse(string.format("tide.LM: the Responses API takes max_tokens >= %d "
      .. "(max_output_tokens), got %s", M.MIN_OUTPUT_TOKENS, tostring(req.max_tokens)))
  end
end

-- A message's text as an input item's content parts (check() let only text through).
local function content_of(m)
  return {{type = m.role == "assistant" and "output_text" or "input_text", text = m.content}}
end

-- Messages → instructions (the system texts) and input items.
local function items_of(messages)
  local system, input = {}, {}
  for _, m in ipairs(messages) do
    if m.role == "system" then
      system[#system + 1] = m.content
    elseif m.role == "tool" then
      input[#input + 1] = {type = "function_call_output", call_id = m.tool_call_id,
                           output = m.content}
    else
      if m.content ~= nil and m.content ~= "" then
        input[#input + 1] = {role = m.role, content = content_of(m)}
      end
      for _, c in ipairs(m.tool_calls or {}) do
        input[#input + 1] = {type = "function_call", call_id = c.id, name = c.name,
                             arguments = common.encode(c.args or {})}
      end
    end
  end
  return #system > 0 and table.concat(system, "\n\n") or nil, input
end

local function text_format(rf)
  if rf == nil then return nil end
  if rf.type == "json_schema" then
    return {format = {type = "json_schema", name = rf.name or common.SCHEMA_NAME,
                      schema = common.schema(rf.schema), strict = rf.strict}}
  end
  return {format = {type = rf.type}}
end

local function tools_of(tools)
  local out = {}
  for i, t in ipairs(tools) do
    out[i] = {type = "function", name = t.name, description = t.description,
              parameters = common.schema(t.parameters)}
  end
  return out
end

local CHOICES = {auto = true, required = true, none = true}

local function tool_choice(choice)
  if choice == nil or CHOICES[choice] then return choice end
  return {type = "function", name = choice}
end

--- build(cfg, req) → {url, headers, body}
function M.build(cfg, req)
  common.require_messages(req, NAME)
  local instructions, input = items_of(req.messages)
  if #input == 0 then common.require_turn(req.messages, NAME) end
  local body = {
    model = cfg.model,
    input = input,
    instructions = instructions,
    temperature = req.temperature,
    top_p = req.top_p,
    max_output_tokens = req.max_tokens,
    text = text_format(req.response_format),
    stream = req.stream or nil,
  }
  if req.tools then
    body.tools = tools_of(req.tools)
    body.tool_choice = tool_choice(req.tool_choice)
  end
  return common.request(cfg, req, "/responses", body, "Authorization", "Bearer ")
end

local function usage_of(u)
  return openai.usage(u, "input", "output")
end

local errors = common.errors(NAME, openai.describe, M.request_id_header)

M.classify = errors.classify

-- Why a response stopped short: incomplete_details.reason as a finish reason.
local function incomplete_finish(reason)
  if reason == "content_filter" then return "content_filter" end
  return "length"   -- max_output_tokens
end

--- A failed response (status "failed", or response.failed): its error, typed.
local function failed(raw, body)
  local e = get(raw, "error")
  local d = openai.describe({error = type(e) == "table" and e or {message = "the response failed"}})
  return common.http_error{provider = NAME, status = d.status or 500, body = body,
    message = d.message, code = d.code, kind = d.kind, retryable = d.retryable,
    where = "a failed response"}
end

-- The message items' texts and refusals, and the function calls.
local function read_output(output)
  local texts, refusals, calls = {}, {}, {}
  for _, item in ipairs(type(output) == "table" and output or {}) do
    local kind = get(item, "type")
    if kind == "message" then
      for _, part in ipairs(type(item.content) == "table" and item.content or {}) do
        if get(part, "type") == "output_text" then texts[#texts + 1] = str(part.text) or "" end
        if get(part, "type") == "refusal" then refusals[#refusals + 1] = str(part.refusal) end
      end
    elseif kind == "function_call" then
      local name = str(item.name)
      calls[#calls + 1] = {id = str(item.call_id), name = name,
                           args = common.tool_args(NAME, name, str(item.arguments))}
    end
  end
  return table.concat(texts), refusals, calls
end

--- parse(status, headers, body) → {text, texts, finish_reason, usage, model, id,
-- request_id, raw}; raises parse / content_filter / empty / the failure's error.
function M.parse(status, headers, body)
  -- a response object carries "error": null; an error body has no object
  local raw = common.decode_object(NAME, status, body, "a response object")
  if raw.object ~= "response" and type(raw.error) == "table" then
    raw = errors.answer(status, headers, body, "a response object")   -- raises its error
  end
  if raw.object ~= "response" or type(raw.output) ~= "table" then
    common.parse_error(NAME, status, body, "a response object with output items", true)
  end
  if raw.status == "failed" then error(failed(raw, body), 0) end
  local text, refusals, calls = read_output(raw.output)
  local finish = "stop"
  if raw.status == "incomplete" then finish = incomplete_finish(get(raw, "incomplete_details", "reason")) end
  if #refusals > 0 and text == "" then finish = "content_filter" end
  local r = {texts = {text}, finish_reason = finish, reason = refusals[1],
    usage = usage_of(raw.usage), model = str(raw.model), id = str(raw.id),
    request_id = common.request_id(headers, M.request_id_header), raw = raw}
  if #calls > 0 then return common.tool_result(r, calls) end
  return common.result(NAME, r)
end

-- The end of a stream: the final response's usage, model and finish.
local function ended(state, response, finish)
  state.complete = true
  state.usage = usage_of(get(response, "usage"))
  state.model = str(get(response, "model")) or state.model
  state.id = str(get(response, "id")) or state.id
  state.finish_reason = finish
end

--- stream_event(state, {event, data}) → text delta or nil, done
function M.stream_event(state, ev)
  local e = errors.event(ev.data, "a Responses API event")
  if e == nil then return nil, false end
  local kind = e.type or ev.event
  if kind == "response.output_text.delta" then
    local delta = str(e.delta)
    if delta then state.text_seen = true end
    return delta, false
  elseif kind == "response.function_call_arguments.delta" then
    local c = common.stream_call(state, (math.tointeger(e.output_index) or 0) + 1)
    local piece = str(e.delta)
    if piece then c.parts[#c.parts + 1] = piece end
  elseif kind == "response.output_item.added" and get(e, "item", "type") == "function_call" then
    local c = common.stream_call(state, (math.tointeger(e.output_index) or 0) + 1)
    c.id, c.name = str(e.item.call_id), str(e.item.name)
  elseif kind == "response.refusal.delta" or kind == "response.refusal.done" then
    local piece = str(e.delta) or str(e.refusal)
    if piece and kind == "response.refusal.done" then state.block_reason = piece
    elseif piece then state.block_reason = (state.block_reason or "") .. piece end
  elseif kind == "response.created" then
    state.id = str(get(e, "response", "id"))
    state.model = str(get(e, "response", "model"))
  elseif kind == "response.completed" then
    ended(state, e.response, "stop")
    return nil, true
  elseif kind == "response.incomplete" then
    ended(state, e.response, incomplete_finish(get(e, "response", "incomplete_details", "reason")))
    return nil, true
  elseif kind == "response.failed" then
    error(failed(e.response, ev.data), 0)
  elseif kind == "error" then
    error(failed({error = {message = e.message, code = e.code, type = e.code}}, ev.data), 0)
  end
  return nil, false
end

--- stream_end(state): raises `transport` (cause incomplete) when the stream
-- never reached response.completed, content_filter / empty when no text came.
function M.stream_end(state)
  errors.stream_end(state, "response.completed")
end

return M
