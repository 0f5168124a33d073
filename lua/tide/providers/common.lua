--- What the three wire formats share: JSON in and out, integer counts, request
-- shaping helpers, Retry-After and retryDelay parsing, and the typed errors that
-- every provider raises or returns.
--
-- Errors come from tide.core, not from `tide`: the LM object is loaded by
-- tide/init.lua, and requiring "tide" from here would make a require loop.
local core = require "tide.core"
local json = require "tide.json"
local cjson = require "cjson"
local check = require "tide.check"

local M = {}

local ERROR_BODY_MAX = 2000   -- bytes of a raw body kept on an error object
local SNIPPET_MAX = 200       -- bytes of a body quoted in an error message

---------------------------------------------------------------------------
-- numbers

-- Counts above 2^53 are not exact as floats; no answer spends that many tokens.
local MAX_COUNT = 2^53

--- A JSON token count as a Lua integer (tide.json decodes one as an integer;
-- an integral float is taken too).  Absent or null counts as 0.  Anything else
-- that is not a finite, non-negative integer (1e999, NaN, -1e20, 12.5, "12") is
-- NaN, which stays NaN through the sums a provider makes of several fields:
-- usage() then drops it.
function M.int(x)
  if x == nil or type(x) == "userdata" then return 0 end   -- absent, or JSON null
  if type(x) == "number" and x >= 0 and x <= MAX_COUNT and x == math.floor(x) then
    return math.tointeger(x)
  end
  return 0 / 0
end

-- What a dropped count is noted as.
local function dropped(note, field)
  return (note and note .. ", " or "the server's token counts that were not finite, "
    .. "non-negative integers were counted as 0: ") .. field
end

