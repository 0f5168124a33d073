-- The OpenAI-compatible hosts (LiteLLM's names, URLs and key variables) and
-- Azure OpenAI's deployments: resolve() from options and the environment, then
-- real calls against mockllm, which checks Azure's path, api-version and
-- api-key header strictly.
local tide = require "tide"
local cjson = require "cjson"
local providers = require "tide.providers"
local openai = require "tide.providers.openai"
local azure = require "tide.providers.azure"
local redact = require "tide.redact"
local mockllm = require "support.mockllm"
local support = require "support.providers"
local env_of, raised = support.env_of, support.raised

-- prefix → the base URL, the key variables in the order tried, the base-URL variable,
-- whether the host answers n choices itself.
local HOSTS = {
  {"mistral", "https://api.mistral.ai/v1", {"MISTRAL_API_KEY"}, "MISTRAL_API_BASE", true},
  {"deepseek", "https://api.deepseek.com/beta", {"DEEPSEEK_API_KEY"}, "DEEPSEEK_API_BASE", false},
  {"together_ai", "https://api.together.xyz/v1",
   {"TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"},
   "TOGETHER_AI_API_BASE", true},
  {"fireworks_ai", "https://api.fireworks.ai/inference/v1",
   {"FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"},
   "FIREWORKS_API_BASE", true},
  {"xai", "https://api.x.ai/v1", {"XAI_API_KEY"}, "XAI_API_BASE", true},
  {"cerebras", "https://api.cerebras.ai/v1", {"CEREBRAS_API_KEY"}, "CEREBRAS_API_BASE", false},
  {"perplexity", "https://api.perplexity.ai", {"PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"},
   "PERPLEXITY_API_BASE", false},
  {"groq", "https://api.groq.com/openai/v1", {"GROQ_API_KEY"}, "GROQ_API_BASE", false},
  {"openrouter", "https://openrouter.ai/api/v1", {"OPENROUTER_API_KEY", "OR_API_KEY"},
   "OPENROUTER_API_BASE", false},
}

describe("OpenAI-compatible hosts", function()
  for _, h in ipairs(HOSTS) do
    local prefix, base, keys, base_env, takes_n = h[1], h[2], h[3], h[4], h[5]
    it(prefix .. "/: " .. base .. ", the key from " .. table.concat(keys, " or "), function()
      local env = {}
      for i, k in ipairs(keys) do env[k] = "key-" .. i end
      local p, cfg = providers.resolve(prefix .. "/some/model", {env = env_of(env)})
      assert.are.equal(openai, p)
      local want = {provider = prefix, model = "some/model", base_url = base, api_key = "key-1", headers = {}}
      if not takes_n then want.takes_n = false end
      assert.are.same(want, cfg)
      -- the later names when the first is unset, LiteLLM's base variable over the default
      if #keys > 1 then env[keys[1]] = nil end
      env[base_env] = "http://127.0.0.1:9/v1/"
      cfg = select(2, providers.resolve(prefix .. "/m", {env = env_of(env)}))
      assert.are.equal(#keys > 1 and "key-2" or "key-1", cfg.api_key)
      assert.are.equal("http://127.0.0.1:9/v1", cfg.base_url)
      if #keys == 1 then
        assert.matches("no API key for " .. prefix .. ": set " .. keys[1],
          raised(providers.resolve, prefix .. "/m", {env = env_of{}}), 1, true)
      end
    end)
  end

  it("lists every provider when the prefix is unknown", function()
    local err = raised(providers.resolve, "mistal/large", {env = env_of{}})
    assert.matches("unknown provider 'mistal' in 'mistal/large'; known: anthropic, azure, cerebras, "
      .. "deepseek, fireworks_ai, gemini, google, groq, hosted_vllm, mistral, ollama, "
      .. "openai, openai_compatible, openrouter, perplexity, together_ai, vllm, xai", err, 1, true)
  end)

  it("redact knows the new key variables", function()
    local keys = redact.known_keys(function(name)
      return ({MISTRAL_API_KEY = "mistral-secret-1", FIREWORKS_AI_API_KEY = "fw-secret-22",
               AZURE_API_KEY = "azure-secret-333", XAI_API_KEY = "xai-secret-4444"})[name]
    end)
    local set = {}
    for _, k in ipairs(keys) do set[k] = true end
    assert.is_true(set["mistral-secret-1"] and set["fw-secret-22"] and set["azure-secret-333"]
      and set["xai-secret-4444"])
  end)
end)

describe("the hosts against mockllm", function()
  local server = mockllm.serve()

  local function lm_for(model, opts, scenario)
    opts = opts or {}
    opts.api_key = opts.api_key or "sk-spec-hosts-secret"
    opts.base_url = opts.base_url or server.url .. "/v1"
    opts.cache = false
    opts.num_retries = 0
    if scenario then opts.headers = {["X-Mock-Scenario"] = scenario} end
    return tide.LM(model, opts)
  end

  for _, h in ipairs(HOSTS) do
    local prefix, takes_n = h[1], h[5]
    it(prefix .. "/ makes chat completions; n = 3 is " .. (takes_n and "one request" or "three calls"), function()
      local lm = lm_for(prefix .. "/a-model")
      local r = lm:call{prompt = "Name a river.", n = 3}
      assert.are.equal(3, #r.texts)
      assert.matches("Mock reply to: Name a river", r.text)
      assert.are.equal(takes_n and 1 or 3, server:stats().requests)
      local log = server:get_json("/__log").requests
      assert.are.equal("/v1/chat/completions", log[1].path)
      assert.are.equal("a-model", log[1].model)
    end)
  end

  it("gemini: candidateCount for n, and n calls for the 1.0 models that refuse it", function()
    local lm = lm_for("gemini/gemini-2.0-flash", {base_url = server.url})
    local r = lm:call{prompt = "Name a lake.", n = 3}
    assert.are.equal(3, #r.texts)
    assert.are.equal(1, server:stats().requests)
    server:reset()
    lm = lm_for("gemini/gemini-1.0-pro", {base_url = server.url})
    r = lm:call{prompt = "Name a lake.", n = 3}
    assert.are.equal(3, #r.texts)
    assert.are.equal(3, server:stats().requests)   -- mockllm refuses candidateCount > 1 there
    local raw = tide.request{url = server.url .. "/v1beta/models/gemini-1.0-pro:generateContent",
      method = "POST", headers = {["x-goog-api-key"] = "k"}, timeout = 10, body = cjson.encode{
        contents = {{role = "user", parts = {{text = "x"}}}}, generationConfig = {candidateCount = 2}}}
    assert.are.equal(400, raw.status)
    assert.matches("Multiple candidates is not enabled for models/gemini-1.0-pro", raw.body, 1, true)
  end)

  it("names the host in errors and keeps its key out of them", function()
    local lm = lm_for("mistral/m", nil, "echo_key=1")
    local ok, err = pcall(lm.call, lm, "quote the key")
    assert.is_false(ok)
    assert.are.equal("auth", err.kind)
    assert.are.equal("mistral", err.provider)
    assert.is_nil(err.message:find("sk-spec-hosts-secret", 1, true))
    assert.matches("[redacted]", err.message, 1, true)
  end)

  describe("azure/", function()
    it("resolves the resource, key and api-version from options or AZURE_*", function()
      local p, cfg = providers.resolve("azure/my-gpt4o", {env = env_of{AZURE_API_KEY = "az-k",
        AZURE_API_BASE = "https://res.openai.azure.com/", AZURE_API_VERSION = "2025-01-01-preview"}})
      assert.are.equal(azure, p)
      assert.are.same({provider = "azure", model = "my-gpt4o", base_url = "https://res.openai.azure.com",
        api_key = "az-k", headers = {}, api_version = "2025-01-01-preview"}, cfg)
      cfg = select(2, providers.resolve("azure/d", {base_url = "https://x.openai.azure.com", api_key = "k",
        env = env_of{}}))
      assert.are.equal(providers.AZURE_API_VERSION, cfg.api_version)
      assert.matches("azure needs base_url (the resource's URL, e.g. https://NAME.openai.azure.com, "
        .. "or set AZURE_API_BASE)", raised(providers.resolve, "azure/d", {api_key = "k", env = env_of{}}), 1, true)
      assert.matches("set AZURE_API_KEY", raised(providers.resolve, "azure/d",
        {base_url = "https://x.openai.azure.com", env = env_of{}}), 1, true)
    end)

    it("calls /openai/deployments/{deployment}/chat/completions?api-version= with api-key", function()
      local lm = lm_for("azure/my gpt", {base_url = server.url, api_version = "2024-10-21"})
      local built = azure.build({model = "my gpt", api_version = "2024-10-21", base_url = server.url,
        api_key = "k", headers = {}}, {messages = {{role = "user", content = "x"}}})
      assert.are.equal(server.url .. "/openai/deployments/my%20gpt/chat/completions?api-version=2024-10-21",
        built.url)
      assert.are.equal("k", built.headers["api-key"])
      assert.is_nil(built.headers.Authorization)
      local r = lm:call("Hello from Azure")
      assert.matches("Mock reply to: Hello from Azure", r.text)
      local log = server:get_json("/__log").requests
      assert.are.equal("/openai/deployments/my%20gpt/chat/completions", log[1].path)
      assert.are.equal("api-key", log[1].auth)
      -- streams too
      local it, final = lm:stream("Stream from Azure")
      local pieces = {}
      for piece in it do pieces[#pieces + 1] = piece end
      assert.are.equal(final.text, table.concat(pieces))
      assert.matches("Stream from Azure", final.text)
    end)

    it("mockllm refuses Azure requests without api-version or with a bearer token", function()
      local function post(path, headers)
        headers["Content-Type"] = "application/json"
        return tide.request{url = server.url .. path, method = "POST", headers = headers, timeout = 10,
          body = cjson.encode{model = "m", messages = {{role = "user", content = "x"}}}}
      end
      local r = post("/openai/deployments/d/chat/completions", {["api-key"] = "k"})
      assert.are.equal(404, r.status)
      assert.matches("Resource not found", r.body, 1, true)
      r = post("/openai/deployments/d/chat/completions?api-version=2024-10-21", {Authorization = "Bearer k"})
      assert.are.equal(401, r.status)
      assert.matches("missing subscription key", r.body, 1, true)
      -- the path names the deployment: a body without `model` is fine there, not on /v1
      local body = cjson.encode{messages = {{role = "user", content = "no model field"}}}
      r = tide.request{url = server.url .. "/openai/deployments/d/chat/completions?api-version=2024-10-21",
        method = "POST", headers = {["api-key"] = "k"}, body = body, timeout = 10}
      assert.are.equal(200, r.status, r.body)
      r = tide.request{url = server.url .. "/v1/chat/completions", method = "POST",
        headers = {Authorization = "Bearer k"}, body = body, timeout = 10}
      assert.are.equal(400, r.status)
    end)
  end)
end)
