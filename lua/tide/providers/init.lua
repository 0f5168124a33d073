--- Model strings to providers: resolve("provider/model", opts) → provider, cfg.
--
-- A provider module speaks one wire format (openai, anthropic, gemini); the
-- shortcuts are OpenAI-compatible servers with their own URL and key variable.
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
            base_env = "GEMINI_BASE_URL", base = "https://generativelanguage.googleapis.com"},
  ollama = {module = "openai", keys = {}, keyless = true, base = "http://localhost:11434/v1"},
  openrouter = {module = "openai", keys = {"OPENROUTER_API_KEY"},
                base = "https://openrouter.ai/api/v1"},
  groq = {module = "openai", keys = {"GROQ_API_KEY"}, base = "https://api.groq.com/openai/v1"},
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

local function api_key(spec, prefix, opts, env)
  if opts.api_key then return opts.api_key end
  for _, name in ipairs(spec.keys) do
    local v = env_value(env, name)
    if v then return v end
  end
  if spec.keyless then return nil end
  error(string.format("tide.LM: no API key for %s: set %s or pass api_key", prefix,
    table.concat(spec.keys, " or ")), 4)
end

--- resolve(model_string, opts) → provider module, cfg
-- cfg = {provider, model, base_url, api_key (or nil), headers}.  opts: api_key,
-- base_url, headers, env (a getenv function, for specs).  Misuse raises.
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

function M.resolve(model_string, opts)
  opts = opts or {}
  if type(model_string) ~= "string" then
    error("tide.LM: the model must be a string like 'openai/gpt-4o-mini'", 3)
  end
  local prefix, model = model_string:match("^([^/]+)/(.+)$")
  if not prefix then
    error(string.format("tide.LM: model '%s' has no provider: write provider/model, "
      .. "e.g. 'openai/%s'", model_string, model_string), 3)
  end
  local spec = PROVIDERS[prefix]
  if not spec then
    error(string.format("tide.LM: unknown provider '%s' in '%s'; known: %s",
      prefix, model_string, known()), 3)
  end
  local env = opts.env or os.getenv
  local base = opts.base_url or env_value(env, spec.base_env) or spec.base
  if not base then
    error(string.format("tide.LM: %s needs base_url (the server's OpenAI-compatible /v1 URL)",
      prefix), 3)
  end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local provider = require("tide.providers." .. spec.module)
  return provider, {
    provider = prefix == "google" and "gemini" or prefix,
    model = model,
    base_url = (base:gsub("/+$", "")),
    api_key = api_key(spec, prefix, opts, env),
    headers = headers,
  }
end

return M
