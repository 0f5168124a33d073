-- The fields and headers real clients read, as mockllm sends them: OpenAI's
-- fingerprint, service tier, cached and reasoning tokens, annotations and rate-limit
-- headers; Anthropic's cache counts, service tier and request ids; Gemini's thinking
-- tokens, per-modality details, responseId and avgLogprobs; Date, Server, content
-- types; the quota errors; request ids in /__log; an aborted request's null status.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local wire = require "support.routes"

local tokens = wire.tokens

describe("mockllm's fields and headers", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  -- → the response, and its body decoded (nil for a stream)
  local function post(name, opts)
    local r = wire.post(server, name, opts)
    local ok, body = pcall(cjson.decode, r.body)
    return r, ok and body or nil
  end

  describe("OpenAI", function()
    it("sends system_fingerprint, service_tier, annotations and the usage details", function()
      local _, b = post("openai")
      assert.are.equal("fp_mock0001", b.system_fingerprint)
      assert.are.equal("default", b.service_tier)
      local msg = b.choices[1].message
      assert.are.equal(0, #msg.annotations)
      assert.are.equal("table", type(msg.annotations))
      local u = b.usage
      assert.are.same({cached_tokens = 0, audio_tokens = 0}, u.prompt_tokens_details)
      assert.are.equal(0, u.completion_tokens_details.reasoning_tokens)
      assert.are.equal(tokens(msg.content), u.completion_tokens)
    end)

    it("counts reasoning tokens for reasoning models, inside completion_tokens", function()
      for _, model in ipairs{"o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-nano"} do
        local _, b = post("openai", {fields = {model = model}})
        local u, text = b.usage, b.choices[1].message.content
        local reasoning = u.completion_tokens_details.reasoning_tokens
        assert.is_true(reasoning > 0, model)
        assert.are.equal(tokens(text) + reasoning, u.completion_tokens, model)
        assert.are.equal(u.prompt_tokens + u.completion_tokens, u.total_tokens, model)
      end
      local _, b = post("openai", {fields = {model = "gpt-4o"}})
      assert.are.equal(0, b.usage.completion_tokens_details.reasoning_tokens)
    end)

    it("counts cached input tokens with cached=N, within prompt_tokens", function()
      local _, plain = post("openai")
      local _, b = post("openai", {scenario = "cached=5"})
      assert.are.equal(5, b.usage.prompt_tokens_details.cached_tokens)
      assert.are.equal(plain.usage.prompt_tokens, b.usage.prompt_tokens)
      _, b = post("openai", {scenario = "cached=100000"})   -- never more than the prompt
      assert.are.equal(b.usage.prompt_tokens, b.usage.prompt_tokens_details.cached_tokens)
    end)

    it("sends the request id, version, processing time and rate-limit headers", function()
      local r1 = post("openai", {scenario = "latency=30"})
      local r2 = post("openai")
      local h = r1.headers
      assert.matches("^req_%x+$", h["x-request-id"])
      assert.are.equal(36, #h["x-request-id"])
      assert.are_not.equal(h["x-request-id"], r2.headers["x-request-id"])
      assert.are.equal("30", h["openai-processing-ms"])
      assert.are.equal("2020-10-01", h["openai-version"])
      for _, k in ipairs{"limit-requests", "limit-tokens", "remaining-requests", "remaining-tokens"} do
        assert.matches("^%d+$", h["x-ratelimit-" .. k], k)
      end
      assert.matches("^%d+m?s$", h["x-ratelimit-reset-requests"])
      assert.matches("^%d+m?s$", h["x-ratelimit-reset-tokens"])
      assert.are.equal("cloudflare", h["server"])
      assert.are.equal("application/json", h["content-type"])
    end)

    it("streams chunks with the fingerprint and tier, as text/event-stream; charset=utf-8", function()
      local r = post("openai", {fields = {stream = true}})
      assert.are.equal("text/event-stream; charset=utf-8", r.headers["content-type"])
      local evs = wire.sse_events(r.body)
      local first = cjson.decode(evs[1].data)
      assert.are.same({"fp_mock0001", "default"}, {first.system_fingerprint, first.service_tier})
    end)

    it("answers error=insufficient_quota with OpenAI's 429, not a rate limit", function()
      local r, b = post("openai", {scenario = "error=insufficient_quota"})
      assert.are.equal(429, r.status)
      assert.are.same({"insufficient_quota", "insufficient_quota"}, {b.error.type, b.error.code})
      assert.matches("^You exceeded your current quota", b.error.message)
    end)
  end)

  describe("Anthropic", function()
    it("sends the cache counts and service_tier, input_tokens leaving the cached ones out", function()
      local _, plain = post("anthropic")
      assert.are.same({0, 0, "standard"}, {plain.usage.cache_creation_input_tokens,
        plain.usage.cache_read_input_tokens, plain.usage.service_tier})
      local _, b = post("anthropic", {scenario = "cached=4"})
      assert.are.equal(4, b.usage.cache_read_input_tokens)
      assert.are.equal(plain.usage.input_tokens - 4, b.usage.input_tokens)
    end)

    it("streams message_delta with the cumulative usage, as the real stream does", function()
      local r = post("anthropic", {fields = {stream = true}, scenario = "cached=4"})
      assert.are.equal("text/event-stream; charset=utf-8", r.headers["content-type"])
      local delta
      for _, ev in ipairs(wire.sse_events(r.body)) do
        if ev.event == "message_delta" then delta = cjson.decode(ev.data) end
      end
      local _, plain = post("anthropic", {scenario = "cached=4"})
      assert.are.same({input_tokens = plain.usage.input_tokens, cache_creation_input_tokens = 0,
        cache_read_input_tokens = 4, output_tokens = plain.usage.output_tokens}, delta.usage)
    end)

    it("sends request-id and the rate-limit headers, and request_id in error bodies", function()
      local r = post("anthropic")
      assert.matches("^req_", r.headers["request-id"])
      for _, k in ipairs{"requests", "tokens", "input-tokens", "output-tokens"} do
        assert.matches("^%d+$", r.headers["anthropic-ratelimit-" .. k .. "-limit"], k)
        assert.matches("^%d+$", r.headers["anthropic-ratelimit-" .. k .. "-remaining"], k)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", r.headers["anthropic-ratelimit-" .. k .. "-reset"])
      end
      local e, eb = post("anthropic", {scenario = "status=529"})
      assert.are.equal(529, e.status)
      assert.are.equal(e.headers["request-id"], eb.request_id)
      assert.are_not.equal(r.headers["request-id"], eb.request_id)
    end)

    it("answers error=insufficient_quota with its billing error", function()
      local r, b = post("anthropic", {scenario = "error=insufficient_quota"})
      assert.are.same({400, "billing_error"}, {r.status, b.error.type})
      assert.matches("credit balance is too low", b.error.message)
    end)
  end)

  describe("Gemini", function()
    it("sends responseId, modelVersion, avgLogprobs and per-modality details", function()
      local r, b = post("gemini")
      assert.are.equal("application/json; charset=UTF-8", r.headers["content-type"])
      assert.are.equal("scaffolding on HTTPServer2", r.headers["server"])
      assert.is_string(b.responseId)
      assert.are.equal("gemini-mock", b.modelVersion)
      local lp = b.candidates[1].avgLogprobs
      assert.is_true(type(lp) == "number" and lp < 0 and lp > -1)
      local u = b.usageMetadata
      assert.are.same({{modality = "TEXT", tokenCount = u.promptTokenCount}}, u.promptTokensDetails)
      assert.are.same({{modality = "TEXT", tokenCount = u.candidatesTokenCount}}, u.candidatesTokensDetails)
      assert.is_nil(u.thoughtsTokenCount)
      assert.are.equal(u.promptTokenCount + u.candidatesTokenCount, u.totalTokenCount)
    end)

    it("counts thoughts for thinking models, in totalTokenCount", function()
      local res = tide.request{url = server.url .. "/v1beta/models/gemini-2.5-flash:generateContent",
        body = cjson.encode(wire.routes.gemini.body), headers = wire.headers("gemini")}
      local u = cjson.decode(res.body).usageMetadata
      assert.is_true(u.thoughtsTokenCount > 0)
      assert.are.equal(u.promptTokenCount + u.candidatesTokenCount + u.thoughtsTokenCount, u.totalTokenCount)
      local _, c = post("gemini", {scenario = "cached=3"})
      assert.are.equal(3, c.usageMetadata.cachedContentTokenCount)
    end)

    it("streams SSE as text/event-stream, each event with its responseId", function()
      local r = post("gemini", {stream_path = true})
      assert.are.equal("text/event-stream", r.headers["content-type"])
      local evs = wire.sse_events(r.body)
      assert.is_true(#evs >= 2)
      local first = cjson.decode(evs[1].data).responseId
      assert.is_string(first)
      for _, ev in ipairs(evs) do assert.are.equal(first, cjson.decode(ev.data).responseId) end
    end)

    it("gives a 429 QuotaFailure and Help details, and RetryInfo last when there is a delay", function()
      local function types(b)
        local l = {}
        for i, d in ipairs(b.error.details) do l[i] = d["@type"]:match("rpc%.(%a+)$") end
        return l
      end
      local _, b = post("gemini", {scenario = "status=429"})
      assert.are.same({"QuotaFailure", "Help"}, types(b))
      _, b = post("gemini", {scenario = "error=insufficient_quota"})
      assert.are.same({"RESOURCE_EXHAUSTED", 429}, {b.error.status, b.error.code})
      assert.are.same({"QuotaFailure", "Help"}, types(b))
    end)
  end)

  describe("every answer", function()
    it("has a Date and a Server header", function()
      for _, name in ipairs{"openai", "anthropic", "gemini"} do
        local r = post(name)
        assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", r.headers["date"], name)
        assert.is_string(r.headers["server"], name)
      end
      assert.matches("GMT$", tide.request{url = server.url .. "/health"}.headers["date"])
    end)

    it("is logged with the request id its headers carried", function()
      server:reset()
      local a = post("openai")
      local b = post("anthropic", {scenario = "status=500"})
      local log = server:get_json("/__log").requests
      assert.are.same({a.headers["x-request-id"], b.headers["request-id"]},
        {log[1].request_id, log[2].request_id})
    end)

    it("is logged with status null when the client went away before it", function()
      server:reset()
      local ok = pcall(tide.request, {url = server.url .. wire.routes.openai.path, timeout = 0.2,
        body = cjson.encode(wire.routes.openai.body),
        headers = wire.headers("openai", {["X-Mock-Scenario"] = "latency=5000"})})
      assert.is_false(ok)
      server:wait_for(function(s) return s.aborted == 1 end)
      local e = server:get_json("/__log").requests[1]
      assert.are.equal(cjson.null, e.status)
    end)
  end)
end)
