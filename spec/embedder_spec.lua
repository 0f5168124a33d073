-- tide.Embedder and tide.retrieve.knn against mockllm's /v1/embeddings and
-- :batchEmbedContents over real sockets.  mockllm checks each request as the
-- real API does (model, input, dimensions; Gemini's per-request model and its
-- batch limit) and answers deterministic hashed-bag-of-words vectors, so texts
-- sharing words are near: rankings are exact.
local tide = require "tide"
local mockllm = require "support.mockllm"
local cache_mod = require "tide.cache"

local function cosine(a, b)
  local dot, na, nb = 0, 0, 0
  for i = 1, #a do
    dot, na, nb = dot + a[i] * b[i], na + a[i] * a[i], nb + b[i] * b[i]
  end
  return dot / math.sqrt(na * nb)
end

local CORPUS = {
  "The Eiffel Tower stands in Paris, the capital of France.",
  "Lima is the capital of Peru, on the Pacific coast.",
  "Photosynthesis turns light, water and carbon dioxide into sugar.",
  "The Nile flows north through Egypt into the Mediterranean.",
  "Oslo is the capital of Norway, at the head of a fjord.",
}

describe("tide.Embedder", function()
  local server = mockllm.serve()

  local function embedder(model, opts, scenario)
    opts = opts or {}
    opts.api_key = "sk-spec-embeddings-key"
    opts.base_url = opts.base_url or (model:match("^gemini/") and server.url or server.url .. "/v1")
    if opts.cache == nil then opts.cache = cache_mod.new{memory = 1000, dir = false} end
    if opts.num_retries == nil then opts.num_retries = 0 end
    if scenario then opts.headers = {["X-Mock-Scenario"] = scenario} end
    return tide.Embedder(model, opts)
  end

  local function paths()
    local out = {}
    for _, e in ipairs(server:get_json("/__log").requests) do out[#out + 1] = e.path end
    return out
  end

  describe("OpenAI's /embeddings", function()
    it("returns unit vectors of floats in the texts' order, near for texts sharing words", function()
      local e = embedder("openai/text-embedding-3-small", {dimensions = 64})
      local v = e:embed(CORPUS)
      assert.are.equal(#CORPUS, #v)
      for _, vec in ipairs(v) do
        assert.are.equal(64, #vec)
        assert.are.equal("float", math.type(vec[1]))
        assert.near(1, cosine(vec, vec), 1e-5)
      end
      local q = e("What is the capital of Peru?")
      assert.are.equal(64, #q)
      -- Lima's sentence shares "capital", "of", "peru", "the", "is" with the question
      local best, best_i = -2, nil
      for i, vec in ipairs(v) do
        local c = cosine(q, vec)
        if c > best then best, best_i = c, i end
      end
      assert.are.equal(2, best_i)
      assert.are.same({"/v1/embeddings", "/v1/embeddings"}, paths())
    end)

    it("sends batch_size texts per request, in parallel under max_parallel_requests", function()
      local e = embedder("openai/text-embedding-3-small", {dimensions = 16, batch_size = 2,
        max_parallel_requests = 2}, "latency=150")
      local texts = {}
      for i = 1, 7 do texts[i] = "text number " .. i end
      local v = e:embed(texts)
      assert.are.equal(7, #v)
      local stats = server:stats()
      assert.are.equal(4, stats.requests)          -- 2 + 2 + 2 + 1
      assert.are.equal(2, stats.peak_in_flight)    -- the gate held the other two back
      assert.are.same({input = e.usage.input, calls = 4, texts = 7, cache_hits = 0},
        {input = e.usage.input, calls = e.usage.calls, texts = e.usage.texts, cache_hits = e.usage.cache_hits})
      assert.is_true(e.usage.input > 0)
    end)

    it("caches each text: a second pass, or a new grouping, sends only what is new", function()
      local cache = cache_mod.new{memory = 1000, dir = false}
      local e = embedder("openai/text-embedding-3-small", {dimensions = 32, cache = cache})
      local first = e:embed{CORPUS[1], CORPUS[2], CORPUS[1]}   -- a duplicate is sent once
      assert.are.same(first[1], first[3])
      first[3][1] = 42   -- the caller's own copy: the cache is not changed
      local again = e:embed{CORPUS[2], CORPUS[1], CORPUS[3]}
      assert.are.same(first[1], again[2])
      assert.are_not.equal(42, again[2][1])
      assert.are.same(first[2], again[1])
      assert.are.equal(2, server:stats().requests)
      assert.are.equal(2, e.usage.cache_hits)
      -- another embedder of the same model and size reads the same entries
      local other = embedder("openai/text-embedding-3-small", {dimensions = 32, cache = cache})
      other:embed{CORPUS[3]}
      assert.are.equal(2, server:stats().requests)
      -- a different size is a different vector
      embedder("openai/text-embedding-3-small", {dimensions = 16, cache = cache}):embed{CORPUS[3]}
      assert.are.equal(3, server:stats().requests)
    end)

    it("prices the input tokens from the table", function()
      local e = embedder("openai/text-embedding-3-small", {dimensions = 8})
      e:embed(CORPUS)
      assert.near(e.usage.input * 0.02 / 1e6, e.usage.cost, 1e-18)
      assert.is_true(e.usage.cost > 0)
    end)

    it("speaks to any OpenAI-compatible server", function()
      local e = tide.Embedder("openai_compatible/nomic-embed-text", {base_url = server.url .. "/v1",
        api_key = "sk-local", cache = false})
      local v = e("a local model")
      assert.are.equal(1536, #v)
      assert.are.same({"/v1/embeddings"}, paths())
    end)

    it("retries a server error, then raises typed errors with the key redacted", function()
      local e = embedder("openai/text-embedding-3-small", {num_retries = 2},
        "fail_first=1;status=503;key=emb-retry")
      assert.are.equal(1536, #e("retried once"))
      assert.are.equal(2, server:stats().requests)
      local leaky = embedder("openai/text-embedding-3-small", {secrets = {"spec-embeddings"}}, "echo_key=1")
      local ok, err = pcall(leaky.embed, leaky, {"quote my key"})
      assert.is_false(ok)
      assert.are.equal("auth", err.kind)
      assert.are.equal("openai", err.provider)
      assert.matches("Incorrect API key", err.message, 1, true)
      assert.is_nil(err.message:find("sk-spec-embeddings-key", 1, true))
      assert.is_nil(tostring(err.body):find("sk-spec-embeddings-key", 1, true))
      assert.is_nil(tostring(err.body):find("spec-embeddings", 1, true))   -- opts.secrets too
    end)

    it("a body without vectors is a parse error naming the text", function()
      local e = embedder("openai/text-embedding-3-small", nil, "fault=error_body;status=400")
      local ok, err = pcall(e.embed, e, {"x"})
      assert.is_false(ok)
      assert.are.equal("bad_request", err.kind)
    end)
  end)

  describe("Gemini's batchEmbedContents", function()
    it("embeds with the model named in every request, at outputDimensionality", function()
      local e = embedder("gemini/text-embedding-004", {dimensions = 48, task_type = "RETRIEVAL_DOCUMENT"})
      local v = e:embed(CORPUS)
      assert.are.equal(#CORPUS, #v)
      assert.are.equal(48, #v[1])
      assert.are.same({"/v1beta/models/text-embedding-004:batchEmbedContents"}, paths())
      local log = server:get_json("/__log").requests
      assert.are.equal("x-goog-api-key", log[1].auth)
      -- the same text, the same vector as OpenAI's route gives at that size (one hash)
      local o = embedder("openai/text-embedding-3-small", {dimensions = 48})
      assert.are.same(o(CORPUS[1]), v[1])
    end)

    it("splits a corpus into batches of at most 100 and refuses a larger batch_size", function()
      local e = embedder("gemini/text-embedding-004", {dimensions = 8})
      local texts = {}
      for i = 1, 230 do texts[i] = "line " .. i end
      assert.are.equal(230, #e:embed(texts))
      assert.are.equal(3, server:stats().requests)
      local ok, err = pcall(tide.Embedder, "gemini/text-embedding-004", {api_key = "k", batch_size = 101})
      assert.is_false(ok)
      assert.matches("embedder_spec.lua:%d+: bad argument 'opts.batch_size' to 'Embedder' %(101: " ..
        "gemini takes at most 100 texts in one request%)", err)
    end)
  end)

  it("raises misuse for what no API takes", function()
    local e = embedder("openai/text-embedding-3-small")
    local ok, err = pcall(e.embed, e, {"fine", ""})
    assert.matches("texts%[2%] is empty", err)
    ok, err = pcall(e.embed, e, {"fine", 3})
    assert.matches("texts%[2%]: string expected, got number", err)
    ok, err = pcall(tide.Embedder, "anthropic/claude-3-5-haiku", {api_key = "k"})
    assert.is_false(ok)
    assert.matches("anthropic has no embeddings API", err, 1, true)
    ok, err = pcall(tide.Embedder, "openai/text-embedding-3-small", {api_key = "k", dimensions = 0})
    assert.matches("opts.dimensions", err, 1, true)
    assert.are.equal(0, server:stats().requests)
  end)
end)

describe("tide.retrieve.knn", function()
  local server = mockllm.serve()

  local function embedder()
    return tide.Embedder("openai/text-embedding-3-small", {api_key = "k", base_url = server.url .. "/v1",
      dimensions = 128, cache = cache_mod.new{memory = 1000, dir = false}})
  end

  it("ranks a corpus by cosine similarity, embedding it once", function()
    local knn = tide.retrieve.knn(embedder(), CORPUS)
    local hits = knn:search("Which city is the capital of Norway?", 2)
    assert.are.equal(2, #hits)
    assert.are.equal(5, hits[1].index)
    assert.are.equal(CORPUS[5], hits[1].item)
    assert.is_true(hits[1].score > hits[2].score)
    assert.is_true(hits[1].score <= 1 + 1e-9)
    knn:search("Where does the Nile flow?", 1)
    -- the corpus once, then one request per query
    assert.are.equal(3, server:stats().requests)
    assert.are.same({CORPUS[4]}, knn("Where does the Nile flow?", 1))
  end)

  it("finds few-shot demos among Examples by their input fields, as DSPy's KNN", function()
    local trainset = {
      tide.Example{question = "What is the capital of Peru?", answer = "Lima"},
      tide.Example{question = "How does photosynthesis work?", answer = "Light to sugar."},
      tide.Example{question = "What is the capital of France?", answer = "Paris"},
    }
    local knn = tide.retrieve.knn(embedder(), trainset, {fields = {"question"}})
    local demos = knn("What is the capital of Peru today?", 2)
    assert.are.equal("Lima", demos[1].answer)
    assert.are.equal("Paris", demos[2].answer)
  end)

  it("raises misuse for a corpus it cannot embed", function()
    local ok, err = pcall(tide.retrieve.knn, embedder(), {{question = "x"}})
    assert.is_false(ok)
    assert.matches("corpus%[1%] is a table: strings, or tables with opts.fields or opts.text, expected", err)
    ok, err = pcall(tide.retrieve.knn, {}, CORPUS)
    assert.matches("a tide.Embedder expected", err, 1, true)
    ok, err = pcall(tide.retrieve.knn, embedder(), {})
    assert.matches("an empty corpus", err, 1, true)
  end)
end)
