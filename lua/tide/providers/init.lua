--- Model strings to providers: resolve("provider/model", opts) → provider, cfg.
--
-- A provider module speaks one wire format (openai, anthropic, gemini, and
-- OpenAI's Responses API in responses.lua; azure.lua is OpenAI's format on
-- Azure's paths); the shortcuts are OpenAI-compatible servers with their own
-- URL and key variable.
--
-- The provider contract: what tide.LM (lm.lua) asks of a wire-format module.
-- Every function is plain (no I/O, no waiting); tide.LM does the HTTP, retries,
-- cache and history.  cfg = {provider, model, base_url, api_key, headers} comes
-- from resolve; req is lm.lua's normalised request {messages, temperature,
-- max_tokens, stop, top_p, n, response_format, extra, stream}.
--
--   name        "openai" | "anthropic" | "gemini": the wire format, for messages
--   takes_n     false when the API has no n (lm:call{n = 3} then makes 3 calls)
--   check(req)  optional: raises misuse (tide.check) for a request this format
--               cannot send; run in the caller's task, before any I/O
--   build(cfg, req) → {url, headers, body}: the HTTP request (body JSON-encoded)
--   parse(status, headers, body) → {text, texts, finish_reason, usage, model,
--               raw}: a 2xx answer read; raises typed errors (parse,
--               content_filter, empty, or the error an error body stands for)
--   classify(status, headers, body) → an error object for a non-2xx answer,
--               returned, not raised (kind by status and payload: auth,
--               rate_limit, server, context_window, ... with retryable and
--               retry_after)
--   stream_event(state, {event, data}) → text delta or nil, done: one SSE
--               event of a streamed answer; sets state.complete at the
--               format's end marker, state.text_seen, usage, model,
--               finish_reason; raises a stream's error event
--   stream_end(state): at the end of the stream, raises `transport` (cause
--               incomplete) when it never reached its end marker, and
--               content_filter / empty when no text arrived
--
-- providers/common.lua holds what the three share: JSON, integer counts,
-- Retry-After, and the typed errors (common.errors builds classify, the error
-- side of parse and stream_event, and stream_end from a describe(payload)).
-- Every kind they raise is listed in tide.errors.
local check = require "tide.check"

local M = {}

