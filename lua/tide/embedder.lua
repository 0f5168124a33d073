--- tide.Embedder: texts to vectors, batched, in parallel, cached.
--
--   local embed = tide.Embedder("openai/text-embedding-3-small", {dimensions = 256})
--   embed("a text")                 --> {0.01, -0.2, ...} (a Lua array of floats)
--   embed{"one", "two", "three"}    --> {vector, vector, vector}, in order
--
-- OpenAI's POST {base}/embeddings (and every OpenAI-compatible server's:
-- mistral/, together_ai/, openai_compatible/ with base_url, ...) and Gemini's
-- POST {base}/v1beta/models/{model}:batchEmbedContents.  Texts are split into
-- batches of batch_size (one request each), sent together under the
-- embedder's gate (max_parallel_requests), each retried like an LM call.  Each
-- text's vector is cached on its own (the LM cache, lua/tide/cache.lua: memory
-- and disk), so a corpus embedded twice, or in another grouping, is sent once;
-- identical texts in one call are sent once.
local core = require "tide.core"
local providers = require "tide.providers"
local common = require "tide.providers.common"
local cache_mod = require "tide.cache"
local lm = require "tide.lm"
local redact = require "tide.redact"
local check = require "tide.check"
local tls = require "tide.tls"
local prices = require "tide.prices"

local M = {}

local Embedder = {}
Embedder.__index = Embedder
M.Embedder = Embedder

local private = setmetatable({}, {__mode = "k"})   -- embedder → {provider, cfg (key), gate, ...}

-- Each API's most inputs in one request, and the batch size used by default.
local LIMITS = {openai = 2048, gemini = 100}
local DEFAULT_BATCH = {openai = 256, gemini = 100}

---------------------------------------------------------------------------
-- the wire formats

local WIRE = {}

WIRE.openai = {
  build = function(cfg, texts, opts)
    local body = {model = cfg.model, input = texts, encoding_format = "float",
                  dimensions = opts.dimensions}
    return common.request(cfg, {}, "/embeddings", body, "Authorization", "Bearer ")
  end,
  -- → vectors in input order, input tokens
  parse = function(raw, count)
    local out = {}
    for _, d in ipairs(type(raw.data) == "table" and raw.data or {}) do
      local i = math.tointeger(common.get(d, "index"))
      if i and i >= 0 and i < count then out[i + 1] = common.get(d, "embedding") end
    end
    return out, common.int(common.get(raw, "usage", "prompt_tokens"))
  end,
  expected = "an embedding list with data[i].embedding",
}

WIRE.gemini = {
  build = function(cfg, texts, opts)
    local model = cfg.model:gsub("^models/", "")
    local requests = {}
    for i, t in ipairs(texts) do
      requests[i] = {model = "models/" .. model, content = {parts = {{text = t}}},
                     outputDimensionality = opts.dimensions, taskType = opts.task_type}
    end
    return common.request(cfg, {}, "/v1beta/models/" .. common.percent(model) .. ":batchEmbedContents",
      {requests = requests}, "x-goog-api-key")
  end,
  parse = function(raw)
    local out = {}
    for i, e in ipairs(type(raw.embeddings) == "table" and raw.embeddings or {}) do
      out[i] = common.get(e, "values")
    end
    return out, nil   -- batchEmbedContents reports no token counts
  end,
  expected = "a batch of embeddings with embeddings[i].values",
}

-- A vector as the API sent it: a non-empty list of finite numbers.
local function is_vector(v)
  if type(v) ~= "table" or #v == 0 then return false end
  for _, x in ipairs(v) do
    if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then return false end
  end
  return true
end

---------------------------------------------------------------------------
-- construction

local function check_options(opts)
  check.number("Embedder", "opts.batch_size", opts.batch_size, {integer = true, min = 1}, true)
  check.number("Embedder", "opts.dimensions", opts.dimensions, {integer = true, min = 1}, true)
  check.number("Embedder", "opts.max_parallel_requests", opts.max_parallel_requests,
    {integer = true, min = 1, max = 1000000}, true)
  check.number("Embedder", "opts.num_retries", opts.num_retries, {integer = true, min = 0, max = 100}, true)
  check.number("Embedder", "opts.timeout", opts.timeout, {above = 0, max = 86400}, true)
  check.type("Embedder", "opts.task_type", opts.task_type, "string", true)
  check.type("Embedder", "opts.secrets", opts.secrets, "table", true)
  for i, v in ipairs(opts.secrets or {}) do check.type("Embedder", "opts.secrets[" .. i .. "]", v, "string") end
  if opts.price then prices.check("Embedder", "opts.price", opts.price) end
