--- tide.LM: the async LM call every other feature stands on.
--
--   local lm = tide.LM("openai/gpt-4o-mini", {max_parallel_requests = 64, num_retries = 5})
--   lm("Name three colours.")                       --> text
--   lm:call{messages = {...}, temperature = 0}      --> {text, finish_reason, usage, model, raw, ...}
--   for piece in lm:stream{messages = {...}} do io.write(piece) end
--
-- Providers (tide/providers/) know the wire formats; this file knows the rest:
-- the gate on parallel requests, rate buckets, retries (tide.retry, in C), the
-- cache, usage, cost and history.  The API key lives only in a private table, so
-- printing an LM, its history or its errors cannot show it.
local tide_core = require "tide.core"
local providers = require "tide.providers"
local cache_mod = require "tide.cache"
local history = require "tide.history"
local settings = require "tide.settings"
local sse = require "tide.sse"
local redact = require "tide.redact"

local M = {}

local LM = {}
LM.__index = LM
M.LM = LM

local private = setmetatable({}, {__mode = "k"})   -- lm → {provider, cfg (with key), gate, ...}

local shared = {cache = nil}   -- the default cache, made on first use

--- The cache every LM uses unless told otherwise (memory, and disk when a
-- directory can be found).  tide.configure{cache = ...} replaces it.
function M.default_cache()
  if shared.cache == nil then
    shared.cache = cache_mod.new{dir = cache_mod.default_dir()}
  end
  return shared.cache
end

function M.set_default_cache(c)
  shared.cache = c
end

local function check_number(opts, field, min)
  local v = opts[field]
  if v ~= nil and (type(v) ~= "number" or v < min) then
    error(string.format("tide.LM: opts.%s must be a number >= %s", field, min), 3)
  end
  return v
end

