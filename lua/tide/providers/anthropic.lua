--- Anthropic Messages (POST {base}/v1/messages).
local common = require "tide.providers.common"
local media = require "tide.providers.media"

local get, str, int = common.get, common.str, common.int

local M = {
  name = "anthropic",
  takes_n = false,   -- one answer per request: lm:call{n = 3} makes three calls
  request_id_header = "request-id",
}
local NAME = M.name

local API_VERSION = "2023-06-01"
local OWN_HEADERS = {["anthropic-version"] = API_VERSION}
local DEFAULT_MAX_TOKENS = 4096      -- the API requires max_tokens
local JSON_INSTRUCTION = "Respond with a single JSON object."

local FINISH = {
  end_turn = "stop", stop_sequence = "stop", max_tokens = "length",
  model_context_window_exceeded = "length", tool_use = "tool_calls",
  refusal = "content_filter",
}

local function finish_of(reason)
  return FINISH[reason] or "other"
end

-- Tool names must match ^[a-zA-Z0-9_-]{1,64}$.
local function tool_name(name)
  return (name or common.SCHEMA_NAME):gsub("[^%w_%-]", "_"):sub(1, 64)
end

--- check(req): a request of system messages only cannot go out (the system
-- prompt is apart from the turns here); raised in the caller's task.
function M.check(req)
  common.require_turn(req.messages, NAME)
end

-- ---- tools ----------------------------------------------------------------------------

