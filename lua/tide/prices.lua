--- tide.prices: what a call costs when the LM was given no `price`.
--
-- Dollars per million tokens: input, output, and cached (input tokens read
-- from the provider's prompt cache; absent: billed as input).  Reasoning
-- tokens are output tokens and billed as such.  Standard (not batch, not
-- priority) rates of each provider's public price page, for prompts under the
-- long-context tiers (Gemini 2.5 Pro's 200K); per-request fees (Perplexity's
-- search) are not counted.
--
--   tide.prices.lookup("openai", "gpt-4o-mini-2024-07-18")  --> {input = 0.15, ...}
--   tide.prices.set("openai", "my-finetune", {input = 0.3, output = 1.2})
--
-- A model is found by its exact name, else by the longest name in the table
-- of which it is a snapshot (gpt-4o-2024-08-06 costs what gpt-4o costs; the
-- name followed by -DIGITS, @, :, -latest or -preview).  Prices change: tide.LM(..., {price = {...}}) or set()
-- overrides this table.
local check = require "tide.check"

local M = {}

--- When these prices were read from the providers' pages.
M.DATE = "2026-12-04"

local TABLE = {
  openai = {
    ["gpt-5"] = {input = 1.25, output = 10.00, cached = 0.125},
    ["gpt-5-mini"] = {input = 0.25, output = 2.00, cached = 0.025},
    ["gpt-5-nano"] = {input = 0.05, output = 0.40, cached = 0.005},
    ["gpt-4.1"] = {input = 2.00, output = 8.00, cached = 0.50},
    ["gpt-4.1-mini"] = {input = 0.40, output = 1.60, cached = 0.10},
    ["gpt-4.1-nano"] = {input = 0.10, output = 0.40, cached = 0.025},
    ["gpt-4o"] = {input = 2.50, output = 10.00, cached = 1.25},
    ["gpt-4o-mini"] = {input = 0.15, output = 0.60, cached = 0.075},
    ["gpt-4-turbo"] = {input = 10.00, output = 30.00},
    ["gpt-3.5-turbo"] = {input = 0.50, output = 1.50},
    ["o1"] = {input = 15.00, output = 60.00, cached = 7.50},
    ["o3"] = {input = 2.00, output = 8.00, cached = 0.50},
    ["o3-mini"] = {input = 1.10, output = 4.40, cached = 0.55},
    ["o4-mini"] = {input = 1.10, output = 4.40, cached = 0.275},
    ["text-embedding-3-small"] = {input = 0.02, output = 0},
    ["text-embedding-3-large"] = {input = 0.13, output = 0},
    ["text-embedding-ada-002"] = {input = 0.10, output = 0},
  },
  anthropic = {
    ["claude-opus-4-5"] = {input = 5.00, output = 25.00, cached = 0.50},
    ["claude-opus-4-1"] = {input = 15.00, output = 75.00, cached = 1.50},
    ["claude-opus-4"] = {input = 15.00, output = 75.00, cached = 1.50},
    ["claude-sonnet-4-5"] = {input = 3.00, output = 15.00, cached = 0.30},
    ["claude-sonnet-4"] = {input = 3.00, output = 15.00, cached = 0.30},
    ["claude-3-7-sonnet"] = {input = 3.00, output = 15.00, cached = 0.30},
    ["claude-3-5-sonnet"] = {input = 3.00, output = 15.00, cached = 0.30},
    ["claude-haiku-4-5"] = {input = 1.00, output = 5.00, cached = 0.10},
    ["claude-3-5-haiku"] = {input = 0.80, output = 4.00, cached = 0.08},
    ["claude-3-haiku"] = {input = 0.25, output = 1.25, cached = 0.03},
  },
  gemini = {
    ["gemini-2.5-pro"] = {input = 1.25, output = 10.00, cached = 0.125},
    ["gemini-2.5-flash"] = {input = 0.30, output = 2.50, cached = 0.03},
    ["gemini-2.5-flash-lite"] = {input = 0.10, output = 0.40, cached = 0.01},
    ["gemini-2.0-flash"] = {input = 0.10, output = 0.40, cached = 0.025},
    ["gemini-2.0-flash-lite"] = {input = 0.075, output = 0.30},
    ["gemini-1.5-pro"] = {input = 1.25, output = 5.00},
    ["gemini-1.5-flash"] = {input = 0.075, output = 0.30},
    ["gemini-embedding-001"] = {input = 0.15, output = 0},
    ["text-embedding-004"] = {input = 0, output = 0},
  },
  mistral = {
    ["mistral-large-latest"] = {input = 2.00, output = 6.00},
    ["mistral-medium-latest"] = {input = 0.40, output = 2.00},
    ["mistral-small-latest"] = {input = 0.10, output = 0.30},
    ["codestral-latest"] = {input = 0.30, output = 0.90},
    ["open-mistral-nemo"] = {input = 0.15, output = 0.15},
    ["ministral-8b-latest"] = {input = 0.10, output = 0.10},
    ["mistral-embed"] = {input = 0.10, output = 0},
  },
  deepseek = {   -- DeepSeek-V3.2: one price for both modes
    ["deepseek-chat"] = {input = 0.28, output = 0.42, cached = 0.028},
    ["deepseek-reasoner"] = {input = 0.28, output = 0.42, cached = 0.028},
  },
  together_ai = {
    ["meta-llama/Llama-3.3-70B-Instruct-Turbo"] = {input = 0.88, output = 0.88},
    ["meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"] = {input = 0.18, output = 0.18},
    ["deepseek-ai/DeepSeek-V3"] = {input = 1.25, output = 1.25},
    ["Qwen/Qwen2.5-72B-Instruct-Turbo"] = {input = 1.20, output = 1.20},
  },
  fireworks_ai = {
    ["accounts/fireworks/models/llama-v3p3-70b-instruct"] = {input = 0.90, output = 0.90},
    ["accounts/fireworks/models/llama-v3p1-8b-instruct"] = {input = 0.20, output = 0.20},
    ["accounts/fireworks/models/deepseek-v3"] = {input = 0.90, output = 0.90},
  },
  xai = {
    ["grok-4"] = {input = 3.00, output = 15.00, cached = 0.75},
    ["grok-4-fast"] = {input = 0.20, output = 0.50, cached = 0.05},
    ["grok-3"] = {input = 3.00, output = 15.00, cached = 0.75},
    ["grok-3-mini"] = {input = 0.30, output = 0.50, cached = 0.075},
  },
  cerebras = {
    ["llama3.1-8b"] = {input = 0.10, output = 0.10},
    ["llama-3.3-70b"] = {input = 0.85, output = 1.20},
    ["gpt-oss-120b"] = {input = 0.25, output = 0.69},
    ["qwen-3-32b"] = {input = 0.40, output = 0.80},
  },
  perplexity = {
    ["sonar"] = {input = 1.00, output = 1.00},
    ["sonar-pro"] = {input = 3.00, output = 15.00},
    ["sonar-reasoning"] = {input = 1.00, output = 5.00},
    ["sonar-reasoning-pro"] = {input = 2.00, output = 8.00},
  },
  groq = {
    ["llama-3.1-8b-instant"] = {input = 0.05, output = 0.08},
    ["llama-3.3-70b-versatile"] = {input = 0.59, output = 0.79},
  },
}

-- Hosts that serve other vendors' models under the vendor's name
-- ("openai/gpt-4o-mini" on OpenRouter), and Azure, whose deployments are
-- often named after their model: the vendor's own price, when it is known.
local RESOLD = {openrouter = true, azure = true}
local VENDOR = {google = "gemini", ["meta-llama"] = false}

-- What may follow a model's name in a snapshot of it.
local function snapshot(rest)
  return rest == "" or rest:match("^%-%d") ~= nil or rest:match("^[@:]") ~= nil
    or rest:match("^%-latest") ~= nil or rest:match("^%-preview") ~= nil
end

local function longest_prefix(models, model)
  local best, best_len = nil, 0
  for name, price in pairs(models) do
    if #name > best_len and model:sub(1, #name) == name then
      -- a snapshot of the name: a date or version after it ("gpt-4o-2024-08-06",
      -- "claude-3-5-haiku@20241022"), never another model ("o3-pro" is not o3)
      if snapshot(model:sub(#name + 1)) then best, best_len = price, #name end
    end
  end
  return best
end

local function in_table(provider, model)
  local models = TABLE[provider]
  if models == nil then return nil end
  return models[model] or longest_prefix(models, model)
end

--- lookup(provider, model) → {input, output, cached?} in $ per 1M tokens, or
-- nil when the table does not know the model.  A copy: changing it changes
-- nothing here.
function M.lookup(provider, model)
  check.type("prices.lookup", 1, provider, "string")
  check.type("prices.lookup", 2, model, "string")
  local p = in_table(provider, model)
  if p == nil and RESOLD[provider] then
    local vendor, name = model:match("^([^/]+)/(.+)$")
    if vendor then
      local v = VENDOR[vendor]
      if v == nil then v = vendor end
      p = v and in_table(v, name)
    else
      p = in_table("openai", model)
    end
  end
  if p == nil then return nil end
  return {input = p.input, output = p.output, cached = p.cached}
end

--- Checks a price table as tide.LM's `price` option and set() take it.
function M.check(fname, what, price)
  check.type(fname, what, price, "table")
  for _, field in ipairs{"input", "output", "cached"} do
    check.number(fname, what .. "." .. field, price[field], {min = 0}, true)
  end
  return price
end

--- set(provider, model, price): this process's price for a model (a new one,
-- or a correction); false removes the model from the table.
function M.set(provider, model, price)
  check.type("prices.set", 1, provider, "string")
  check.type("prices.set", 2, model, "string")
  if price ~= false then
    check.type("prices.set", 3, price, "table")
    M.check("prices.set", "price", price)
  end
  TABLE[provider] = TABLE[provider] or {}
  TABLE[provider][model] = price and {input = price.input or 0, output = price.output or 0,
                                      cached = price.cached} or nil
end

--- cost(price, usage) → dollars: cached input tokens at the cached price
-- (input's when there is none), the rest of the input at input's, the output
-- (reasoning included) at output's.
function M.cost(price, usage)
  if not price or not usage then return 0 end
  local input, cached = usage.input or 0, usage.cached or 0
  if cached > input then cached = input end
  local cached_price = price.cached or price.input or 0
  return ((input - cached) * (price.input or 0) + cached * cached_price
    + (usage.output or 0) * (price.output or 0)) / 1e6
end

return M
