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
local provider_common = require "tide.providers.common"
local cache_mod = require "tide.cache"
local history = require "tide.history"
local settings = require "tide.settings"
local sse = require "tide.sse"
local redact = require "tide.redact"
local check = require "tide.check"
local tls = require "tide.tls"
local circuit = require "tide.circuit"
-- tide/shared/'s limits.lua, gate.lua and inflight.lua are required where an LM
-- uses them (rpm, tpm, max_parallel_shared; a Redis link): `require "tide"` skips them
local media = require "tide.media"
local callbacks = require "tide.callbacks"
local prices = require "tide.prices"

local M = {}

local LM = {}
LM.__index = LM
M.LM = LM

local private = setmetatable({}, {__mode = "k"})   -- lm → {provider, cfg (with key), gate, ...}
-- a request (norm) → the call the callbacks heard start (tide.callbacks), until it ends
local heard_calls = setmetatable({}, {__mode = "k"})
local traceparents = setmetatable({}, {__mode = "k"})   -- a request → its traceparent header

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

-- The options' valid ranges.  A day bounds the times: the C side turns seconds
-- into milliseconds in a long, and no answer is worth waiting longer.
local MAX_SECONDS = 86400
-- What a call's own n and timeout may be: made once, not per call.
local N_RANGE = {integer = true, min = 1, max = 128}
local TIMEOUT_RANGE = {above = 0, max = MAX_SECONDS}
local OPTION_RANGES = {
  {"timeout", {above = 0, max = MAX_SECONDS}},
  {"deadline", {above = 0, max = MAX_SECONDS}},
  {"num_retries", {integer = true, min = 0, max = 100}},
  {"max_parallel_requests", {integer = true, min = 1, max = 1000000}},
  {"max_parallel_shared", {integer = true, min = 1, max = 1000000}},
  {"rpm", {min = 0}},
  {"tpm", {min = 0}},
  {"max_cost", {min = 0}},
  {"max_body", {integer = true, min = 1, max = 1 << 40}},
  {"history_limit", {integer = true, min = 1}},
}

-- Header names whose values are credentials (lower case).
local CREDENTIAL_HEADERS = {authorization = true, ["proxy-authorization"] = true,
  ["api-key"] = true, ["x-api-key"] = true, ["x-goog-api-key"] = true}

local function check_options(opts)
  for _, o in ipairs(OPTION_RANGES) do
    check.number("LM", "opts." .. o[1], opts[o[1]], o[2], true)
  end
  if opts.price then prices.check("LM", "opts.price", opts.price) end
  check.type("LM", "opts.secrets", opts.secrets, "table", true)
  for i, s in ipairs(opts.secrets or {}) do check.type("LM", "opts.secrets[" .. i .. "]", s, "string") end
end