--- tide.LM(model, opts)
function M.new(model, opts)
  if type(model) ~= "string" then
    error("bad argument #1 to 'LM' (string expected, got " .. type(model) .. ")", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #2 to 'LM' (table expected, got " .. type(opts) .. ")", 2)
  end
  local provider, cfg = providers.resolve(model, opts)
  check_number(opts, "num_retries", 0)
  check_number(opts, "max_parallel_requests", 1)
  check_number(opts, "rpm", 0)
  check_number(opts, "tpm", 0)
  check_number(opts, "timeout", 0)
  check_number(opts, "max_cost", 0)
  check_number(opts, "deadline", 0)
  check_number(opts, "max_body", 1)
  local self = setmetatable({
    model = model,
    provider = cfg.provider,
    kwargs = {
      temperature = opts.temperature,
      max_tokens = opts.max_tokens,
      stop = opts.stop,
      top_p = opts.top_p,
      extra = opts.extra,
    },
    num_retries = opts.num_retries or 3,
    timeout = opts.timeout or 600,
    max_body = opts.max_body and math.floor(opts.max_body),   -- nil: the engine's 64 MiB
    cache = opts.cache ~= false,
    rollout_id = opts.rollout_id,
    price = opts.price,            -- {input = $ per 1M tokens, output = $ per 1M tokens}
    max_cost = opts.max_cost,
    history = {},
    history_limit = opts.history_limit or history.limit,
    usage = {input = 0, output = 0, total = 0, calls = 0, cache_hits = 0, cost = 0},
  }, LM)
  local p = {provider = provider, cfg = cfg, inflight = {}, deadline = opts.deadline}
  if opts.max_parallel_requests then
    p.gate = tide_core.semaphore(math.tointeger(opts.max_parallel_requests) or
      math.floor(opts.max_parallel_requests))
  end
  if opts.rpm and opts.rpm > 0 then
    p.rpm = tide_core.bucket(opts.rpm / 60, math.max(1, opts.rpm / 60))
  end
  if opts.tpm and opts.tpm > 0 then
    p.tpm = tide_core.bucket(opts.tpm / 60, math.max(1, opts.tpm / 60))
  end
  if type(opts.cache) == "table" then p.cache = opts.cache end
  private[self] = p
  return self
end

function LM:__tostring()
  return string.format("tide.LM(%q, %d calls, %d tokens)", self.model, self.usage.calls,
    self.usage.total)
end

-- ---- requests -------------------------------------------------------------

-- The sampling options a call takes, or else the LM's own.
local SAMPLING = {"temperature", "max_tokens", "stop", "top_p"}

--- One request, normalised: messages plus the sampling options, the LM's
-- defaults under the call's own.
local function normalise(self, req)   -- → the request, and the call's own timeout
  if type(req) == "string" then
    req = {messages = {{role = "user", content = req}}}
  elseif type(req) ~= "table" then
    error("tide.LM: a call takes a prompt string or a table, got " .. type(req), 3)
  elseif req[1] ~= nil and req.messages == nil then
    req = {messages = req}
  end
  local messages = req.messages
  if messages == nil and req.prompt ~= nil then
    messages = {{role = "user", content = req.prompt}}
  end
  if type(messages) ~= "table" or #messages == 0 then
    error("tide.LM: a call needs `messages` (a non-empty list) or `prompt`", 3)
  end
  for i, m in ipairs(messages) do
    if type(m) ~= "table" or type(m.role) ~= "string" or type(m.content) ~= "string" then
      error(string.format("tide.LM: messages[%d] must be {role = string, content = string}", i), 3)
    end
  end
  -- Only the fields that are set: an in-flight call keeps this table, and most
  -- calls set none of the sampling options.
  local norm = {messages = messages}
  local kw = self.kwargs
  for _, field in ipairs(SAMPLING) do
    local v = req[field]
    if v == nil then v = kw[field] end
    if v ~= nil then norm[field] = v end
  end
  if req.n ~= nil then norm.n = req.n end
  if req.response_format ~= nil then norm.response_format = req.response_format end
  local extra = kw.extra
  if req.extra then
    extra = {}
    for k, v in pairs(kw.extra or {}) do extra[k] = v end
    for k, v in pairs(req.extra) do extra[k] = v end
  end
  norm.extra = extra
  return norm, req.timeout
end

local function cache_key(self, norm, rollout_id)
  local cfg = private[self].cfg
  return cache_mod.key{
    provider = cfg.provider, model = cfg.model, base_url = cfg.base_url or "",
    request = norm, rollout_id = rollout_id or "",
  }
end

local function cost_of(self, usage)
  local price = self.price
  if not price or not usage then return 0 end
  return ((usage.input or 0) * (price.input or 0) + (usage.output or 0) * (price.output or 0)) / 1e6
end

local function estimate_tokens(norm)
  local chars = 0
  for _, m in ipairs(norm.messages) do chars = chars + #m.content end
  return math.ceil(chars / 4) + (norm.max_tokens or 0)
end

local function record(self, norm, started, result, err)
  local entry = {
    time = os.time(),
    model = self.model,
    messages = norm.messages,
    duration = tide_core.now() - started,
  }
  if result then
    entry.response = result.text
    entry.finish_reason = result.finish_reason
    entry.usage = result.usage
    -- a cache hit and a cost are marked only when there is one: an entry of a
    -- plain call then fits a table half the size, and history keeps a thousand
    if result.cached then entry.cached = true end
    if result.cost and result.cost > 0 then entry.cost = result.cost end
    history.account(self.usage, result.usage, result.cost, result.cached)
    history.account(history.usage, result.usage, result.cost, result.cached)
    -- a task's context may collect the usage of the calls made inside it (and its
    -- children): tide.Evaluate counts each example's tokens this way
    local sink = settings.get("usage_sink")
    if sink then history.account(sink, result.usage, result.cost, result.cached) end
  else
    entry.error = {kind = err.kind, message = err.message}
  end
  history.append(self.history, entry, self.history_limit)
  history.append(history.entries, entry)
end