--- The normalised usage table; total defaults to input + output.  A count the
-- server got wrong is counted as 0 and named in usage.note: an infinite or
-- negative count would make the cost infinite or negative (and switch max_cost
-- off), and could not be written to the cache.  cached (input tokens read from
-- the provider's prompt cache) and reasoning (output tokens spent thinking) are
-- parts of input and output, set only when the server reports them.
function M.usage(input, output, total, cached, reasoning)
  input, output, total = M.int(input), M.int(output), M.int(total)
  local note
  if input ~= input then input, note = 0, dropped(note, "input") end
  if output ~= output then output, note = 0, dropped(note, "output") end
  if total ~= total then total, note = 0, dropped(note, "total") end
  if total == 0 then total = input + output end
  local u = {input = input, output = output, total = total, note = note}
  if type(cached) == "number" then
    cached = M.int(cached)
    if cached == cached then u.cached = cached else u.note = dropped(u.note, "cached") end
  end
  if type(reasoning) == "number" then
    reasoning = M.int(reasoning)
    if reasoning == reasoning then u.reasoning = reasoning else u.note = dropped(u.note, "reasoning") end
  end
  return u
end

--- t[k1][k2]...: nil as soon as a step is not a table (absent, or JSON null,
-- which lua-cjson decodes as a userdata).
-- Fixed arity, up to three steps: select() over varargs costs more than the
-- lookups, on every answer read (`make bench` shows an LM call's Lua time).
function M.get(t, k1, k2, k3)
  if type(t) ~= "table" then return nil end
  t = t[k1]
  if k2 == nil then return t end
  if type(t) ~= "table" then return nil end
  t = t[k2]
  if k3 == nil then return t end
  if type(t) ~= "table" then return nil end
  return t[k3]
end

--- v when it is a non-empty string, else nil.
function M.str(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

--- An HTTP error status written in a payload (a number or a numeric
-- string), or nil.
function M.error_status(x)
  local n = math.tointeger(tonumber(x or ""))
  if n and n >= 400 and n <= 599 then return n end
  return nil
end

---------------------------------------------------------------------------
-- request shaping

--- `stop` as a list (a string is one sequence), or nil when there is none: an
-- empty Lua table would encode as `{}`, which no API takes for a list.
function M.list(x)
  if x == nil then return nil end
  if type(x) == "string" then return {x} end
  if type(x) == "table" and #x > 0 then return x end
  return nil
end

-- The default name for a JSON schema response format: OpenAI requires one and
-- Anthropic names the forced tool after it.
M.SCHEMA_NAME = "response"

-- JSON-schema keywords whose value is a list.  lua-cjson 2.1 has no
-- empty_array, so an empty one would go out as `{}` and be rejected: drop it.
local LIST_KEYWORDS = {required = true, enum = true, anyOf = true, oneOf = true,
                       allOf = true, prefixItems = true, examples = true}

--- A copy of a JSON schema with empty list-valued keywords removed.
function M.schema(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do
    if not (LIST_KEYWORDS[k] and type(v) == "table" and next(v) == nil) then
      out[k] = M.schema(v)
    end
  end
  return out
end

local function is_map(t)
  return type(t) == "table" and next(t) ~= nil and #t == 0
end

--- Merges src into dst: nested objects merge key by key (so extra
-- `generationConfig.thinkingConfig` keeps our `temperature`), anything else
-- replaces.
function M.merge(dst, src)
  for k, v in pairs(src or {}) do
    if is_map(v) and is_map(dst[k]) then
      M.merge(dst[k], v)
    else
      dst[k] = v
    end
  end
  return dst
end

--- Request headers: ours, then the caller's on top.  Header names are case
-- insensitive, so a caller's "content-type" replaces our "Content-Type"
-- instead of sending both.
function M.headers(base, extra)
  local out = {}
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(extra or {}) do
    for have in pairs(out) do
      if have:lower() == k:lower() then out[have] = nil end
    end
    out[k] = v
  end
  return out
end

--- Every request needs at least one message (misuse, raised at the caller's line).
function M.require_messages(req, provider)
  if type(req.messages) ~= "table" or #req.messages == 0 then
    check.misuse("tide.LM: a request to " .. provider .. " needs at least one message")
  end
end

--- A wire format with the system prompt apart (Anthropic, Gemini) needs a turn
-- besides it: misuse, raised at the caller's line.
function M.require_turn(messages, provider)
  for _, m in ipairs(messages) do
    if m.role ~= "system" then return end
  end
  check.misuse("tide.LM: " .. provider .. " needs a user message besides the system prompt")
end

--- Splits messages into the system texts and the conversation turns, merging
-- consecutive messages of the same role (Anthropic rejects them; Gemini takes
-- them but they mean nothing more than one turn).  A turn is
-- {role = "user"|"assistant", texts = {...}}.
function M.turns(messages, provider)
  local system, turns = {}, {}
  for _, m in ipairs(messages) do
    if m.role == "system" then
      system[#system + 1] = m.content
    else
      local last = turns[#turns]
      if last and last.role == m.role then
        last.texts[#last.texts + 1] = m.content
      else
        turns[#turns + 1] = {role = m.role, texts = {m.content}}
      end
    end
  end
  if #turns == 0 then M.require_turn(messages, provider) end
  return system, turns
end

M.encode = json.encode

--- s percent-encoded for a URL's path or query: all but RFC 3986's unreserved
-- characters (a model or deployment name in the path, a version in the query).
function M.percent(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- cfg → path → {url, headers}: the same for every call of an LM, so made once.
-- The headers table is shared by those calls and only ever read.
local heads = setmetatable({}, {__mode = "k"})

local function head(cfg, path, key_header, key_prefix, headers)
  local by_path = heads[cfg]
  if by_path == nil then
    by_path = {}
    heads[cfg] = by_path
  end
  local h = by_path[path]
  if h == nil then
    local ours = {}
    for k, v in pairs(headers or {}) do ours[k] = v end
    ours["Content-Type"] = "application/json"
    if cfg.api_key then ours[key_header] = (key_prefix or "") .. cfg.api_key end
    h = {url = cfg.base_url .. path, headers = M.headers(ours, cfg.headers)}
    by_path[path] = h
  end
  return h
end

--- What tide.request sends: body (with req.extra merged in) as JSON to
-- base_url .. path; the key, when there is one, in header key_header after
-- key_prefix; then the provider's own headers (constant per provider), then the
-- caller's.
function M.request(cfg, req, path, body, key_header, key_prefix, headers)
  M.merge(body, req.extra)
  local h = head(cfg, path, key_header, key_prefix, headers)
  return {url = h.url, headers = h.headers, body = M.encode(body)}
end

---------------------------------------------------------------------------
-- reading answers

local BOM = "\239\187\191"   -- UTF-8's byte-order mark, EF BB BF

--- The decoded JSON body, or nil when it is not JSON.  A leading byte-order
-- mark is not part of the JSON (RFC 8259 lets a reader ignore it).  Numbers
-- as tide.json gives them (integers as integers), or all floats with `floats`.
function M.decode(body, floats)
  if type(body) ~= "string" then return nil end
  if body:byte(1) == 0xEF and body:sub(1, 3) == BOM then body = body:sub(4) end
  local ok, v = pcall(floats and cjson.decode or json.decode, body)
  if ok then return v end
  return nil
end

local function snippet(body)
  body = tostring(body or "")
  local s = body:sub(1, SNIPPET_MAX):gsub("%s+", " ")
  if #body > SNIPPET_MAX then s = s .. "..." end
  return s
end

--- Raises a `parse` error: `expected` says what the body should have been.
-- Invalid JSON is usually a truncated transfer, worth another try; valid JSON
-- of the wrong shape will not get better.
function M.parse_error(provider, status, body, expected, valid_json)
  error(core.error{
    kind = "parse", provider = provider, status = status,
    message = string.format("%s: expected %s, got: %s", provider, expected,
      body == "" and "an empty body" or snippet(body)),
    body = tostring(body or ""):sub(1, ERROR_BODY_MAX),
    retryable = not valid_json,
  }, 0)
end

--- Decodes a 2xx body that must be a JSON object, or raises `parse`.
function M.decode_object(provider, status, body, expected, floats)
  local v = M.decode(body, floats)
  if type(v) ~= "table" then M.parse_error(provider, status, body, expected, v ~= nil) end
  return v
end

--- The decoded JSON of one stream event, nil for empty data (a keep-alive);
-- raises `parse` when it is not a JSON object.  An event is read for its text,
-- counts and ids and then dropped (a stream result has no raw), so it is
-- cjson's plain decode, numbers as floats: tide.json's integers cost ~3.7 µs
-- more on each event of a typical OpenAI stream, nearly three times cjson's.
function M.decode_event(provider, data, expected)
  if data == nil or data == "" then return nil end
  return M.decode_object(provider, nil, data, expected, true)
end

--- Raises `content_filter`: the provider blocked the prompt or the answer and
-- gave no text.
function M.blocked(provider, reason, raw)
  error(core.error{
    kind = "content_filter", provider = provider, reason = reason, raw = raw,
    finish_reason = "content_filter", retryable = false,
    message = string.format("%s blocked the request or its answer (%s)", provider, reason),
  }, 0)
end

--- Raises `empty`: a 2xx answer with no text in it.
function M.empty(provider, finish_reason, raw)
  error(core.error{
    kind = "empty", provider = provider, finish_reason = finish_reason, raw = raw,
    retryable = false,
    message = string.format("%s answered with no text (finish reason: %s)", provider,
      finish_reason),
  }, 0)
end

--- The text a finished parse returns: never an empty string.  With no text,
-- a content filter (reason: what the provider said) raises `content_filter`,
-- anything else `empty`.
function M.require_text(provider, text, finish_reason, reason, raw)
  if type(text) == "string" and text ~= "" then return text end
  if finish_reason == "content_filter" then M.blocked(provider, reason or "content_filter", raw) end
  M.empty(provider, finish_reason, raw)
end

--- A parse's result: r = {texts (one per choice), finish_reason, reason (what
-- blocked it, if it was), usage, model, raw}; `text` is the first choice's,
-- never empty.
function M.result(provider, r)
  r.text = M.require_text(provider, r.texts[1], r.finish_reason, r.reason, r.raw)
  r.reason = nil
  return r
end

--- The end of a stream (its end marker, or EOF).  A stream that never said it
-- was complete (stream_event sets state.complete at the provider's end marker,
-- `marker`) was cut: a `transport` error with cause `incomplete`, never a
-- success, even when the connection closed cleanly between two events.  A
-- complete one raises what parse would have raised when no text arrived
-- (stream_event sets state.text_seen).
function M.stream_end(provider, state, marker)
  if not state.complete then
    error(core.error{
      kind = "transport", cause = "incomplete", provider = provider, retryable = true,
      message = string.format("the %s stream ended before %s: the server or a proxy cut it short",
        provider, marker),
    }, 0)
  end
  if state.text_seen or state.calls then return end   -- tool calls are an answer too
  local finish = state.block_reason and "content_filter" or state.finish_reason or "other"
  M.require_text(provider, nil, finish, state.block_reason)
end

---------------------------------------------------------------------------
-- delays

local MONTHS = {jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12}

-- Days since 1970-01-01 of a proleptic Gregorian date.  Arithmetic rather than
-- os.time, which would read the date as local time.
local function days_since_epoch(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12                      -- March is 0
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an HTTP date (IMF-fixdate, RFC 850 or asctime,
-- all in GMT), or nil.
function M.http_date(s)
  local d, mon, y, hh, mm, ss = s:match("(%d%d?)[%s%-](%a%a%a)[%s%-](%d+)%s+(%d%d):(%d%d):(%d%d)")
  if not d then
    mon, d, hh, mm, ss, y = s:match("%a+%s+(%a%a%a)%s+(%d%d?)%s+(%d%d):(%d%d):(%d%d)%s+(%d%d%d%d)")
  end
  local month = mon and MONTHS[mon:lower()]
  if not month then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y >= 70 and 1900 or 2000) end
  return days_since_epoch(y, month, tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

--- Seconds to wait from the response headers (lower-cased names):
-- `retry-after-ms`, else `retry-after` as seconds or an HTTP date.  Never
-- negative; nil when the server said nothing usable.  `now` is for specs.
function M.retry_after(headers, now)
  if type(headers) ~= "table" then return nil end
  local ms = tonumber(headers["retry-after-ms"] or "")
  if ms then return math.max(ms / 1000, 0) end
  local v = headers["retry-after"]
  if type(v) ~= "string" then return nil end
  local secs = tonumber(v)
  if secs then return math.max(secs, 0) end
  local at = M.http_date(v)
  if at then return math.max(at - (now or os.time()), 0) end
  return nil
end

--- The request id a server put in header `name` (lower case), or nil.
function M.request_id(headers, name)
  if name == nil or type(headers) ~= "table" then return nil end
  return M.str(headers[name])
end

--- Seconds in a google.protobuf.Duration as JSON ("2s", "1.5s", "0.250s"), or nil.
function M.duration(s)
  if type(s) ~= "string" then return nil end
  local n = tonumber(s:match("^%s*(%d*%.?%d+)s%s*$") or "")
  return n
end

---------------------------------------------------------------------------
-- error statuses

local KIND_BY_STATUS = {
  [401] = "auth", [403] = "auth", [404] = "not_found",
  [408] = "timeout", [409] = "server", [429] = "rate_limit", [529] = "server",
}

local RETRYABLE = {rate_limit = true, server = true, timeout = true}

--- The error kind of a non-2xx status.
function M.kind_for_status(status)
  local kind = KIND_BY_STATUS[status]
  if kind == nil then
    kind = (type(status) == "number" and status >= 500) and "server" or "bad_request"
  end
  return kind
end

-- Phrases providers and OpenAI-compatible servers use when the prompt does not
-- fit: OpenAI, vLLM, llama.cpp, Anthropic, Gemini.
local CONTEXT_PHRASES = {
  "context_length_exceeded", "maximum context length", "context window",
  "context size", "context length", "prompt is too long",
  "exceeds the maximum number of tokens", "input token count",
}

--- True when a 4xx error's message or code says the context is too long.
function M.context_overflow(status, message, code)
  if status ~= 400 and status ~= 413 and status ~= 422 then return false end
  local text = (tostring(message or "") .. " " .. tostring(code or "")):lower()
  for _, phrase in ipairs(CONTEXT_PHRASES) do
    if text:find(phrase, 1, true) then return true end
  end
  return false
end

--- The typed error of a failed answer (returned, not raised).
-- e = {provider, status, headers, body, message, code, and optionally kind,
--      retryable, retry_after (when the headers give none), where (what to
--      blame in the message, "HTTP <status>" by default)}
function M.http_error(e)
  local status = e.status
  local kind = e.kind
  if not kind then
    kind = M.context_overflow(status, e.message, e.code) and "context_window"
      or M.kind_for_status(status)
  end
  local message = e.message
  if type(message) ~= "string" or message == "" then
    message = (e.body and e.body ~= "") and snippet(e.body) or "no error message"
  end
  local retryable = RETRYABLE[kind] or false
  if e.retryable ~= nil then retryable = e.retryable end
  -- the header first; a delay in the body (Gemini's RetryInfo) otherwise
  local retry_after = M.retry_after(e.headers)
  if retry_after == nil then retry_after = e.retry_after end
  return core.error{
    kind = kind,
    message = string.format("%s (%s from %s)", message, e.where or ("HTTP " .. tostring(status)),
      e.provider),
    status = status,
    provider = e.provider,
    code = e.code,
    retryable = retryable,
    retry_after = retry_after,
    body = tostring(e.body or ""):sub(1, ERROR_BODY_MAX),
    request_id = e.request_id,
  }
end

--- The error side of a provider, from describe(raw) → {message, code, status,
-- kind, retryable, retry_after}: what its error payload says (raw is any
-- decoded JSON, or nil).  `status` is the HTTP status the payload stands for,
-- used where there is no real one: an error event in a stream, an error body
-- under a 2xx.  d.request_id is the request id the payload quotes; the header
-- `id_header` (the provider's request id header, if it has one) comes first.
-- Returns {classify, answer, event, stream_end}.
function M.errors(provider, describe, id_header)
  local R = {}

  local function error_of(status, headers, body, raw, where)
    local d = describe(raw)
    if where then status = d.status or 500 end
    return M.http_error{
      provider = provider, status = status, headers = headers, body = body, where = where,
      message = d.message, code = d.code, kind = d.kind, retryable = d.retryable,
      retry_after = d.retry_after,
      request_id = M.request_id(headers, id_header) or M.str(d.request_id),
    }
  end

  --- classify(status, headers, body) → error object, for a non-2xx answer.
  function R.classify(status, headers, body)
    return error_of(status, headers, body, M.decode(body))
  end

  --- The decoded JSON object of a 2xx answer; raises `parse` when it is not
  -- one, and the payload's own error when it is an error body.
  function R.answer(status, headers, body, expected)
    local raw = M.decode_object(provider, status, body, expected)
    if raw.error ~= nil then
      error(error_of(status, headers, body, raw, "error body under HTTP " .. tostring(status)), 0)
    end
    return raw
  end

  --- The decoded JSON object of a stream event (nil for a keep-alive); raises
  -- `parse` when it is not one, and the event's error when it carries one.
  function R.event(data, expected)
    local raw = M.decode_event(provider, data, expected)
    if raw and raw.error ~= nil then error(error_of(nil, nil, data, raw, "stream error event"), 0) end
    return raw
  end

  --- stream_end(state, marker): at the end of a stream, raises `transport`
  -- (cause `incomplete`) when it did not reach `marker`, its end, and
  -- content_filter or empty when no text arrived.
  function R.stream_end(state, marker)
    M.stream_end(provider, state, marker)
  end

  return R
end

-- ---- tools -----------------------------------------------------------------------

--- Splits messages with tool calls and results into the system texts and turns
-- of provider blocks: blocks_of(m) → role, {block...}; consecutive turns of the
-- same role are merged (a turn's several tool results go back in one message).
function M.block_turns(messages, provider, blocks_of)
  local system, turns = {}, {}
  for _, m in ipairs(messages) do
    if m.role == "system" then
      system[#system + 1] = m.content
    else
      local role, blocks = blocks_of(m)
      local last = turns[#turns]
      if last and last.role == role then
        for _, b in ipairs(blocks) do last.blocks[#last.blocks + 1] = b end
      else
        turns[#turns + 1] = {role = role, blocks = blocks}
      end
    end
  end
  if #turns == 0 then M.require_turn(messages, provider) end
  return system, turns
end

--- The name of the tool each call id was made to, from the assistant messages'
-- tool_calls (Gemini's functionResponse names the function, not the call).
function M.tool_names(messages)
  local names = {}
  for _, m in ipairs(messages) do
    for _, c in ipairs(m.tool_calls or {}) do names[c.id] = c.name end
  end
  return names
end

--- A tool call's arguments JSON text → a table, or a `parse` error that carries
-- the raw text (a model's malformed arguments will not get better on a retry).
function M.tool_args(provider, name, text)
  if text == nil or text == "" then return {} end
  local ok, v = pcall(json.decode, text)
  if ok and type(v) == "table" then return v end
  error(core.error{
    kind = "parse", provider = provider, retryable = false, tool = name,
    raw_text = tostring(text):sub(1, ERROR_BODY_MAX),
    message = string.format("%s: the arguments of a call to tool %s are not a JSON object: %s",
      provider, tostring(name), snippet(tostring(text))),
  }, 0)
end

--- The call a stream is assembling at position k (1-based): {id, name, parts
-- (its arguments' JSON fragments) or args (whole)}.
function M.stream_call(state, k)
  local calls = state.calls
  if calls == nil then
    calls = {}
    state.calls = calls
  end
  local c = calls[k]
  if c == nil then
    c = {parts = {}}
    calls[k] = c
  end
  return c
end

--- A finished stream's calls → {{id, name, args}}, the fragments joined and
-- decoded (malformed: `parse`, as for a whole answer).
function M.stream_calls(provider, state)
  local order = {}
  for k in pairs(state.calls) do order[#order + 1] = k end
  table.sort(order)   -- by index, whatever the holes in a server's numbering
  local out = {}
  for _, k in ipairs(order) do
    local c = state.calls[k]
    local args = c.args or M.tool_args(provider, c.name, table.concat(c.parts))
    out[#out + 1] = {id = c.id, name = c.name, args = args}
  end
  return out
end

--- A parse's result with tool calls: the text may be empty (a call is an
-- answer), the finish reason is tool_calls.
function M.tool_result(r, calls)
  r.tool_calls = calls
  r.text = r.texts[1] or ""
  r.finish_reason = "tool_calls"
  r.reason = nil
  return r
end

return M