-- A provider-neutral message → its role and content blocks: tool calls are
-- tool_use blocks of the assistant, a tool's result a tool_result block of the user.
local function blocks_of(m)
  if m.role == "tool" then
    return "user", {{type = "tool_result", tool_use_id = m.tool_call_id, content = m.content}}
  end
  local blocks = {}
  if type(m.content) == "table" then
    blocks = media.anthropic({m.content})
  elseif m.content and m.content ~= "" then
    blocks[1] = {type = "text", text = m.content}
  end
  for _, c in ipairs(m.tool_calls or {}) do
    blocks[#blocks + 1] = {type = "tool_use", id = c.id, name = c.name, input = c.args or {}}
  end
  return m.role, blocks
end

local function tools_of(tools)
  local out = {}
  for i, t in ipairs(tools) do
    out[i] = {name = t.name, description = t.description, input_schema = common.schema(t.parameters)}
  end
  return out
end

local CHOICES = {auto = {type = "auto"}, required = {type = "any"}, none = {type = "none"}}

local function tool_choice(choice)
  if choice == nil then return nil end
  return CHOICES[choice] or {type = "tool", name = choice}
end

--- The Messages API body's messages and system of a request with tool calls
-- or results in its messages.
local function tool_messages(req)
  local system, turns = common.block_turns(req.messages, NAME, blocks_of)
  local messages = {}
  for i, t in ipairs(turns) do messages[i] = {role = t.role, content = t.blocks} end
  return system, messages
end

--- build(cfg, req) → {url, headers, body}
-- A JSON schema becomes a forced tool whose input is the answer: the Messages
-- API has no response_format of its own.
function M.build(cfg, req)
  common.require_messages(req, NAME)
  local system, messages
  if req.tool_messages then
    system, messages = tool_messages(req)
  else
    local turns
    system, turns = common.turns(req.messages, NAME)
    messages = {}
    for i, t in ipairs(turns) do
      messages[i] = {role = t.role, content = media.has_parts(t.texts) and media.anthropic(t.texts)
                       or table.concat(t.texts, "\n\n")}
    end
  end
  local rf = req.response_format or {}
  if rf.type == "json_object" then system[#system + 1] = JSON_INSTRUCTION end
  local body = {
    model = cfg.model,
    messages = messages,
    system = #system > 0 and table.concat(system, "\n\n") or nil,
    max_tokens = req.max_tokens or DEFAULT_MAX_TOKENS,
    temperature = req.temperature,
    top_p = req.top_p,
    stop_sequences = common.list(req.stop),
    stream = req.stream or nil,
  }
  if req.tools then
    body.tools = tools_of(req.tools)
    body.tool_choice = tool_choice(req.tool_choice)
  elseif rf.type == "json_schema" then
    local name = tool_name(rf.name)
    body.tools = {{name = name, description = "Respond with JSON",
                   input_schema = common.schema(rf.schema)}}
    body.tool_choice = {type = "tool", name = name}
  end
  return common.request(cfg, req, "/v1/messages", body, "x-api-key", nil, OWN_HEADERS)
end

-- Input tokens billed: cache writes and reads are counted apart from input_tokens.
-- nil when the usage says nothing about input (a stream's later events).
local function input_of(u)
  local x = get(u, "input_tokens")
  if x == nil or type(x) == "userdata" then return nil end
  return int(x) + int(u.cache_creation_input_tokens) + int(u.cache_read_input_tokens)
end

-- Cache reads are part of the input; thinking is billed as output and not
-- counted apart, so there is no reasoning count.
local function usage_of(u)
  return common.usage(input_of(u), get(u, "output_tokens"), nil, get(u, "cache_read_input_tokens"))
end

-- The status an error payload stands for when it has none (a stream event).
local STATUS_OF = {
  invalid_request_error = 400, authentication_error = 401, permission_error = 403,
  not_found_error = 404, request_too_large = 413, rate_limit_error = 429,
  api_error = 500, timeout_error = 504, overloaded_error = 529,
}

-- {"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}
local function describe(raw)
  local code = str(get(raw, "error", "type"))
  return {message = str(get(raw, "error", "message")), code = code, status = STATUS_OF[code],
          request_id = get(raw, "request_id")}
end

local errors = common.errors(NAME, describe, M.request_id_header)

--- classify(status, headers, body) → error object, for a non-2xx answer.
M.classify = errors.classify

--- parse(status, headers, body) → {text, texts, finish_reason, usage, model, raw}
-- Text blocks are joined.  A request that offered tools (req.tools) gets its
-- tool_use blocks as r.tool_calls; else, with no text, a tool_use block is our
-- forced JSON tool and its input is the answer.
function M.parse(status, headers, body, req)
  local raw = errors.answer(status, headers, body, "a Messages API JSON object")
  if type(raw.content) ~= "table" then
    common.parse_error(NAME, status, body, "a message with a content list", true)
  end
  local texts, tool_input, calls = {}, nil, {}
  local offered = type(req) == "table" and req.tools ~= nil
  for _, block in ipairs(raw.content) do
    if get(block, "type") == "text" then
      texts[#texts + 1] = str(block.text)
    elseif get(block, "type") == "tool_use" and type(block.input) == "table" then
      tool_input = tool_input or block.input
      calls[#calls + 1] = {id = str(block.id), name = str(block.name), args = block.input}
    end
  end
  local text = table.concat(texts)
  local finish = finish_of(raw.stop_reason)
  if offered and #calls > 0 then
    return common.tool_result({texts = {text}, usage = usage_of(raw.usage), model = str(raw.model),
      id = str(raw.id), request_id = common.request_id(headers, M.request_id_header), raw = raw},
      calls)
  end
  if text == "" and tool_input then
    text = common.encode(tool_input)
    if finish == "tool_calls" then finish = "stop" end
  end
  return common.result(NAME, {texts = {text}, finish_reason = finish, reason = str(raw.stop_reason),
    usage = usage_of(raw.usage), model = str(raw.model), id = str(raw.id),
    request_id = common.request_id(headers, M.request_id_header), raw = raw})
end

-- One handler per event type: each returns the text delta, if any.
local ON = {}

function ON.message_start(state, d)
  local msg = get(d, "message")
  state.model = str(get(msg, "model")) or state.model
  state.id = str(get(msg, "id")) or state.id
  state.input = input_of(get(msg, "usage")) or state.input
  state.cached = get(msg, "usage", "cache_read_input_tokens") or state.cached
  state.usage = common.usage(state.input, get(msg, "usage", "output_tokens"), nil, state.cached)
end

function ON.content_block_start(state, d)
  local block = get(d, "content_block")
  if get(block, "type") == "tool_use" then
    if state.tools then   -- the request offered tools: a call, assembled by its index
      local c = common.stream_call(state, (math.tointeger(get(d, "index")) or 0) + 1)
      c.id, c.name = str(block.id), str(block.name)
      return nil
    end
    -- only a tool called before any text is the JSON answer (see parse)
    state.json_tool = not state.text_seen
  end
  return get(block, "type") == "text" and str(block.text) or nil
end

function ON.content_block_delta(state, d)
  local delta = get(d, "delta")
  local kind = get(delta, "type")
  if kind == "text_delta" then return str(delta.text) end
  if kind == "input_json_delta" and state.tools then
    local c = state.calls and state.calls[(math.tointeger(get(d, "index")) or 0) + 1]
    local piece = str(delta.partial_json)
    if c and piece then c.parts[#c.parts + 1] = piece end
    return nil
  end
  if kind == "input_json_delta" and state.json_tool then return str(delta.partial_json) end
  return nil     -- thinking, signatures, citations: not answer text
end

function ON.message_delta(state, d)
  local reason = get(d, "delta", "stop_reason")
  if type(reason) == "string" then
    state.complete = true   -- the answer is whole; message_stop only closes the stream
    state.finish_reason = finish_of(reason)
    if reason == "tool_use" and state.json_tool then state.finish_reason = "stop" end
    if reason == "refusal" then state.block_reason = reason end
  end
  -- output_tokens here is the running total; newer servers repeat input too
  local u = get(d, "usage")
  if type(u) == "table" then
    state.input = input_of(u) or state.input
    state.cached = u.cache_read_input_tokens or state.cached
    state.usage = common.usage(state.input, u.output_tokens, nil, state.cached)
  end
end

--- stream_event(state, {event, data}) → text_delta or nil, done
function M.stream_event(state, ev)
  local d = errors.event(ev.data, "a Messages stream event")   -- raises `event: error`
  if d == nil then return nil, false end
  local kind = ev.event or d.type
  if kind == "message_stop" then
    state.complete = true
    return nil, true
  end
  local on = ON[kind]
  local text = on and on(state, d)
  if text then state.text_seen = true end
  return text, false
end

--- stream_end(state): at the end of a stream, raises `transport` (cause
-- `incomplete`) when it was cut before message_delta's stop_reason or
-- message_stop, content_filter / empty when no text arrived.
function M.stream_end(state)
  errors.stream_end(state, "a stop_reason or message_stop")
end

return M