--- A tide.request error (it has a curl_code) → the LM's vocabulary: timeout
-- stays timeout, the other transport kinds become `transport` with the cause
-- kept.  Anything else (a provider's error, a cancellation) is returned as it is.
local function lm_transport_error(self, err)
  if not tide_core.is_error(err) or err.curl_code == nil then return err end
  return tide_core.error{
    kind = err.kind == "timeout" and "timeout" or "transport", cause = err.kind,
    message = err.message, provider = self.provider, retryable = err.retryable,
    url = err.url, attempts = err.attempts,
  }
end

local function budget_check(self)
  if self.max_cost and self.usage.cost >= self.max_cost then
    error(tide_core.error{kind = "budget", message = string.format(
      "%s has spent $%.4f of its max_cost $%.4f: no new calls", self.model, self.usage.cost,
      self.max_cost)})
  end
end

--- Waits for the gate and the rate buckets; returns what to release.
local function admit(p, norm)
  if p.rpm then p.rpm:take(1) end
  if p.tpm then p.tpm:take(estimate_tokens(norm)) end
  if p.gate then return p.gate:acquire() end
  return nil
end

--- The LM's retry options, made once (and again if num_retries changes).
local function retry_opts(self, p)
  local tries = self.num_retries + 1
  local opts = p.retry_opts
  if opts == nil or opts.tries ~= tries then
    opts = {tries = tries, deadline = p.deadline}
    p.retry_opts = opts
  end
  return opts
end

--- The provider's request (url, headers, body) into the call's tide.request table.
local function fill(http, built)
  http.url, http.headers, http.body = built.url, built.headers, built.body
end

--- One attempt of a call: the gate and the buckets, HTTP, the provider's reading
-- of the answer.  `http` is the call's tide.request table; its url, headers and
-- body are filled in once admitted (a call queued at the gate holds no request
-- body) and kept for the retries, and it counts the attempts.  A plain function
-- with its state in arguments: running it allocates no closure per call.
-- Transport errors go to tide.retry as they are (marked retryable by the core)
-- and are put in the LM's words once the retries are over.
local function attempt(p, norm, http)
  http.attempts = http.attempts + 1
  local _ <close> = admit(p, norm)
  if not http.body then fill(http, p.provider.build(p.cfg, norm)) end
  local r = tide_core.request(http)
  if r.status >= 200 and r.status < 300 then
    return p.provider.parse(r.status, r.headers, r.body)
  end
  local err = p.provider.classify(r.status, r.headers, r.body)
  err.provider = p.cfg.provider   -- "groq", not the wire format's "openai"
  error(err, 0)
end

--- The request itself, retried: gate, buckets, HTTP, provider parsing.
-- → ok, result or error (pcall's results).
local function send(self, p, norm, timeout)
  if p.transport then return pcall(p.transport, norm) end
  local http = {attempts = 0, method = "POST", timeout = timeout or self.timeout,
                max_body = self.max_body, url = false, headers = false, body = false}
  -- With nothing to queue behind, the body is built here rather than in
  -- attempt(): a coroutine's stack keeps the size of the deepest point it
  -- reached, and JSON encoding two frames further down would double the stack
  -- every waiting call holds (2.5 KiB instead of 1.3).
  if not (p.gate or p.rpm or p.tpm) then fill(http, p.provider.build(p.cfg, norm)) end
  local ok, result = pcall(tide_core.retry, retry_opts(self, p), attempt, p, norm, http)
  if not ok then return false, lm_transport_error(self, result) end
  result.attempts = http.attempts
  return true, result
end

--- Waits for the in-flight task of a shared request → ok, result (or error).
local function await_shared(t)
  local okw, ok, result = pcall(t.wait, t)
  if not okw then return false, ok end   -- this waiter (or the task) was cancelled
  return ok, result
end

--- The end of a call: usage, cost, cache and history; raises the error of a
-- failed one (redacted: a server may quote the key back).
local function conclude(self, p, norm, started, ok, result, cache, key)
  if not ok then
    if type(result) == "table" then
      result = redact.value(result, {p.cfg.api_key})
      record(self, norm, started, nil, result)
    end
    error(result, 0)
  end
  result.cached = false
  result.cost = cost_of(self, result.usage)
  if cache then cache:put(key, result) end
  record(self, norm, started, result)
  return result
end

--- A served copy of an answer: no tokens spent on this call.
local function served(answer)
  return {text = answer.text, texts = answer.texts, finish_reason = answer.finish_reason,
    model = answer.model, usage = {input = 0, output = 0, total = 0}, cached = true, cost = 0}
end

--- A call through the cache: a hit, or the answer of the same request already in
-- flight, or a new request that later identical calls share.
local function call_cached(self, p, req, norm, timeout, cache, started)
  local key = cache_key(self, norm, type(req) == "table" and req.rollout_id or self.rollout_id)
  local hit = cache:get(key)
  if hit then
    local result = served(hit)
    record(self, norm, started, result)
    return result
  end
  local pending = p.inflight[key]
  if pending then   -- the same request is in flight: share its answer
    local ok, shared_result = await_shared(pending)
    if ok then
      local result = served(shared_result)
      record(self, norm, started, result)
      return result
    end
    if not (tide_core.is_error(shared_result, "cancelled")) then error(shared_result, 0) end
    -- the first caller was cancelled, not us: make the call ourselves
  end
  -- The shared task never fails: it returns send's (pcall's) results, so its
  -- outcome is never "an error nobody took" when its waiters are cancelled as it fails.
  local t = tide_core.spawn(send, self, p, norm, timeout)
  p.inflight[key] = t
  local ok, result = await_shared(t)
  if p.inflight[key] == t then p.inflight[key] = nil end
  return conclude(self, p, norm, started, ok, result, cache, key)
end

--- lm:call(req) → {text, finish_reason, usage = {input, output, total}, model, raw,
-- cached, cost, attempts}.  req: a prompt string, a list of messages, or
-- {messages | prompt, temperature, max_tokens, stop, top_p, n, response_format,
--  extra, timeout, cache = false, rollout_id}.  Raises typed errors.
function LM:call(req)
  local norm, timeout = normalise(self, req)
  budget_check(self)
  local p = private[self]
  local started = tide_core.now()
  local use_cache = self.cache
  if type(req) == "table" and req.cache ~= nil then use_cache = req.cache end
  local cache = use_cache and (p.cache or M.default_cache()) or nil
  if cache then return call_cached(self, p, req, norm, timeout, cache, started) end
  local ok, result = send(self, p, norm, timeout)
  return conclude(self, p, norm, started, ok, result)
end

--- lm(prompt_or_request) → the text of the answer.
function LM:__call(req)
  return self:call(req).text
end

-- ---- streaming --------------------------------------------------------------

--- Opens the stream (retried until the first byte), checking the HTTP status.
-- Transport errors reach tide.retry as the core raised them, as in attempt().
local function open_stream(self, p, built, timeout)
  return tide_core.retry(retry_opts(self, p), function()
    local s = tide_core.stream{url = built.url, method = "POST", headers = built.headers,
      body = built.body, timeout = timeout or self.timeout, max_body = self.max_body}
    if s.status >= 200 and s.status < 300 then return s end
    local body = {}
    for piece in s:chunks() do body[#body + 1] = piece end
    s:close()
    error(p.provider.classify(s.status, s.headers, table.concat(body)), 0)
  end)
end

--- for piece in lm:stream(req) do ... end — the answer's text as it arrives.
-- The second value is a table filled in when the stream ends: {text,
-- finish_reason, usage, model}.  Leaving the loop early closes the connection.
function LM:stream(req)
  local norm, timeout = normalise(self, req)
  norm.stream = true
  budget_check(self)
  local p = private[self]
  local started = tide_core.now()
  local final = {}
  if p.transport then   -- DummyLM: the whole answer as one piece
    local ok, result = send(self, p, norm)
    if not ok then error(result, 0) end
    local done = false
    for k, v in pairs(result) do final[k] = v end
    record(self, norm, started, result)
    return function()
      if done then return nil end
      done = true
      return result.text
    end, final
  end
  local built = p.provider.build(p.cfg, norm)
  local release = admit(p, norm)
  local ok, s = pcall(open_stream, self, p, built, timeout)
  if not ok then
    if release then release:release() end
    s = redact.value(lm_transport_error(self, s), {p.cfg.api_key})
    record(self, norm, started, nil, s)
    error(s, 0)
  end
  local parser, state, pieces, queue = sse.new(), {}, {}, {}
  local finished = false
  local fail
  local function finish()
    if finished then return end
    local ok_end, end_err = pcall(p.provider.stream_end, state)   -- no text at all is an error
    if not ok_end then fail(end_err) end
    finished = true
    s:close()
    if release then release:release(); release = nil end
    local result = {
      text = table.concat(pieces), finish_reason = state.finish_reason or "stop",
      usage = state.usage or {input = 0, output = 0, total = 0}, model = state.model or p.cfg.model,
      cached = false,
    }
    result.cost = cost_of(self, result.usage)
    for k, v in pairs(result) do final[k] = v end
    record(self, norm, started, result)
  end
  fail = function(err)
    err = redact.value(err, {p.cfg.api_key})
    finished = true
    s:close()
    if release then release:release(); release = nil end
    record(self, norm, started, nil, type(err) == "table" and err or {kind = "lua", message = tostring(err)})
    error(err, 0)
  end
  local function handle(events)
    for _, ev in ipairs(events) do
      local okp, delta, done = pcall(p.provider.stream_event, state, ev)
      if not okp then fail(delta) end
      if delta and delta ~= "" then
        pieces[#pieces + 1] = delta
        queue[#queue + 1] = delta
      end
      if done then return true end
    end
    return false
  end
  local closer = setmetatable({}, {__close = function() if not finished then finish() end end})
  local function next_piece()
    while true do
      if #queue > 0 then return table.remove(queue, 1) end
      if finished then return nil end
      local okr, chunk = pcall(s.read, s)
      if not okr then fail(lm_transport_error(self, chunk)) end
      local okf, events
      if chunk == nil then
        okf, events = pcall(parser.finish, parser)
      else
        okf, events = pcall(parser.feed, parser, chunk)
      end
      if not okf then fail(events) end   -- an event over the size cap
      if handle(events) or chunk == nil then finish() end
    end
  end
  return next_piece, final, nil, closer
end

-- ---- history ------------------------------------------------------------------

--- lm:inspect_history(n) prints this LM's last n calls.
function LM:inspect_history(n, write)
  history.inspect(n, self.history, write)
end

-- ---- DummyLM ----------------------------------------------------------------------

local function last_user_text(messages)
  for i = #messages, 1, -1 do
    if messages[i].role == "user" then return messages[i].content end
  end
  return messages[#messages].content
end

local function count_tokens(text)
  return math.max(1, math.ceil(#text / 4))
end

--- tide.DummyLM(answers, opts): an LM for users' own tests, with history and
-- usage like a real one.  answers: a list (used in order), a table keyed by text
-- found in the last user message, or a function(messages, request) → text.
function M.dummy(answers, opts)
  local kind = type(answers)
  if kind ~= "table" and kind ~= "function" then
    error("bad argument #1 to 'DummyLM' (table or function expected, got " .. kind .. ")", 2)
  end
  opts = opts or {}
  local self = M.new("openai_compatible/dummy", {base_url = "http://dummy.invalid",
    cache = opts.cache or false, price = opts.price, max_cost = opts.max_cost})
  self.model = "dummy"
  local used = 0
  private[self].transport = function(norm)
    local text
    if kind == "function" then
      text = answers(norm.messages, norm)
    elseif #answers > 0 then
      used = used + 1
      text = answers[used]
      if text == nil then
        error(tide_core.error{kind = "bad_request",
          message = string.format("DummyLM: all %d answers were used", #answers)}, 0)
      end
    else
      local prompt = last_user_text(norm.messages)
      text = answers[prompt]
      if text == nil then
        for k, v in pairs(answers) do
          if type(k) == "string" and prompt:find(k, 1, true) then text = v break end
        end
      end
      if text == nil then
        error(tide_core.error{kind = "bad_request",
          message = "DummyLM: no answer for prompt: " .. prompt:sub(1, 80)}, 0)
      end
    end
    if type(text) == "table" then text = text.text end
    text = tostring(text)
    local input = 0
    for _, m in ipairs(norm.messages) do input = input + count_tokens(m.content) end
    local output = count_tokens(text)
    return {text = text, finish_reason = "stop", model = "dummy",
      usage = {input = input, output = output, total = input + output}}
  end
  return self
end

return M