-- module: which wire format.  keys: environment variables tried in order.
-- base_env: the SDK's base-URL variable.  base: the default base URL (nil:
-- the caller must pass base_url).  keyless: a key is optional.
local PROVIDERS = {
  openai = {module = "openai", keys = {"OPENAI_API_KEY"}, base_env = "OPENAI_BASE_URL",
            base = "https://api.openai.com/v1"},
  anthropic = {module = "anthropic", keys = {"ANTHROPIC_API_KEY"},
               base_env = "ANTHROPIC_BASE_URL", base = "https://api.anthropic.com"},
  gemini = {module = "gemini", keys = {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
            base_env = "GEMINI_BASE_URL", base = "https://generativelanguage.googleapis.com",
            -- the 1.0 models refuse candidateCount > 1: their n samples are n calls
            one_candidate = function(model)
              model = model:gsub("^models/", "")
              return model:match("^gemini%-1%.0") ~= nil or model == "gemini-pro"
            end},
  ollama = {module = "openai", keys = {}, keyless = true, base = "http://localhost:11434/v1",
            no_n = true},
  openrouter = {module = "openai", keys = {"OPENROUTER_API_KEY", "OR_API_KEY"},
                base_env = "OPENROUTER_API_BASE", base = "https://openrouter.ai/api/v1", no_n = true},
  groq = {module = "openai", keys = {"GROQ_API_KEY"}, base_env = "GROQ_API_BASE",
          base = "https://api.groq.com/openai/v1", no_n = true},
  -- OpenAI-compatible hosts, with LiteLLM's key and base-URL variables.  no_n:
  -- the host answers one choice whatever n says, so lm:call{n = 3} makes 3 calls
  mistral = {module = "openai", keys = {"MISTRAL_API_KEY"}, base_env = "MISTRAL_API_BASE",
             base = "https://api.mistral.ai/v1"},
  deepseek = {module = "openai", keys = {"DEEPSEEK_API_KEY"}, base_env = "DEEPSEEK_API_BASE",
              base = "https://api.deepseek.com/beta", no_n = true},
  together_ai = {module = "openai",
                 keys = {"TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY",
                         "TOGETHER_AI_TOKEN"},
                 base_env = "TOGETHER_AI_API_BASE", base = "https://api.together.xyz/v1"},
  fireworks_ai = {module = "openai",
                  keys = {"FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY",
                          "FIREWORKS_AI_TOKEN"},
                  base_env = "FIREWORKS_API_BASE", base = "https://api.fireworks.ai/inference/v1"},
  xai = {module = "openai", keys = {"XAI_API_KEY"}, base_env = "XAI_API_BASE",
         base = "https://api.x.ai/v1"},
  cerebras = {module = "openai", keys = {"CEREBRAS_API_KEY"}, base_env = "CEREBRAS_API_BASE",
              base = "https://api.cerebras.ai/v1", no_n = true},
  perplexity = {module = "openai", keys = {"PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"},
                base_env = "PERPLEXITY_API_BASE", base = "https://api.perplexity.ai", no_n = true},
  -- Azure OpenAI: the model string names a deployment, the URL is the resource's
  azure = {module = "azure", keys = {"AZURE_API_KEY"}, base_env = "AZURE_API_BASE",
           base_hint = "the resource's URL, e.g. https://NAME.openai.azure.com, or set AZURE_API_BASE"},
  -- self-hosted servers: the URL is the caller's; a key only if the server wants one
  vllm = {module = "openai", keys = {"OPENAI_API_KEY"}, keyless = true},
  openai_compatible = {module = "openai", keys = {"OPENAI_API_KEY"}, keyless = true},
}
PROVIDERS.google = PROVIDERS.gemini
PROVIDERS.hosted_vllm = PROVIDERS.vllm

local function known()
  local names = {}
  for name in pairs(PROVIDERS) do names[#names + 1] = name end
  table.sort(names)
  return table.concat(names, ", ")
end

-- An environment value, treating "" as unset.
local function env_value(env, name)
  local v = name and env(name)
  if v == nil or v == "" then return nil end
  return v
end

-- A text sent in a request line or header: a NUL would cut it short in C, and a
-- CR or LF would start a header of the text's choosing.
local function header_safe(what, v)
  if v:find("[%z\r\n]") then
    check.fail("LM", what, "a NUL, CR or LF byte in it: it cannot go into an HTTP request")
  end
  return v
end

local function api_key(spec, prefix, opts, env)
  if opts.api_key then   -- false: none given, as nil
    return header_safe("opts.api_key", check.type("LM", "opts.api_key", opts.api_key, "string"))
  end
  for _, name in ipairs(spec.keys) do
    local v = env_value(env, name)
    if v then return header_safe(name, v) end
  end
  if spec.keyless then return nil end
  check.misuse(string.format("tide.LM: no API key for %s: set %s or pass api_key", prefix,
    table.concat(spec.keys, " or ")))
end

--- The base URL: opts.base_url, else the SDK's variable, else the provider's
-- own.  Only http and https are spoken; a URL without its scheme
-- ("localhost:8000/v1") would otherwise be taken for a path.
local function base_url(spec, prefix, opts, env)
  local what, base = "opts.base_url", opts.base_url
  if base == nil and env_value(env, spec.base_env) then
    what, base = spec.base_env, env_value(env, spec.base_env)
  end
  base = base or spec.base
  if base == nil then
    check.misuse(string.format("tide.LM: %s needs base_url (%s)", prefix, spec.base_hint or
      "the server's OpenAI-compatible /v1 URL, e.g. http://localhost:8000/v1"))
  end
  check.type("LM", what, base, "string")
  header_safe(what, base)
  if not base:lower():match("^https?://[^/]") then
    local fix = base:match("^%a[%w+.-]*://") and "" or
      string.format(": write http://%s (or https://)", base)
    check.fail("LM", what, string.format("'%s' is not an http:// or https:// URL%s", base, fix))
  end
  return (base:gsub("/+$", ""))
end

-- The caller's headers, copied; names and values must be strings that can go
-- into a request.
local function headers_of(opts)
  check.type("LM", "opts.headers", opts.headers, "table", true)
  local headers = {}
  for k, v in pairs(opts.headers or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      check.fail("LM", "opts.headers", string.format("names and values must be strings, got %s = %s",
        type(k), type(v)))
    end
    headers[header_safe("opts.headers", k)] = header_safe("opts.headers['" .. k .. "']", v)
  end
  return headers
end

--- The environment variables any provider reads its key from, sorted.
function M.key_variables()
  local seen, names = {}, {}
  for _, spec in pairs(PROVIDERS) do
    for _, name in ipairs(spec.keys) do
      if not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  table.sort(names)
  return names
end

-- Azure's api-version when neither opts.api_version nor AZURE_API_VERSION
-- gives one: the newest generally available version of the data-plane API.
M.AZURE_API_VERSION = "2024-10-21"

local function api_version(opts, env)
  local v = opts.api_version
  if v ~= nil then
    return header_safe("opts.api_version", check.type("LM", "opts.api_version", v, "string"))
  end
  v = env_value(env, "AZURE_API_VERSION")
  return v and header_safe("AZURE_API_VERSION", v) or M.AZURE_API_VERSION
end

-- opts.api: which of a provider's APIs to speak.  Only OpenAI's format has a
-- second one, the Responses API (POST {base}/responses).
local function module_of(spec, prefix, opts)
  local api = check.type("LM", "opts.api", opts.api, "string", true)
  if api == nil or api == "chat" then return spec.module end
  if api ~= "responses" then
    check.fail("LM", "opts.api", string.format("'%s': \"chat\" or \"responses\" expected", api))
  end
  if spec.module ~= "openai" then
    check.fail("LM", "opts.api", string.format("%s has no Responses API: it is OpenAI's "
      .. "(openai/..., or an OpenAI-compatible server that serves /responses)", prefix))
  end
  return "responses"
end

--- resolve(model_string, opts) → provider module, cfg
-- cfg = {provider, model, base_url, api_key (or nil), headers, takes_n (false
-- when the host has no n), api_version (Azure)}.  opts: api_key, base_url,
-- headers, api ("chat" or "responses"), api_version (Azure), env (a getenv
-- function, for specs).  Misuse raises at the caller's line.
function M.resolve(model_string, opts)
  opts = opts or {}
  check.type("LM", 1, model_string, "string")
  local prefix, model = model_string:match("^([^/]+)/(.+)$")
  if not prefix then
    check.fail("LM", 1, string.format("model '%s' has no provider: write provider/model, "
      .. "e.g. 'openai/%s'", model_string, model_string))
  end
  local spec = PROVIDERS[prefix]
  if not spec then
    check.fail("LM", 1, string.format("unknown provider '%s' in '%s'; known: %s",
      prefix, model_string, known()))
  end
  header_safe(1, model)
  local env = opts.env or os.getenv
  local base = base_url(spec, prefix, opts, env)
  local headers = headers_of(opts)
  local provider = require("tide.providers." .. module_of(spec, prefix, opts))
  local cfg = {
    provider = prefix == "google" and "gemini" or prefix,
    model = model,
    base_url = base,
    api_key = api_key(spec, prefix, opts, env),
    headers = headers,
    api_version = spec.module == "azure" and api_version(opts, env) or nil,
  }
  if spec.no_n or (spec.one_candidate and spec.one_candidate(model)) then cfg.takes_n = false end
  if opts.api == "responses" then cfg.api = "responses" end
  return provider, cfg
end

return M
