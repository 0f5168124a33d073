-- tide.providers.gemini: build, parse, classify, stream.
local tide = require "tide"
local cjson = require "cjson"
local gemini = require "tide.providers.gemini"
local support = require "support.providers"
local raised, request, cfg_for = support.raised, support.request, support.cfg_for
local assert_usage, stream = support.assert_usage, support.stream

describe("gemini provider", function()
  local cfg = cfg_for("gemini/gemini-2.5-flash")

  describe("build", function()
    it("posts to generateContent with the key in a header, never in the URL", function()
      local r = gemini.build(cfg, request())
      assert.are.equal("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
        r.url)
      assert.are.equal("sk-test", r.headers["x-goog-api-key"])
      assert.is_nil(r.url:find("sk-test", 1, true))
      assert.is_nil(r.url:find("key=", 1, true))
      r = gemini.build(cfg, request{stream = true})
      assert.matches(":streamGenerateContent%?alt=sse$", r.url)
      assert.is_nil(cjson.decode(r.body).stream)
      r = gemini.build(cfg_for("gemini/models/gemini-2.0-flash"), request())
      assert.matches("/v1beta/models/gemini%-2%.0%-flash:generateContent$", r.url)
    end)

    it("puts system text in systemInstruction and uses the model role", function()
      local b = cjson.decode(gemini.build(cfg, request()).body)
      assert.are.same({parts = {{text = "You are terse."}, {text = "Answer in English."}}}, b.systemInstruction)
      assert.are.same({
        {role = "user", parts = {{text = "Name a colour."}}},
        {role = "model", parts = {{text = "Red."}}},
        {role = "user", parts = {{text = "Another."}, {text = "Just one word."}}},
      }, b.contents)
      assert.is_nil(b.generationConfig)
    end)

    it("fills generationConfig", function()
      local b = cjson.decode(gemini.build(cfg, request{temperature = 0.2, max_tokens = 100,
        top_p = 0.8, stop = "END", n = 2, response_format = {type = "json_object"}}).body)
      assert.are.same({temperature = 0.2, maxOutputTokens = 100, topP = 0.8, stopSequences = {"END"},
                       candidateCount = 2, responseMimeType = "application/json"}, b.generationConfig)
      local schema = {type = "object", properties = {colour = {type = "string", enum = {"red", "teal"}}}}
      b = cjson.decode(gemini.build(cfg, request{response_format = {type = "json_schema", name = "c", schema = schema},
        extra = {generationConfig = {thinkingConfig = {thinkingBudget = 0}},
                 safetySettings = {{category = "HARM_CATEGORY_HARASSMENT", threshold = "BLOCK_NONE"}}}}).body)
      assert.are.same({responseMimeType = "application/json", responseJsonSchema = schema,
                       thinkingConfig = {thinkingBudget = 0}}, b.generationConfig)
      assert.are.equal("BLOCK_NONE", b.safetySettings[1].threshold)
    end)
  end)

  describe("parse", function()
    local OK = [[{
      "candidates": [{"content": {"parts": [{"text": "thinking...", "thought": true}, {"text": "Te"}, {"text": "al."}],
        "role": "model"}, "finishReason": "STOP", "index": 0}],
      "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 40,
        "thoughtsTokenCount": 25, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}]},
      "modelVersion": "gemini-2.5-flash", "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"}]]

    it("normalises a response, skipping thought parts and counting thinking as output", function()
      local r = gemini.parse(200, {["x-request-id"] = "not gemini's"}, OK)
      assert.are.equal("Teal.", r.text)
      assert.are.equal("stop", r.finish_reason)
      -- thinking is part of the output, and its count is reasoning
      assert_usage(r.usage, 12, 28, 40, {reasoning = 25})
      assert.are.equal("gemini-2.5-flash", r.model)
      assert.are.equal("mAitaLmkHPPlz7IPvtfUqQ4", r.id)
      assert.is_nil(r.request_id)   -- the Gemini API sends no request id header
      local cached = gemini.parse(200, {}, (OK:gsub('"thoughtsTokenCount": 25,',
        '"thoughtsTokenCount": 25, "cachedContentTokenCount": 8,')))
      assert_usage(cached.usage, 12, 28, 40, {cached = 8, reasoning = 25})
    end)

    it("maps finish reasons", function()
      local cases = {STOP = "stop", MAX_TOKENS = "length", SAFETY = "content_filter",
                     RECITATION = "content_filter", PROHIBITED_CONTENT = "content_filter",
                     SPII = "content_filter", BLOCKLIST = "content_filter", IMAGE_SAFETY = "content_filter",
                     MALFORMED_FUNCTION_CALL = "other", OTHER = "other", LANGUAGE = "other"}
      for wire, ours in pairs(cases) do
        assert.are.equal(ours, gemini.parse(200, {}, (OK:gsub('"STOP"', '"' .. wire .. '"'))).finish_reason, wire)
      end
    end)

    it("raises content_filter for a blocked prompt or a blocked candidate", function()
      local err = raised(gemini.parse, 200, {}, [[{"promptFeedback": {"blockReason": "SAFETY",
        "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": "gemini-2.5-flash"}]])
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.are.equal("SAFETY", err.reason)
      err = raised(gemini.parse, 200, {}, [[{"candidates": [{"finishReason": "PROHIBITED_CONTENT", "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}]])
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.are.equal("PROHIBITED_CONTENT", err.reason)
    end)

    it("raises empty for MAX_TOKENS with no parts", function()
      local err = raised(gemini.parse, 200, {}, [[{"candidates": [{"content": {"role": "model"},
        "finishReason": "MAX_TOKENS", "index": 0}], "usageMetadata": {"promptTokenCount": 8,
        "totalTokenCount": 108, "thoughtsTokenCount": 100}, "modelVersion": "gemini-2.5-pro"}]])
      assert.is_true(tide.is_error(err, "empty"))
      assert.are.equal("length", err.finish_reason)
    end)

    it("raises parse for bodies that are not a response", function()
      local err = raised(gemini.parse, 200, {}, '{"models": []}')
      assert.is_true(tide.is_error(err, "parse"))
      assert.matches("candidates", err.message)
      assert.is_true(tide.is_error(raised(gemini.parse, 200, {}, '[{"candidates": '), "parse"))
    end)
  end)

  describe("classify", function()
    local function body(code, status, message, details)
      return cjson.encode{error = {code = code, message = message, status = status, details = details}}
    end

    it("maps every status family", function()
      local cases = {
        {400, "INVALID_ARGUMENT", "bad_request", false}, {401, "UNAUTHENTICATED", "auth", false},
        {403, "PERMISSION_DENIED", "auth", false}, {404, "NOT_FOUND", "not_found", false},
        {429, "RESOURCE_EXHAUSTED", "rate_limit", true}, {500, "INTERNAL", "server", true},
        {503, "UNAVAILABLE", "server", true}, {504, "DEADLINE_EXCEEDED", "server", true},
      }
      for _, c in ipairs(cases) do
        local err = gemini.classify(c[1], {}, body(c[1], c[2], "m" .. c[1]))
        assert.is_true(tide.is_error(err, c[3]), c[1] .. " → " .. tostring(err.kind))
        assert.are.equal(c[4], err.retryable)
        assert.are.equal("m" .. c[1] .. " (HTTP " .. c[1] .. " from gemini)", err.message)
      end
    end)

    it("reads the retry delay from RetryInfo", function()
      local details = {
        {["@type"] = "type.googleapis.com/google.rpc.QuotaFailure",
         violations = {{quotaMetric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"}}},
        {["@type"] = "type.googleapis.com/google.rpc.Help",
         links = {{description = "quota", url = "https://ai.google.dev"}}},
        {["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "38s"},
      }
      local err = gemini.classify(429, {}, body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", details))
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.are.equal(38, err.retry_after)
      details[3].retryDelay = "0.250s"
      assert.are.equal(0.25, gemini.classify(429, {}, body(429, "RESOURCE_EXHAUSTED", "q", details)).retry_after)
      -- a header wins over the body
      assert.are.equal(4, gemini.classify(429, {["retry-after"] = "4"},
        body(429, "RESOURCE_EXHAUSTED", "q", details)).retry_after)
    end)

    it("copes with bodies that are not Google's", function()
      local err = gemini.classify(502, {}, "<html><title>502 Bad Gateway</title></html>")
      assert.is_true(tide.is_error(err, "server"))
      assert.matches("502 Bad Gateway", err.message)
      err = gemini.classify(429, {}, '{"error":{"message":"slow"}}')
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.is_nil(err.retry_after)
    end)

    it("knows an invalid key and an input over the context", function()
      local err = gemini.classify(400, {}, body(400, "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        {{["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "API_KEY_INVALID",
          domain = "googleapis.com"}}))
      assert.is_true(tide.is_error(err, "auth"))
      err = gemini.classify(400, {}, body(400, "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."))
      assert.is_true(tide.is_error(err, "context_window"))
    end)
  end)

  describe("stream_event", function()
    local function chunk(t)
      return {data = cjson.encode(t)}
    end
    local function part(text, finish, usage)
      return chunk{
        candidates = {{content = {parts = {{text = text}}, role = "model"}, finishReason = finish, index = 0}},
        usageMetadata = usage, modelVersion = "gemini-2.5-flash", responseId = "resp-1"}
    end

    it("concatenates parts and keeps the last usage and finish; never says done", function()
      local text, state, done = stream(gemini, {
        part("The ", nil, {promptTokenCount = 9, totalTokenCount = 9}),
        part("sky", nil, {promptTokenCount = 9, candidatesTokenCount = 2, totalTokenCount = 11}),
        part(" is blue.", "STOP", {promptTokenCount = 9, candidatesTokenCount = 5, totalTokenCount = 14}),
      })
      assert.is_false(done)
      assert.are.equal("The sky is blue.", text)
      assert.are.equal("stop", state.finish_reason)
      assert_usage(state.usage, 9, 5, 14)
      assert.are.equal("gemini-2.5-flash", state.model)
      assert.are.equal("resp-1", state.id)
      gemini.stream_end(state)
    end)

    it("raises error events, blocked prompts and malformed chunks", function()
      local err = raised(gemini.stream_event, {},
        chunk{error = {code = 503, message = "The model is overloaded.", status = "UNAVAILABLE"}})
      assert.is_true(tide.is_error(err, "server"))
      assert.are.equal(503, err.status)
      assert.is_true(err.retryable)
      err = raised(gemini.stream_event, {}, chunk{error = {code = 429, status = "RESOURCE_EXHAUSTED", message = "q",
        details = {{["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "2s"}}}})
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.are.equal(2, err.retry_after)
      err = raised(gemini.stream_event, {}, chunk{promptFeedback = {blockReason = "OTHER"}})
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.is_true(tide.is_error(raised(gemini.stream_event, {}, {data = "{\"candidates\":"}), "parse"))
    end)

    it("stream_end raises content_filter for a candidate blocked before any text", function()
      local _, state = stream(gemini, {chunk{candidates = {{finishReason = "SAFETY", index = 0}}}})
      local err = raised(gemini.stream_end, state)
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.are.equal("SAFETY", err.reason)
    end)
  end)
end)
