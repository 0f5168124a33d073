-- tide.providers: resolve turns "provider/model" and the environment into a provider and its config.
local providers = require "tide.providers"
local openai = require "tide.providers.openai"
local anthropic = require "tide.providers.anthropic"
local gemini = require "tide.providers.gemini"
local support = require "support.providers"
local env_of, raised, cfg_for = support.env_of, support.raised, support.cfg_for

describe("providers.resolve", function()
  it("splits provider/model and takes the key and URL from the environment", function()
    local p, cfg = providers.resolve("openai/gpt-4o-mini", {env = env_of{OPENAI_API_KEY = "sk-o"}})
    assert.are.equal(openai, p)
    assert.are.same({provider = "openai", model = "gpt-4o-mini", base_url = "https://api.openai.com/v1",
                     api_key = "sk-o", headers = {}}, cfg)
    p, cfg = providers.resolve("anthropic/claude-sonnet-4-5", {env = env_of{ANTHROPIC_API_KEY = "sk-a"}})
    assert.are.equal(anthropic, p)
    assert.are.equal("https://api.anthropic.com", cfg.base_url)
    assert.are.equal("sk-a", cfg.api_key)
  end)

  it("keeps slashes in the model part", function()
    local p, cfg = providers.resolve("openrouter/meta-llama/llama-3-8b",
      {env = env_of{OPENROUTER_API_KEY = "or-key"}})
    assert.are.equal(openai, p)
    assert.are.equal("meta-llama/llama-3-8b", cfg.model)
    assert.are.equal("openrouter", cfg.provider)
    assert.are.equal("https://openrouter.ai/api/v1", cfg.base_url)
    assert.are.equal("or-key", cfg.api_key)
  end)

  it("tries GEMINI_API_KEY, then GOOGLE_API_KEY; google is an alias", function()
    local p, cfg = providers.resolve("google/gemini-2.5-flash",
      {env = env_of{GOOGLE_API_KEY = "g2", GEMINI_API_KEY = ""}})
    assert.are.equal(gemini, p)
    assert.are.equal("gemini", cfg.provider)
    assert.are.equal("g2", cfg.api_key)
    assert.are.equal("https://generativelanguage.googleapis.com", cfg.base_url)
    cfg = select(2, providers.resolve("gemini/x", {env = env_of{GOOGLE_API_KEY = "g2", GEMINI_API_KEY = "g1"}}))
    assert.are.equal("g1", cfg.api_key)
  end)

  it("takes base_url and api_key from opts before the environment, without a trailing /", function()
    local env = env_of{OPENAI_API_KEY = "env-key", OPENAI_BASE_URL = "http://proxy:1/v1/"}
    local cfg = select(2, providers.resolve("openai/m", {env = env}))
    assert.are.equal("http://proxy:1/v1", cfg.base_url)
    cfg = select(2, providers.resolve("openai/m", {env = env, base_url = "http://mine/v1/", api_key = "k"}))
    assert.are.equal("http://mine/v1", cfg.base_url)
    assert.are.equal("k", cfg.api_key)
    cfg = select(2, providers.resolve("anthropic/m",
      {env = env_of{ANTHROPIC_API_KEY = "a", ANTHROPIC_BASE_URL = "http://a"}}))
    assert.are.equal("http://a", cfg.base_url)
    cfg = select(2, providers.resolve("gemini/m", {env = env_of{GEMINI_API_KEY = "g", GEMINI_BASE_URL = "http://g/"}}))
    assert.are.equal("http://g", cfg.base_url)
  end)

  it("knows the OpenAI-compatible shortcuts", function()
    local p, cfg = providers.resolve("ollama/llama3.2", {env = env_of{}})
    assert.are.equal(openai, p)
    assert.are.equal("http://localhost:11434/v1", cfg.base_url)
    assert.is_nil(cfg.api_key)
    cfg = select(2, providers.resolve("groq/llama-3.1-8b-instant", {env = env_of{GROQ_API_KEY = "gq"}}))
    assert.are.equal("https://api.groq.com/openai/v1", cfg.base_url)
    assert.are.equal("gq", cfg.api_key)
    for _, prefix in ipairs{"vllm", "hosted_vllm", "openai_compatible"} do
      p, cfg = providers.resolve(prefix .. "/Qwen/Qwen3-8B", {env = env_of{}, base_url = "http://gpu:8000/v1"})
      assert.are.equal(openai, p)
      assert.are.equal("Qwen/Qwen3-8B", cfg.model)
      assert.is_nil(cfg.api_key)
      assert.matches("needs base_url", raised(providers.resolve, prefix .. "/m", {env = env_of{}}))
    end
    cfg = select(2, providers.resolve("vllm/m", {env = env_of{OPENAI_API_KEY = "o"}, base_url = "http://h/v1"}))
    assert.are.equal("o", cfg.api_key)
  end)

  it("names the variable when a key is missing", function()
    assert.matches("tide.LM: no API key for openai: set OPENAI_API_KEY or pass api_key",
      raised(providers.resolve, "openai/gpt-4o", {env = env_of{}}), 1, true)
    assert.matches("set GEMINI_API_KEY or GOOGLE_API_KEY or pass api_key",
      raised(providers.resolve, "gemini/x", {env = env_of{}}), 1, true)
    assert.matches("set GROQ_API_KEY", raised(providers.resolve, "groq/x", {env = env_of{}}), 1, true)
  end)

  it("rejects unknown providers and model strings without one", function()
    local err = raised(providers.resolve, "mistrall/large", {env = env_of{}})
    assert.matches("unknown provider 'mistrall' in 'mistrall/large'; known: anthropic, azure, cerebras", err, 1, true)
    assert.matches("write provider/model", raised(providers.resolve, "gpt-4o", {env = env_of{}}))
    assert.matches("bad argument #1 to 'LM' (string expected, got nil)", raised(providers.resolve, nil), 1, true)
  end)

  it("copies opts.headers into cfg", function()
    local h = {["X-Team"] = "a"}
    local cfg = cfg_for("openai/m", {headers = h})
    assert.are.same(h, cfg.headers)
    assert.are_not.equal(h, cfg.headers)
  end)
end)
