-- tide.prices: the dated table of $ per million input/output/cached tokens, its
-- lookup by model (snapshots included), and its use by tide.LM when no price is
-- given: calls against mockllm in the three wire formats, cached tokens (the
-- scenario's cached=N) billed at the cached price.
local tide = require "tide"
local prices = require "tide.prices"
local mockllm = require "support.mockllm"
local PROVIDERS = require("support.lm_server").PROVIDERS

describe("tide.prices", function()
  it("is dated and knows a common model of every provider", function()
    assert.matches("^%d%d%d%d%-%d%d%-%d%d$", prices.DATE)
    local models = {openai = "gpt-4o-mini", anthropic = "claude-sonnet-4-5", gemini = "gemini-2.5-flash",
      mistral = "mistral-large-latest", deepseek = "deepseek-chat", together_ai =
      "meta-llama/Llama-3.3-70B-Instruct-Turbo", fireworks_ai = "accounts/fireworks/models/llama-v3p1-8b-instruct",
      xai = "grok-4", cerebras = "llama3.1-8b", perplexity = "sonar-pro", groq = "llama-3.1-8b-instant"}
    for provider, model in pairs(models) do
      local p = prices.lookup(provider, model)
      assert.is_table(p, provider)
      assert.is_true(p.input > 0 and p.output > 0, provider)
    end
  end)

  it("finds snapshots by their model's name, never another model", function()
    assert.are.same({input = 2.50, output = 10.00, cached = 1.25}, prices.lookup("openai", "gpt-4o-2024-08-06"))
    assert.are.equal(0.15, prices.lookup("openai", "gpt-4o-mini-2024-07-18").input)
    assert.are.equal(0.80, prices.lookup("anthropic", "claude-3-5-haiku-20241022").input)
    assert.are.equal(1.10, prices.lookup("openai", "o3-mini").input)
    assert.is_nil(prices.lookup("openai", "o3-pro"))             -- not o3's price
    assert.is_nil(prices.lookup("openai", "gpt-4o-realtime"))
    assert.is_nil(prices.lookup("nobody", "gpt-4o"))
    -- resellers: the vendor's price by the vendor's name; Azure deployments named after a model
    assert.are.equal(0.15, prices.lookup("openrouter", "openai/gpt-4o-mini").input)
    assert.are.equal(0.30, prices.lookup("openrouter", "google/gemini-2.5-flash").input)
    assert.are.equal(2.00, prices.lookup("azure", "gpt-4.1").input)
  end)

  it("takes corrections and new models, and checks them", function()
    prices.set("openai", "my-finetune", {input = 3, output = 12})
    assert.are.same({input = 3, output = 12}, prices.lookup("openai", "my-finetune"))
    local copy = prices.lookup("openai", "my-finetune")
    copy.input = 99
    assert.are.equal(3, prices.lookup("openai", "my-finetune").input)   -- a copy was returned
    prices.set("openai", "my-finetune", false)
    assert.is_nil(prices.lookup("openai", "my-finetune"))
    local ok, err = pcall(prices.set, "openai", "x", {input = -1})
    assert.is_false(ok)
    assert.matches("prices_spec.lua:%d+: bad argument 'price.input' to 'prices.set'", err)
    ok, err = pcall(tide.LM, "openai/gpt-4o", {api_key = "k", price = {cached = "cheap"}})
    assert.matches("opts.price.cached", err, 1, true)
  end)

  it("costs cached input at the cached price, reasoning as output", function()
    local p = {input = 2, output = 8, cached = 0.5}
    assert.are.equal((600 * 2 + 400 * 0.5 + 100 * 8) / 1e6,
      prices.cost(p, {input = 1000, output = 100, cached = 400, reasoning = 60}))
    assert.are.equal((1000 * 2 + 100 * 8) / 1e6, prices.cost({input = 2, output = 8}, {input = 1000, output = 100, cached = 400}))
    assert.are.equal(0, prices.cost(nil, {input = 1}))
  end)
end)

describe("tide.LM's cost from the table", function()
  local server = mockllm.serve()

  local function lm_for(p, opts)
    opts = opts or {}
    opts.api_key = "sk-spec"
    opts.base_url = p.base(server)
    opts.cache = false
    return tide.LM(p.model, opts)
  end

  for _, p in ipairs(PROVIDERS) do
    it(p.name .. ": prices a call by the table, cached tokens at the cached price", function()
      local provider, model = p.model:match("^([^/]+)/(.+)$")
      local price = prices.lookup(provider, model)
      assert.is_table(price)
      local lm = lm_for(p, {headers = {["X-Mock-Scenario"] = "cached=4"}})
      local r = lm:call("How much does this cost, with a cached prefix?")
      assert.are.equal(4, r.usage.cached)
      local want = ((r.usage.input - 4) * price.input + 4 * price.cached + r.usage.output * price.output) / 1e6
      assert.near(want, r.cost, 1e-15)
      assert.is_true(r.cost > 0)
      assert.near(want, lm.usage.cost, 1e-15)
    end)
  end

  it("uses the caller's price over the table, and none with price = false", function()
    local p = PROVIDERS[1]
    local r = lm_for(p, {price = {input = 1e6, output = 0}}):call("my own price")
    assert.near(r.usage.input, r.cost, 1e-9)
    r = lm_for(p, {price = false}):call("no price at all")
    assert.are.equal(0, r.cost)
    r = tide.LM("openai_compatible/unknown-model", {base_url = server.url .. "/v1", api_key = "k", cache = false})
      :call("a model the table does not know")
    assert.are.equal(0, r.cost)
  end)
end)