end

--- tide.Embedder(model, opts): opts = {batch_size, dimensions, task_type
-- (Gemini's taskType), max_parallel_requests (8), num_retries (3), timeout,
-- cache (false, or a tide cache), price, secrets (more strings kept out of
-- errors), and the LM's api_key, base_url, headers and TLS options}.
function M.new(model, opts)
  check.type("Embedder", 1, model, "string")
  opts = check.type("Embedder", 2, opts, "table", true) or {}
  if opts.api ~= nil then check.fail("Embedder", "opts.api", "an embedder has no api option") end
  local provider, cfg = providers.resolve(model, opts)
  local wire = WIRE[provider.name]
  if wire == nil or cfg.api_version then
    check.fail("Embedder", 1, string.format("%s has no embeddings API tide speaks (OpenAI's "
      .. "/embeddings, Gemini's batchEmbedContents)", cfg.provider))
  end
  check_options(opts)
  local limit = LIMITS[provider.name]
  local batch = opts.batch_size and math.tointeger(opts.batch_size) or DEFAULT_BATCH[provider.name]
  if batch > limit then
    check.fail("Embedder", "opts.batch_size", string.format("%d: %s takes at most %d texts "
      .. "in one request", batch, cfg.provider, limit))
  end
  local self = setmetatable({
    model = model, provider = cfg.provider, batch_size = batch,
    dimensions = opts.dimensions and math.tointeger(opts.dimensions),
    task_type = opts.task_type,
    num_retries = opts.num_retries and math.tointeger(opts.num_retries) or 3,
    timeout = opts.timeout or 600,
    price = opts.price or (opts.price == nil and prices.lookup(cfg.provider, cfg.model)) or nil,
    usage = {input = 0, calls = 0, texts = 0, cache_hits = 0, cost = 0},
  }, Embedder)
  local secrets = {cfg.api_key}
  for name, value in pairs(cfg.headers) do
    local lower = name:lower()
    if lower == "authorization" or lower:find("key", 1, true) then
      secrets[#secrets + 1] = value
      secrets[#secrets + 1] = value:match("^%a+%s+(%S+)%s*$")   -- the token after "Bearer "
    end
  end
  for _, s in ipairs(opts.secrets or {}) do secrets[#secrets + 1] = s end
  local p = {provider = provider, wire = wire, cfg = cfg, secrets = redact.usable(secrets),
             gate = core.semaphore(math.tointeger(opts.max_parallel_requests or 8)),
             tls = tls.options("Embedder", opts, cfg.base_url)}
  redact.register(p.secrets)
  if opts.cache == false then
    p.cache = false
  elseif type(opts.cache) == "table" then
    p.cache = opts.cache
  end
  private[self] = p
  return self
end

function Embedder:__tostring()
  return string.format("tide.Embedder(%q, %d texts, %d calls)", self.model, self.usage.texts,
    self.usage.calls)
end

---------------------------------------------------------------------------
-- one batch

-- One try of one batch: the vectors, and the input tokens when reported.
local function attempt(self, p, texts)
  local built = p.wire.build(p.cfg, texts, self)
  local req = tls.apply({url = built.url, method = "POST", headers = built.headers,
    body = built.body, timeout = self.timeout}, p.tls)
  local r = core.request(req)
  if r.status < 200 or r.status >= 300 then
    local err = p.provider.classify(r.status, r.headers, redact.text(r.body, p.secrets))
    err.provider = self.provider
    error(err, 0)
  end
  local raw = common.decode_object(self.provider, r.status, r.body, p.wire.expected, true)
  if type(raw.error) == "table" then
    -- an error body under a 2xx: the provider's answer reading raises what it stands for
    local _, err = pcall(p.provider.parse, r.status, r.headers, redact.text(r.body, p.secrets))
    if type(err) == "table" then err.provider = self.provider end
    error(err, 0)
  end
  local vectors, tokens = p.wire.parse(raw, #texts)
  for i = 1, #texts do
    if not is_vector(vectors[i]) then
      common.parse_error(self.provider, r.status, r.body, string.format(
        "%s (text %d of %d has no vector of numbers)", p.wire.expected, i, #texts), true)
    end
  end
  return vectors, tokens
end

-- One batch, under the gate, retried.
local function send(self, p, texts)
  local _ <close> = p.gate:acquire()
  local ok, vectors, tokens = pcall(core.retry, {tries = self.num_retries + 1}, attempt, self, p, texts)
  if not ok then error(redact.value(lm.transport_error(self, vectors), p.secrets), 0) end
  return vectors, tokens
end

---------------------------------------------------------------------------
-- embedding

local function cache_of(p)
  if p.cache == false then return nil end
  return p.cache or lm.default_cache()
end

-- what tells an embedding's cache key from an LM answer's (a name, not a literal:
-- spec/errors_spec.lua reads `kind = "..."` in the library as an error kind raised)
local EMBEDDING_KEY = "embedding"

local function key_of(self, p, text)
  return cache_mod.key{kind = EMBEDDING_KEY, provider = p.cfg.provider, model = p.cfg.model,
    base_url = p.cfg.base_url, dimensions = self.dimensions or false,
    task_type = self.task_type or false, text = text}
end

local function check_texts(texts)
  if texts == "" then check.fail("embed", 1, "an empty text: the APIs refuse it") end
  if type(texts) == "string" then return {texts}, true end
  check.type("embed", 1, texts, "table")
  for i, t in ipairs(texts) do
    if type(t) ~= "string" then
      check.fail("embed", 1, string.format("texts[%d]: string expected, got %s", i, type(t)))
    end
    if t == "" then
      check.fail("embed", 1, string.format("texts[%d] is empty: the APIs refuse an empty text", i))
    end
  end
  return texts, false
end

--- embedder:embed(texts) → {vector, ...} in the order of texts (a string: its
-- vector).  Raises the typed error of a batch that failed after its retries.
function Embedder:embed(texts)
  local list, one = check_texts(texts)
  local p = private[self]
  local cache = cache_of(p)
  local out, unsent, where = {}, {}, {}   -- unsent: the texts to send; where[text] = their positions
  local keys = {}   -- an unsent text's cache key, made once for the get and the put
  for i, text in ipairs(list) do
    if where[text] then
      local w = where[text]
      w[#w + 1] = i
    else
      local key = cache and key_of(self, p, text)
      local hit = key and cache:get(key)
      local v = hit and common.get(hit, "raw", "embedding")
      if v then
        out[i] = table.move(v, 1, #v, 1, {})   -- the caller's own: the cache keeps its copy
        self.usage.cache_hits = self.usage.cache_hits + 1
      else
        where[text], keys[text] = {i}, key
        unsent[#unsent + 1] = text
      end
    end
  end
  local batches = {}
  for s = 1, #unsent, self.batch_size do
    batches[#batches + 1] = table.move(unsent, s, math.min(s + self.batch_size - 1, #unsent), 1, {})
  end
  local results = core.map(batches, function(batch)
    local vectors, tokens = send(self, p, batch)
    return {vectors = vectors, tokens = tokens}
  end)
  for b, batch in ipairs(batches) do
    local r = results[b]
    local u = self.usage
    u.calls = u.calls + 1
    u.input = u.input + (r.tokens or 0)
    u.cost = u.cost + prices.cost(self.price, {input = r.tokens or 0, output = 0})
    for j, text in ipairs(batch) do
      local v = r.vectors[j]
      for n, i in ipairs(where[text]) do out[i] = n == 1 and v or table.move(v, 1, #v, 1, {}) end
      if cache then
        cache:put(keys[text], {text = "", model = p.cfg.model,
                                          raw = {embedding = table.move(v, 1, #v, 1, {})}})
      end
    end
  end
  self.usage.texts = self.usage.texts + #list
  if one then return out[1] end
  return out
end

--- embedder(text) → its vector; embedder{texts} → their vectors.
function Embedder:__call(texts)
  return self:embed(texts)
end

return M
