--- Google Gemini API (POST {base}/v1beta/models/{model}:generateContent).
local common = require "tide.providers.common"
local media = require "tide.providers.media"

local get, str, int = common.get, common.str, common.int

local M = {
  name = "gemini",
  takes_n = true,    -- n answers in one request (candidateCount)
  -- no request id header: the Gemini API sends none (responseId is the answer's id)
}
local NAME = M.name

local BLOCKED = "content_filter"
local FINISH = {
  STOP = "stop", MAX_TOKENS = "length",
  SAFETY = BLOCKED, RECITATION = BLOCKED, BLOCKLIST = BLOCKED,
  PROHIBITED_CONTENT = BLOCKED, SPII = BLOCKED, IMAGE_SAFETY = BLOCKED,
}

local function finish_of(reason)
  return FINISH[reason] or "other"
end

local function parts_of(texts)
  local parts = {}
  for i, t in ipairs(texts) do parts[i] = {text = t} end
  return parts
end

local function generation_config(req)
  local rf = req.response_format or {}
  local gc = {
    temperature = req.temperature,
    maxOutputTokens = req.max_tokens,
    topP = req.top_p,
    stopSequences = common.list(req.stop),
    candidateCount = req.n,
  }
  if rf.type == "json_object" or rf.type == "json_schema" then
    gc.responseMimeType = "application/json"
  end
  if rf.type == "json_schema" then gc.responseJsonSchema = common.schema(rf.schema) end
  if next(gc) == nil then return nil end
  return gc
end

--- check(req): a request of system messages only cannot go out (the system
-- prompt is apart from the turns here); raised in the caller's task.
function M.check(req)
  common.require_turn(req.messages, NAME)
end

-- ---- tools ----------------------------------------------------------------------------

-- A provider-neutral message → its role and parts: tool calls are functionCall
-- parts of the model, a tool's result a functionResponse part of the user (named
-- by the function its call went to: Gemini matches results by name and order).
local function parts_with_tools(m, names)
  if m.role == "tool" then
    return "user", {{functionResponse = {id = m.tool_call_id, name = names[m.tool_call_id] or m.name,
      response = {content = m.content}}}}
  end
  local parts = {}
  if type(m.content) == "table" then
    parts = media.gemini({m.content})
  elseif m.content and m.content ~= "" then
    parts[1] = {text = m.content}
  end
  for _, c in ipairs(m.tool_calls or {}) do
    parts[#parts + 1] = {functionCall = {name = c.name, args = c.args or {}}}
  end
  return m.role == "assistant" and "model" or m.role, parts
end

local function tools_of(tools)
  local decls = {}
  for i, t in ipairs(tools) do
    decls[i] = {name = t.name, description = t.description,
                parametersJsonSchema = common.schema(t.parameters)}
  end
  return {{functionDeclarations = decls}}
end

local MODES = {auto = "AUTO", required = "ANY", none = "NONE"}

local function tool_config(choice)
  if choice == nil then return nil end
  if MODES[choice] then return {functionCallingConfig = {mode = MODES[choice]}} end
  return {functionCallingConfig = {mode = "ANY", allowedFunctionNames = {choice}}}
end

local function tool_contents(req)
  local names = common.tool_names(req.messages)
  local system, turns = common.block_turns(req.messages, NAME, function(m)
    return parts_with_tools(m, names)
  end)
  local contents = {}
  for i, t in ipairs(turns) do contents[i] = {role = t.role, parts = t.blocks} end
  return system, contents
end

--- build(cfg, req) → {url, headers, body}
-- The key goes in a header, never in the URL, so it cannot leak into logs.
function M.build(cfg, req)
  common.require_messages(req, NAME)
  local system, contents
  if req.tool_messages then
    system, contents = tool_contents(req)
  else
    local turns
    system, turns = common.turns(req.messages, NAME)
    contents = {}
    for i, t in ipairs(turns) do
      contents[i] = {role = t.role == "assistant" and "model" or t.role,
                     parts = media.has_parts(t.texts) and media.gemini(t.texts) or parts_of(t.texts)}
    end
  end
  local body = {
    contents = contents,
    systemInstruction = #system > 0 and {parts = parts_of(system)} or nil,
    generationConfig = generation_config(req),
  }
  if req.tools then
    body.tools = tools_of(req.tools)
    body.toolConfig = tool_config(req.tool_choice)
  end
  local model = cfg.model:gsub("^models/", "")
  local method = req.stream and ":streamGenerateContent?alt=sse" or ":generateContent"
  return common.request(cfg, req, "/v1beta/models/" .. model .. method, body, "x-goog-api-key")
end

-- Thinking tokens are billed as output (reasoning); tool-use prompt tokens as
-- input; cached content tokens are part of promptTokenCount.
local function usage_of(m)
  return common.usage(int(get(m, "promptTokenCount")) + int(get(m, "toolUsePromptTokenCount")),
    int(get(m, "candidatesTokenCount")) + int(get(m, "thoughtsTokenCount")),
    get(m, "totalTokenCount"), get(m, "cachedContentTokenCount"), get(m, "thoughtsTokenCount"))
end

-- The answer text of a candidate: its text parts, without thought summaries.
local function text_of(candidate)
  local out = {}
  for _, part in ipairs(get(candidate, "content", "parts") or {}) do
    if type(part) == "table" and type(part.text) == "string" and not part.thought then
      out[#out + 1] = part.text
    end
  end
  return table.concat(out)
end

-- A candidate's functionCall parts → {{id, name, args}}.  Gemini gives calls no
-- id (newer models may): one is made from the position, for the results to name.
local function calls_of(candidate)
  local calls = {}
  for _, part in ipairs(get(candidate, "content", "parts") or {}) do
    local fc = type(part) == "table" and part.functionCall
    if type(fc) == "table" then
      local name = str(fc.name)
      local args = fc.args
      if type(args) == "string" then args = common.tool_args(NAME, name, args) end
      if type(args) ~= "table" then args = {} end
      calls[#calls + 1] = {id = str(fc.id) or string.format("call_%d_%s", #calls + 1, tostring(name)),
                           name = name, args = args}
    end
  end
  return calls
end

-- google.rpc.RetryInfo in error.details: how long the quota needs.
local function retry_info(err)
  for _, d in ipairs(get(err, "details") or {}) do
    local t = str(get(d, "@type"))
    if t and t:sub(-#"google.rpc.RetryInfo") == "google.rpc.RetryInfo" then
      return common.duration(d.retryDelay)
    end
  end
  return nil
end

-- An invalid key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID.
local function bad_key(err)
  for _, d in ipairs(get(err, "details") or {}) do
    if get(d, "reason") == "API_KEY_INVALID" then return true end
  end
  return (str(get(err, "message")) or ""):find("API key not valid", 1, true) ~= nil
end

-- The status an error payload stands for when it has no number of its own.
local STATUS_OF = {
  INVALID_ARGUMENT = 400, FAILED_PRECONDITION = 400, UNAUTHENTICATED = 401,
  PERMISSION_DENIED = 403, NOT_FOUND = 404, RESOURCE_EXHAUSTED = 429,
  INTERNAL = 500, UNAVAILABLE = 503, DEADLINE_EXCEEDED = 504,
}

-- {"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED",
-- "details": [...]}}, also inside the JSON array a non-SSE stream answers.
local function describe(raw)
  local err = get(raw, "error") or get(raw, 1, "error")
  local code = str(get(err, "status"))
  local kind
  if code == "RESOURCE_EXHAUSTED" then
    kind = "rate_limit"
  elseif bad_key(err) then
    kind = "auth"
  end
  return {
    message = str(get(err, "message")), code = code, kind = kind,
    status = common.error_status(get(err, "code")) or STATUS_OF[code],
    retry_after = retry_info(err),
  }
end

local errors = common.errors(NAME, describe)

--- classify(status, headers, body) → error object, for a non-2xx answer.
M.classify = errors.classify

--- parse(status, headers, body) → {text, texts, finish_reason, usage, model, raw}
function M.parse(status, headers, body)
  local raw = errors.answer(status, headers, body, "a GenerateContentResponse JSON object")
  local blocked = str(get(raw, "promptFeedback", "blockReason"))
  if blocked then common.blocked(NAME, blocked, raw) end
  local candidates = raw.candidates
  if type(get(candidates, 1)) ~= "table" then
    if type(raw.usageMetadata) ~= "table" then
      common.parse_error(NAME, status, body, "a response with candidates", true)
    end
    common.empty(NAME, "other", raw)   -- counted, but nothing came back
  end
  local texts = {}
  for i, c in ipairs(candidates) do texts[i] = text_of(c) end
  local reason = str(candidates[1].finishReason)
  local finish = finish_of(reason)
  local r = {texts = texts, finish_reason = finish, reason = reason,
    usage = usage_of(raw.usageMetadata), model = str(raw.modelVersion), id = str(raw.responseId),
    raw = raw}
  local calls = calls_of(candidates[1])
  if #calls > 0 then return common.tool_result(r, calls) end
  return common.result(NAME, r)
end

--- stream_event(state, {event, data}) → text_delta or nil, done
-- Every event is a whole GenerateContentResponse; there is no end marker, the
-- stream ends at EOF (done is always false).  It is complete once a candidate
-- has its finishReason (usage may follow in the same event).
function M.stream_event(state, ev)
  local d = errors.event(ev.data, "a GenerateContentResponse chunk")
  if d == nil then return nil, false end
  local blocked = str(get(d, "promptFeedback", "blockReason"))
  if blocked then common.blocked(NAME, blocked, d) end
  state.model = str(d.modelVersion) or state.model
  state.id = state.id or str(d.responseId)
  if type(d.usageMetadata) == "table" then state.usage = usage_of(d.usageMetadata) end
  local candidate = get(d, "candidates", 1)
  local reason = str(get(candidate, "finishReason"))
  if reason then
    state.complete = true
    state.finish_reason = finish_of(reason)
    if state.finish_reason == BLOCKED then state.block_reason = reason end
  end
  local calls = calls_of(candidate)
  for _, c in ipairs(calls) do
    local k = state.calls and #state.calls + 1 or 1
    local call = common.stream_call(state, k)
    call.id = c.id:match("^call_%d+_") and string.format("call_%d_%s", k, tostring(c.name)) or c.id
    call.name, call.args = c.name, c.args
  end
  local text = str(text_of(candidate))
  if text then state.text_seen = true end
  return text, false
end

--- stream_end(state): at EOF, raises `transport` (cause `incomplete`) when no
-- candidate had a finishReason, content_filter / empty when no text arrived.
function M.stream_end(state)
  errors.stream_end(state, "a candidate's finishReason")
end

return M