--- What the LM must never show: its key, the credential headers' values (and
-- the token after "Bearer ", which is what a server quotes back), and the
-- caller's own `secrets`.
local function secrets_of(cfg, opts)
  local list = {cfg.api_key}
  for name, value in pairs(cfg.headers) do
    if CREDENTIAL_HEADERS[name:lower()] then
      list[#list + 1] = value
      list[#list + 1] = value:match("^%a+%s+(%S+)%s*$")
    end
  end
  for _, s in ipairs(opts.secrets or {}) do list[#list + 1] = s end
  return redact.usable(list)
end

--- tide.LM(model, opts)
function M.new(model, opts)
  check.type("LM", 1, model, "string")
  opts = check.type("LM", 2, opts, "table", true) or {}
  local provider, cfg = providers.resolve(model, opts)
  check_options(opts)
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
    num_retries = opts.num_retries and math.tointeger(opts.num_retries) or 3,
    timeout = opts.timeout or 600,
    max_body = opts.max_body and math.tointeger(opts.max_body),   -- nil: the engine's 64 MiB
    cache = opts.cache ~= false,
    rollout_id = opts.rollout_id,
    -- {input, output, cached = $ per 1M tokens}: the caller's, else tide.prices'
    -- (false: none, the cost stays 0)
    price = opts.price or (opts.price == nil and prices.lookup(cfg.provider, cfg.model)) or nil,
    max_cost = opts.max_cost,
    history = {},
    history_limit = opts.history_limit and math.tointeger(opts.history_limit) or history.limit,
    usage = {input = 0, output = 0, total = 0, calls = 0, cache_hits = 0, cost = 0},
    circuit = circuit.check("LM", opts.circuit),   -- {failures, wait}: see tide/circuit.lua
  }, LM)
  local p = {provider = provider, cfg = cfg, inflight = {}, deadline = opts.deadline,
             secrets = secrets_of(cfg, opts), origin = circuit.origin_of(cfg.base_url or "")}
  redact.register(p.secrets)
  p.tls = tls.options("LM", opts, cfg.base_url)   -- CA, client certificate, proxy: checked now
  if opts.max_parallel_requests then
    p.gate = tide_core.semaphore(math.tointeger(opts.max_parallel_requests))
  end
  -- shared by every process on the same Redis for this (provider, model, key)
  local shared_limits = (opts.rpm or opts.tpm or opts.max_parallel_shared)
    and require "tide.shared.limits"
  if opts.rpm and opts.rpm > 0 then
    p.rpm = shared_limits.bucket("rpm", opts.rpm / 60, math.max(1, opts.rpm / 60),
      shared_limits.redis_key("rpm", cfg.provider, cfg.model, cfg.api_key))
  end
  if opts.tpm and opts.tpm > 0 then
    p.tpm = shared_limits.bucket("tpm", opts.tpm / 60, math.max(1, opts.tpm / 60),
      shared_limits.redis_key("tpm", cfg.provider, cfg.model, cfg.api_key))
  end
  -- calls in flight across every process on the same Redis (tide/shared/gate.lua)
  if opts.max_parallel_shared then
    local shared_gate = require "tide.shared.gate"
    p.shared_gate = shared_gate.new(math.tointeger(opts.max_parallel_shared),
      shared_gate.PREFIX .. shared_limits.identity(cfg.provider, cfg.model, cfg.api_key))
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

-- ---- tools -------------------------------------------------------------------

--- A message with tool calls ({role = "assistant", content?, tool_calls = {{id,
-- name, args}}}) or a tool's result ({role = "tool", tool_call_id, content}):
-- true when it is one, misuse naming what is wrong when it is malformed.
local function tool_message(fname, i, m)
  if type(m) ~= "table" then return false end
  local where = string.format("messages[%d]", i)
  if m.role == "tool" then
    check.type(fname, where .. ".tool_call_id", m.tool_call_id, "string")
    check.type(fname, where .. ".content", m.content, "string")
    return true
  end
  if m.tool_calls == nil then return false end
  check.type(fname, where .. ".content", m.content, "string", true)
  check.type(fname, where .. ".tool_calls", m.tool_calls, "table")
  for j, c in ipairs(m.tool_calls) do
    local cw = string.format("%s.tool_calls[%d]", where, j)
    check.type(fname, cw, c, "table")
    check.type(fname, cw .. ".id", c.id, "string")
    check.type(fname, cw .. ".name", c.name, "string")
    check.type(fname, cw .. ".args", c.args, "table", true)
  end
  return true
end

--- tools: tide.Tools or {name, description, parameters} tables → the plain specs
-- the providers take (also what the cache key sees: no functions in it).
local function tools_of(fname, tools)
  check.type(fname, "tools", tools, "table")
  local out = {}
  for i, t in ipairs(tools) do
    local where = "tools[" .. i .. "]"
    if type(t) == "table" and type(t.spec) == "function" then
      out[i] = t:spec()
    else
      check.type(fname, where, t, "table")
      check.type(fname, where .. ".name", t.name, "string")
      check.type(fname, where .. ".description", t.description, "string", true)
      check.type(fname, where .. ".parameters", t.parameters, "table", true)
      out[i] = {name = t.name, description = t.description,
                parameters = t.parameters or {type = "object", properties = {}}}
    end
  end
  if #out == 0 then check.fail(fname, "tools", "a non-empty list of tools expected") end
  return out
end

local CHOICES = {auto = true, required = true, none = true}

--- tool_choice: "auto", "required", "none" or the name of one of the tools.
local function choice_of(fname, choice, tools)
  if choice == nil or CHOICES[choice] then return choice end
  check.type(fname, "tool_choice", choice, "string")
  for _, t in ipairs(tools) do
    if t.name == choice then return choice end
  end
  check.fail(fname, "tool_choice", string.format(
    "%q: \"auto\", \"required\", \"none\" or the name of a tool expected", choice))
end

--- One request, normalised: messages plus the sampling options, the LM's
-- defaults under the call's own.  fname names the method in misuse errors.
local function normalise(self, req, fname)   -- → the request, and the call's own timeout
  fname = fname or "call"
  if type(req) == "string" then
    req = {messages = {{role = "user", content = req}}}
  elseif type(req) ~= "table" then
    check.fail(fname, 1, "a prompt string or a table expected, got " .. type(req))
  elseif req[1] ~= nil and req.messages == nil then
    req = {messages = req}
  end
  local messages = req.messages
  if messages == nil and req.prompt ~= nil then
    messages = {{role = "user", content = req.prompt}}
  end
  if type(messages) ~= "table" or #messages == 0 then
    check.fail(fname, 1, "a call needs `messages` (a non-empty list) or `prompt`")
  end
  local tool_messages = false
  for i, m in ipairs(messages) do
    if type(m) == "table" and type(m.content) == "table" and m.role ~= "system" and
        m.tool_calls == nil then
      -- text and media: tide.Image/Audio/File values among strings
      check.type(fname, string.format("messages[%d].role", i), m.role, "string")
      media.check_content(fname, string.format("messages[%d].content", i), m.content)
    elseif type(m) ~= "table" or type(m.role) ~= "string" or type(m.content) ~= "string" then
      if not tool_message(fname, i, m) then
        check.fail(fname, 1, string.format("messages[%d] must be {role = string, content = string}", i))
      end
      tool_messages = true
    elseif m.tool_calls ~= nil or m.role == "tool" then
      tool_message(fname, i, m)
      tool_messages = true
    end
  end
  -- Only the fields that are set: an in-flight call keeps this table, and most
  -- calls set none of the sampling options.
  local norm = {messages = messages}
  if tool_messages then norm.tool_messages = true end
  if req.tools ~= nil then
    norm.tools = tools_of(fname, req.tools)
    norm.tool_choice = choice_of(fname, req.tool_choice, norm.tools)
    norm.tool_messages = true
  elseif req.tool_choice ~= nil then
    check.fail(fname, "tool_choice", "a tool_choice needs `tools`")
  end
  local kw = self.kwargs
  for _, field in ipairs(SAMPLING) do
    local v = req[field]
    if v == nil then v = kw[field] end
    if v ~= nil then norm[field] = v end
  end
  if req.n ~= nil then
    norm.n = math.tointeger(check.number(fname, "n", req.n, N_RANGE))
  end
  if req.response_format ~= nil then norm.response_format = req.response_format end
  local extra = kw.extra
  if req.extra then
    extra = {}
    for k, v in pairs(kw.extra or {}) do extra[k] = v end
    for k, v in pairs(req.extra) do extra[k] = v end
  end
  norm.extra = extra
  -- here, in the caller's task: build runs later, in the task that makes the request
  local provider_check = private[self].provider.check
  if provider_check then provider_check(norm) end
  return norm, check.number(fname, "timeout", req.timeout, TIMEOUT_RANGE, true)
end

local function cache_key(self, norm, rollout_id)
  local cfg = private[self].cfg
  return cache_mod.key{
    provider = cfg.provider, model = cfg.model, base_url = cfg.base_url or "",
    request = norm, rollout_id = rollout_id or "",
    api = cfg.api,   -- "responses": its answers (raw) are not chat completions
  }
end

--- The rollout a request asks for: its own, else the LM's.
local function rollout_of(self, req)
  return type(req) == "table" and req.rollout_id or self.rollout_id
end

--- The cache a call uses (the LM's, or the default), or nil: per call `cache =
-- false`, else the LM's `cache` option.
local function cache_for(self, p, req)
  local use = self.cache
  if type(req) == "table" and req.cache ~= nil then use = req.cache end
  return use and (p.cache or M.default_cache()) or nil
end

local function cost_of(self, usage)
  return prices.cost(self.price, usage)
end

local function estimate_tokens(norm)
  local chars = 0
  for _, m in ipairs(norm.messages) do chars = chars + #(media.text_of(m.content) or "") end
  return math.ceil(chars / 4) + (norm.max_tokens or 0)
end

--- Tells the callbacks that heard a call start of its end (tide.callbacks).
local function hear_end(norm, result, err)
  local heard_call = heard_calls[norm]
  if heard_call then
    heard_calls[norm] = nil
    callbacks.finish(heard_call, result, err)
  end
end

local function record(self, norm, started, result, err)
  hear_end(norm, result, err)   -- the callbacks hear of every end here
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
    entry.id, entry.request_id = result.id, result.request_id
    if result.tool_calls then entry.tool_calls = result.tool_calls end
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
    entry.request_id = err.request_id
  end
  history.append(self.history, entry, self.history_limit)
  history.append(history.entries, entry)
end

--- A tide.request error (it has a curl_code) → the LM's vocabulary: timeout
-- stays timeout, the other transport kinds become `transport` with the cause
-- kept.  Anything else (a provider's error, a cancellation) is returned as it is.
-- self: an LM or an Embedder (its provider names the error's).
local function lm_transport_error(self, err)
  if not tide_core.is_error(err) or err.curl_code == nil then return err end
  return tide_core.error{
    kind = err.kind == "timeout" and "timeout" or "transport", cause = err.kind,
    message = err.message, provider = self.provider, retryable = err.retryable,
    url = err.url, attempts = err.attempts,
  }
end
M.transport_error = lm_transport_error

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
  if p.shared_gate then return p.shared_gate:acquire(p.gate) end
  if p.gate then return p.gate:acquire() end
  return nil
end

-- The attempts a call has failed so far, by the coroutine making it (weak:
-- nothing is kept for a call that succeeds or is dropped).  tide.retry tells
-- on_retry of each failure it retries; send adds the last.
local tried = setmetatable({}, {__mode = "k"})
local MAX_HISTORY = 50

--- Notes a failed attempt of the running call: its kind (a transfer's in the
-- LM's words, as lm_transport_error puts them), cause, status and the wait after it.
local function note(err, delay)
  if type(err) ~= "table" then return end
  local co = coroutine.running()
  local list = tried[co]
  if list == nil then
    list = {}
    tried[co] = list
  end
  local entry = {kind = err.kind, status = err.status, delay = delay}
  if err.curl_code ~= nil then
    entry.kind, entry.cause = err.kind == "timeout" and "timeout" or "transport", err.kind
  end
  if #list < MAX_HISTORY then list[#list + 1] = entry end
end

--- The LM's retry options, made once (and again if num_retries changes).
local function retry_opts(self, p)
  local tries = self.num_retries + 1
  local opts = p.retry_opts
  if opts == nil or opts.tries ~= tries then
    -- one closure per LM: it reads the LM's circuit options when a try fails
    opts = {tries = tries, deadline = p.deadline, on_retry = function(err, _, delay)
      note(err, delay)
      circuit.failed(err, self.circuit, false, p.tls)
    end}
    p.retry_opts = opts
  end
  return opts
end

--- The provider's request (url, headers, body) into the call's tide.request table.
local function fill(http, built, norm)
  http.url, http.headers, http.body = built.url, built.headers, built.body
  if callbacks.propagate then   -- the tracer's W3C traceparent, made when the call began
    local value = traceparents[norm]
    if value then http.headers.traceparent = value end
  end
end

-- ---- a wrong base_url ---------------------------------------------------------

--- The URL as errors show it: without its query string.
local function shown_url(url)
  return (tostring(url):gsub("[?#].*$", ""))
end

-- What each wire format adds to base_url, and whether base_url itself should
-- end in /v1: OpenAI-compatible servers answer under /v1, which base_url
-- carries; Anthropic's and Gemini's paths start with their version.
local function base_advice(p)
  local base = p.cfg.base_url
  local versioned = base:match("/v%d[%w]*$") ~= nil
  if p.provider.name == "openai" then
    if versioned then return "" end
    return " (an OpenAI-compatible server's base_url usually ends in /v1, e.g. " .. base .. "/v1)"
  end
  if versioned then
    return string.format(" (%s's base_url has no version: tide adds the path itself)",
      p.provider.name)
  end
  return ""
end

--- An answer that is no API's (a 404 page, an HTML page under a 2xx): what a
-- base_url pointing at the wrong server or path gets.  The error then says
-- which URL was called and what to check.
local function wrong_url(p, err, url, body)
  if type(err) ~= "table" then return err end
  local page = type(body) == "string" and body:match("^%s*<") ~= nil
  local json = type(body) == "string" and body:match("^%s*[{%[]") ~= nil
  local status = err.status
  if ((status == 404 or status == 405) and not json) or (err.kind == "parse" and page) then
    err.url = shown_url(url)
    err.message = string.format("%s; no %s API answered at %s: check base_url%s", err.message,
      p.provider.name, err.url, base_advice(p))
  end
  return err
end

-- ---- one attempt ----------------------------------------------------------------

--- The error of a non-2xx answer.  The body is redacted whole before the
-- provider cuts it into the message and err.body: a key straddling the cut,
-- or JSON-escaped, would survive a redaction made after.
local function classify(p, status, headers, body, url)
  local whole = redact.text(body, p.secrets)
  local err = p.provider.classify(status, headers, whole)
  err.provider = p.cfg.provider   -- "groq", not the wire format's "openai"
  return wrong_url(p, err, url, whole)
end

--- A 2xx answer the provider could not read (err: its parse error, made from
-- the body as it came): read again from the body redacted whole, for the same
-- reason as in classify.  → pcall's results.
local function reread(p, r, err, norm)
  local whole = redact.text(r.body, p.secrets)
  if whole == r.body then return false, err end
  return pcall(p.provider.parse, r.status, r.headers, whole, norm)
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
  if not http.body then fill(http, p.provider.build(p.cfg, norm), norm) end
  circuit.pass(p.origin, http.circuit, http.attempts > 1)   -- held here while the host is down
  local r = tide_core.request(http)
  circuit.answered(p.origin)
  if r.status >= 200 and r.status < 300 then
    local ok, result = pcall(p.provider.parse, r.status, r.headers, r.body, norm)
    if not ok then ok, result = reread(p, r, result, norm) end
    if ok then return result end
    error(wrong_url(p, result, http.url, r.body), 0)
  end
  error(classify(p, r.status, r.headers, r.body, http.url), 0)
end

--- The request itself, retried: gate, buckets, HTTP, provider parsing.
-- → ok, result or error (pcall's results).  A failure is redacted here, once,
-- before anyone sees it: identical calls in flight share this error.
local function send(self, p, norm, timeout)
  local ok, result
  if p.transport then
    ok, result = pcall(p.transport, norm)
  else
    local http = {attempts = 0, method = "POST", timeout = timeout or self.timeout,
                  max_body = self.max_body, url = false, headers = false, body = false,
                  circuit = self.circuit or false}
    tls.apply(http, p.tls)
    -- With nothing to queue behind, the body is built here rather than in
    -- attempt(): a coroutine's stack keeps the size of the deepest point it
    -- reached, and JSON encoding two frames further down would double the stack
    -- every waiting call holds (spec/memory_spec.lua bounds it).
    if not (p.gate or p.shared_gate or p.rpm or p.tpm) then fill(http, p.provider.build(p.cfg, norm), norm) end
    -- a connection failure on the last try, its host's circuit open: tried again
    -- (with all its retries) once the host is back, instead of failing
    repeat
      ok, result = pcall(tide_core.retry, retry_opts(self, p), attempt, p, norm, http)
      if not ok then note(result) end
    until ok or not circuit.failed(result, self.circuit, true, p.tls)
    local co = coroutine.running()
    http.history, tried[co] = tried[co], nil
    if ok then
      result.attempts = http.attempts
      return true, result
    end
    result = lm_transport_error(self, result)
    -- every attempt's kind and wait, not just the last one's
    if type(result) == "table" then result.history = http.history end
  end
  if not ok then return false, redact.value(result, p.secrets) end
  return true, result
end

--- Waits for the in-flight task of a shared request → ok, result (or error).
local function await_shared(t)
  local okw, ok, result = pcall(t.wait, t)
  if not okw then return false, ok end   -- this waiter (or the task) was cancelled
  return ok, result
end

--- A failed call: recorded, then raised (send redacted it).
local function raise_failed(self, norm, started, err)
  if type(err) == "table" then
    record(self, norm, started, nil, err)
  else   -- not a call's failure for history, but its end all the same
    hear_end(norm, nil, err)
  end
  error(err, 0)
end

--- The end of a call: usage, cost, cache and history; raises the error of a
-- failed one.
local function conclude(self, norm, started, ok, result, cache, key)
  if not ok then raise_failed(self, norm, started, result) end
  result.cached = false
  result.cost = cost_of(self, result.usage)
  if cache then cache:put(key, result) end
  record(self, norm, started, result)
  return result
end

--- A served copy of an answer (a cache hit, or the answer of an identical call
-- in flight): no tokens spent and no attempt made by this call.  It keeps the
-- answer's raw and id; request_id only when it came from a request (an entry of
-- the cache has none).
local function served(answer)
  return {text = answer.text, texts = answer.texts, finish_reason = answer.finish_reason,
    model = answer.model, usage = {input = 0, output = 0, total = 0}, cached = true, cost = 0,
    attempts = 0, raw = answer.raw, id = answer.id, request_id = answer.request_id,
    tool_calls = answer.tool_calls}
end

--- A call through the cache: a hit, or the answer of the same request already in
-- flight, or a new request that later identical calls share.
local function call_cached(self, p, req, norm, timeout, cache, started)
  local key = cache_key(self, norm, rollout_of(self, req))
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
    if not (tide_core.is_error(shared_result, "cancelled")) then
      raise_failed(self, norm, started, shared_result)
    end
    -- the first caller was cancelled, not us: make the call ourselves
  end
  -- the same call in flight in another process on the same Redis: its answer
  -- (tide/shared/inflight.lua); else a lock, released once the call is concluded
  local lock, answer
  if cache:_redis() then lock, answer = require("tide.shared.inflight").claim(cache, key) end
  if answer then
    local result = served(answer)
    record(self, norm, started, result)
    return result
  end
  local _ <close> = lock
  -- The shared task never fails: it returns send's (pcall's) results, so its
  -- outcome is never "an error nobody took" when its waiters are cancelled as it fails.
  local t = tide_core.spawn(send, self, p, norm, timeout)
  p.inflight[key] = t
  local ok, result = await_shared(t)
  if p.inflight[key] == t then p.inflight[key] = nil end
  return conclude(self, norm, started, ok, result, cache, key)
end

--- The result of n samples made as n calls: the first answer, with every
-- text in `texts` and the usage and cost of all of them.
local function merged(results)
  local first = results[1]
  local all = {text = first.text, texts = {}, finish_reason = first.finish_reason,
    model = first.model, raw = first.raw, id = first.id, request_id = first.request_id,
    tool_calls = first.tool_calls, cached = true, cost = 0, attempts = 0, usage = {input = 0, output = 0, total = 0}}
  local u = all.usage
  for i, r in ipairs(results) do
    local ru = r.usage
    all.texts[i] = r.text
    u.input, u.output = u.input + ru.input, u.output + ru.output
    u.total, u.note = u.total + ru.total, u.note or ru.note
    if ru.cached then u.cached = (u.cached or 0) + ru.cached end
    if ru.reasoning then u.reasoning = (u.reasoning or 0) + ru.reasoning end
    all.cost = all.cost + (r.cost or 0)
    all.attempts = math.max(all.attempts, r.attempts or 0)
    all.cached = all.cached and r.cached
  end
  return all
end

--- n samples from a wire format that has no `n` (Anthropic's): n calls made
-- together under the LM's gate.  The first is the call n = 1 would make; each
-- other gets its own rollout, so that the cache and the sharing of calls in
-- flight keep the samples apart.
local function call_samples(self, req, n)
  local base = req.rollout_id
  if base == nil then base = self.rollout_id end
  local indices = {}
  for i = 1, n do indices[i] = i end
  return merged(tide_core.map(indices, function(i)
    local one = {}
    for k, v in pairs(req) do one[k] = v end
    one.n = nil
    if i > 1 then one.rollout_id = string.format("%s#sample-%d", tostring(base or ""), i) end
    return self:call(one)   -- each sample its own call to the callbacks
  end))
end

--- The callbacks hear of a call once its request is known; record(), which
-- every ending goes through, tells them of its end: a call in flight holds no
-- frame more than without them.
local function heard(self, req, norm)
  local list = callbacks.list(type(req) == "table" and req.callbacks or nil, "call")
  if list then
    local call = callbacks.start(list, "lm", self.model, self, norm)
    heard_calls[norm] = call
    -- made here, near the top of the call, not where the request is built: that is
    -- the deepest point of a waiting call, whose coroutine keeps the size it reached
    local propagate = callbacks.propagate
    if propagate then traceparents[norm] = propagate(call) end
  end
end

--- lm:call(req) → {text, finish_reason, usage = {input, output, total, cached?,
-- reasoning?}, model, id, request_id, raw, cached, cost, attempts}.  req: a prompt string, a list of messages, or
-- {messages | prompt, temperature, max_tokens, stop, top_p, n, response_format,
--  extra, timeout, cache = false, rollout_id}.  With n > 1, `texts` holds the n
-- answers (made as n calls where the API has no n).  Raises typed errors.
-- req.callbacks: callbacks for this call (tide.callbacks), beside the configured ones.
function LM:call(req)
  local norm, timeout = normalise(self, req)
  budget_check(self)
  local p = private[self]
  if norm.n and norm.n > 1 and (p.provider.takes_n == false or p.cfg.takes_n == false) then
    return call_samples(self, req, norm.n)
  end
  if callbacks.on then heard(self, req, norm) end   -- the one test when none is configured
  local started = tide_core.now()
  local cache = cache_for(self, p, req)
  if cache then return call_cached(self, p, req, norm, timeout, cache, started) end
  local ok, result = send(self, p, norm, timeout)
  return conclude(self, norm, started, ok, result)
end

--- lm(prompt_or_request) → the text of the answer.
function LM:__call(req)
  return self:call(req).text
end

-- ---- streaming --------------------------------------------------------------

--- Opens the stream (retried until the first byte), checking the HTTP status.
-- Transport errors reach tide.retry as the core raised them, as in attempt().
-- → the stream, and the attempts it took.
local function open_stream(self, p, built, timeout)
  local attempts = 0
  local stream = tide_core.retry(retry_opts(self, p), function()
    attempts = attempts + 1
    local s = tide_core.stream(tls.apply({url = built.url, method = "POST", headers = built.headers,
      body = built.body, timeout = timeout or self.timeout, max_body = self.max_body}, p.tls))
    if s.status >= 200 and s.status < 300 then return s end
    local body = {}
    for piece in s:chunks() do body[#body + 1] = piece end
    s:close()
    error(classify(p, s.status, s.headers, table.concat(body), built.url), 0)
  end)
  return stream, attempts
end

--- A whole answer as a stream of one piece (a cache hit, a DummyLM's answer):
-- `final` is filled in and the call recorded at once.
local function one_piece(self, norm, started, result, final)
  for k, v in pairs(result) do final[k] = v end
  record(self, norm, started, result)
  local done = false
  return function()
    if done then return nil end
    done = true
    return result.text
  end, final
end

--- for piece in lm:stream(req) do ... end — the answer's text as it arrives.
-- The second value is a table filled in when the stream ends: {text,
-- finish_reason, usage, model, id, request_id, cached, cost}.  Leaving the loop
-- early closes the connection.  A stream that stops before its provider's end
-- marker (a finish reason, [DONE], message_stop) raises `transport` with cause
-- `incomplete`; every error raised once the stream is open carries
-- `partial_text`.  A complete stream is cached like a call (text, finish
-- reason, usage, id), so the same call or stream afterwards is a hit, replayed
-- as one piece.
function LM:stream(req)
  local norm, timeout = normalise(self, req, "stream")
  budget_check(self)
  if callbacks.on then heard(self, req, norm) end
  local p = private[self]
  local started = tide_core.now()
  local final = {}
  local cache = not p.transport and cache_for(self, p, req) or nil
  local key = cache and cache_key(self, norm, rollout_of(self, req))   -- the key lm:call uses
  local hit = cache and cache:get(key)
  if hit then return one_piece(self, norm, started, served(hit), final) end
  norm.stream = true
  if p.transport then   -- DummyLM: the whole answer as one piece
    local ok, result = send(self, p, norm)
    if not ok then error(result, 0) end
    return one_piece(self, norm, started, result, final)
  end
  local built = p.provider.build(p.cfg, norm)
  local release = admit(p, norm)
  local ok, s, attempts = pcall(open_stream, self, p, built, timeout)
  if not ok then
    if release then release:release() end
    s = redact.value(lm_transport_error(self, s), p.secrets)
    record(self, norm, started, nil, s)
    error(s, 0)
  end
  -- state.tools: the request offered tools, whose calls the provider assembles in state.calls
  local parser, state, pieces = sse.new(), {tools = norm.tools ~= nil}, {}
  -- the provider's request id header (Gemini has none)
  local request_id = provider_common.request_id(s.headers, p.provider.request_id_header)
  local given = 0           -- pieces handed to the loop so far
  local finished, failure = false, nil
  local function close()
    finished = true
    s:close()
    if release then release:release(); release = nil end
  end
  -- A failure once the stream is open: recorded at once, raised once the loop
  -- has had the pieces that came before it.  It carries all the text received.
  local function fail(err)
    if type(err) == "table" then
      err.partial_text = table.concat(pieces)
      if err.request_id == nil then err.request_id = request_id end
    end
    err = redact.value(err, p.secrets)
    close()
    record(self, norm, started, nil, type(err) == "table" and err or {kind = "lua", message = tostring(err)})
    failure = err
  end
  -- The end marker, or EOF: a success unless the provider finds the stream
  -- incomplete (no end marker) or without text.
  local function finish()
    if finished then return end
    local ok_end, end_err = pcall(p.provider.stream_end, state)
    local calls
    if ok_end and state.calls then
      ok_end, end_err = pcall(provider_common.stream_calls, p.provider.name, state)
      calls = end_err
    end
    if not ok_end then return fail(end_err) end
    close()
    local result = {
      text = table.concat(pieces), finish_reason = calls and "tool_calls" or state.finish_reason or "stop",
      usage = state.usage or {input = 0, output = 0, total = 0}, model = state.model or p.cfg.model,
      id = state.id, request_id = request_id, cached = false, attempts = attempts, tool_calls = calls,
    }
    result.cost = cost_of(self, result.usage)
    for k, v in pairs(result) do final[k] = v end
    if cache then cache:put(key, result) end
    record(self, norm, started, result)
  end
  local function handle(events)   -- → true at the end marker or a failure
    for _, ev in ipairs(events) do
      local okp, delta, done = pcall(p.provider.stream_event, state, ev)
      if not okp then fail(delta); return true end
      if delta and delta ~= "" then pieces[#pieces + 1] = delta end
      if done then return true end
    end
    return false
  end
  local function read_more()
    local okr, chunk = pcall(s.read, s)
    if not okr then return fail(lm_transport_error(self, chunk)) end
    local okf, events
    if chunk == nil then
      okf, events = pcall(parser.finish, parser)
    else
      okf, events = pcall(parser.feed, parser, chunk)
    end
    if not okf then return fail(events) end   -- an event over the size cap
    if handle(events) or chunk == nil then finish() end
  end
  -- Leaving the loop before its end (a break, an error in its body) closes the
  -- connection; the call is recorded as cancelled and `final` has the text received.
  local closer = setmetatable({}, {__close = function()
    if finished then return end
    close()
    final.text = table.concat(pieces)
    record(self, norm, started, nil, {kind = "cancelled", message = "the stream was left before its end"})
  end})
  local function next_piece()
    while true do
      if given < #pieces then
        given = given + 1
        return pieces[given]
      end
      if failure then error(failure, 0) end
      if finished then return nil end
      read_more()
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
    if messages[i].role == "user" then return media.text_of(messages[i].content) end
  end
  return media.text_of(messages[#messages].content) or ""
end

local function count_tokens(text)
  return math.max(1, math.ceil(#text / 4))
end

--- An answer's tool calls ({{name =, args =, id =}}), each given an id when it
-- has none; nil when there are none.
local function dummy_calls(calls)
  if calls == nil or #calls == 0 then return nil end
  local out = {}
  for i, c in ipairs(calls) do
    if type(c) ~= "table" or type(c.name) ~= "string" then
      error(tide_core.error{kind = "bad_request", message = string.format(
        "DummyLM: tool_calls[%d] must be {name = string, args = table}", i)}, 0)
    end
    out[i] = {id = c.id or ("call_dummy_" .. i), name = c.name, args = c.args or {}}
  end
  return out
end

--- tide.DummyLM(answers, opts): an LM for users' own tests, with history and
-- usage like a real one.  answers: a list (used in order), a table keyed by text
-- found in the last user message, or a function(messages, request) → text.  An
-- answer may be {text =, tool_calls = {{name =, args =}}}: a reply that calls tools.
function M.dummy(answers, opts)
  local answer_fn = check.callable(answers)
  if not answer_fn and type(answers) ~= "table" then
    check.fail("DummyLM", 1, "table or function expected, got " .. type(answers))
  end
  opts = check.type("DummyLM", 2, opts, "table", true) or {}
  local self = M.new("openai_compatible/dummy", {base_url = "http://dummy.invalid",
    cache = opts.cache or false, price = opts.price, max_cost = opts.max_cost})
  self.model = "dummy"
  local used = 0
  private[self].transport = function(norm)
    local text
    if answer_fn then
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
    local calls
    if type(text) == "table" then
      calls = dummy_calls(text.tool_calls)
      text = text.text or ""
    end
    text = tostring(text)
    local input = 0
    for _, m in ipairs(norm.messages) do input = input + count_tokens(media.text_of(m.content) or "") end
    local output = count_tokens(text)
    return {text = text, finish_reason = calls and "tool_calls" or "stop", model = "dummy",
      tool_calls = calls, usage = {input = input, output = output, total = input + output}}
  end
  return self
end

return M
