-- tide.providers.openai (and the OpenAI-compatible servers): build, parse, classify, stream.
local tide = require "tide"
local cjson = require "cjson"
local openai = require "tide.providers.openai"
local support = require "support.providers"
local raised, request, cfg_for = support.raised, support.request, support.cfg_for
local assert_usage, stream = support.assert_usage, support.stream

describe("openai provider", function()
  local cfg = cfg_for("openai/gpt-4o-mini",
    {headers = {["X-Extra"] = "1", ["content-type"] = "application/json; charset=utf-8"}})

  describe("build", function()
    it("posts to /chat/completions with a bearer key, extra headers last", function()
      local r = openai.build(cfg, request())
      assert.are.equal("https://api.openai.com/v1/chat/completions", r.url)
      assert.are.equal("Bearer sk-test", r.headers.Authorization)
      assert.are.equal("1", r.headers["X-Extra"])
      assert.are.equal("application/json; charset=utf-8", r.headers["content-type"])
      assert.is_nil(r.headers["Content-Type"])   -- replaced, not sent twice
      local b = cjson.decode(r.body)
      assert.are.equal("gpt-4o-mini", b.model)
      assert.are.equal(6, #b.messages)             -- system stays in the list
      assert.are.same({role = "system", content = "You are terse."}, b.messages[1])
      assert.is_nil(b.stream)
      assert.is_nil(b.stop)
    end)

    it("omits Authorization without a key", function()
      local c = cfg_for("ollama/llama3.2", {api_key = false})
      local r = openai.build(c, request())
      assert.is_nil(r.headers.Authorization)
      assert.are.equal("http://localhost:11434/v1/chat/completions", r.url)
    end)

    it("names max_tokens by model and places sampling fields", function()
      local b = cjson.decode(openai.build(cfg, request{max_tokens = 50, temperature = 0.5,
        top_p = 0.9, stop = "END", n = 2}).body)
      assert.are.equal(50, b.max_tokens)
      assert.is_nil(b.max_completion_tokens)
      assert.are.equal(0.5, b.temperature)
      assert.are.equal(0.9, b.top_p)
      assert.are.same({"END"}, b.stop)
      assert.are.equal(2, b.n)
      for _, model in ipairs{"o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"} do
        b = cjson.decode(openai.build(cfg_for("openai/" .. model), request{max_tokens = 50}).body)
        assert.are.equal(50, b.max_completion_tokens, model)
        assert.is_nil(b.max_tokens)
      end
    end)

    it("asks for usage when streaming", function()
      local b = cjson.decode(openai.build(cfg, request{stream = true}).body)
      assert.is_true(b.stream)
      assert.are.same({include_usage = true}, b.stream_options)
    end)

    it("sends response formats and merges extra fields", function()
      local schema = {type = "object", properties = {colour = {type = "string"}},
                      required = {"colour"}, additionalProperties = false}
      local b = cjson.decode(openai.build(cfg, request{
        response_format = {type = "json_schema", name = "colour", schema = schema, strict = true},
        extra = {seed = 7, response_format = {json_schema = {strict = false}}},
      }).body)
      assert.are.same({type = "json_schema", json_schema = {name = "colour", schema = schema, strict = false}},
        b.response_format)
      assert.are.equal(7, b.seed)
      b = cjson.decode(openai.build(cfg, request{response_format = {type = "json_object"}}).body)
      assert.are.same({type = "json_object"}, b.response_format)
    end)

    it("drops empty list keywords from a schema instead of sending {}", function()
      local b = openai.build(cfg, request{response_format = {type = "json_schema", name = "x",
        schema = {type = "object", properties = {a = {type = "string"}}, required = {}}}}).body
      assert.is_nil(b:find('"required"', 1, true))
    end)

    it("needs at least one message", function()
      assert.matches("needs at least one message", raised(openai.build, cfg, {messages = {}}))
    end)
  end)

  describe("parse", function()
    local OK = [[{
      "id": "chatcmpl-AbC123", "object": "chat.completion", "created": 1741570283,
      "model": "gpt-4o-mini-2024-07-18",
      "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Teal.", "refusal": null, "annotations": []},
        "logprobs": null, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 31, "completion_tokens": 3, "total_tokens": 34,
        "prompt_tokens_details": {"cached_tokens": 16},
        "completion_tokens_details": {"reasoning_tokens": 2}},
      "system_fingerprint": "fp_06737a9306"}]]

    it("normalises a completion", function()
      local r = openai.parse(200, {["x-request-id"] = "req_42"}, OK)
      assert.are.equal("Teal.", r.text)
      assert.are.same({"Teal."}, r.texts)
      assert.are.equal("stop", r.finish_reason)
      -- cached is part of input, reasoning part of output
      assert_usage(r.usage, 31, 3, 34, {cached = 16, reasoning = 2})
      assert.are.equal("gpt-4o-mini-2024-07-18", r.model)
      assert.are.equal("chatcmpl-AbC123", r.id)
      assert.are.equal("req_42", r.request_id)
      assert.are.equal("chatcmpl-AbC123", r.raw.id)
      -- raw's numbers are integers, its nulls tide.json.null
      assert.are.equal("integer", math.type(r.raw.usage.prompt_tokens))
      assert.are.equal("integer", math.type(r.raw.created))
      assert.are.equal(tide.json.null, r.raw.choices[1].logprobs)
    end)

    it("leaves cached and reasoning out when the server does not report them", function()
      local r = openai.parse(200, {}, [[{"model":"m","choices":[{"index":0,"message":{"role":"assistant",
        "content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}]])
      assert_usage(r.usage, 5, 1, 6)
      assert.is_nil(r.id)
      assert.is_nil(r.request_id)
    end)

    it("keeps every choice and maps finish reasons", function()
      local body = [[{"model":"m","choices":[
        {"index":0,"message":{"role":"assistant","content":"Cut off"},"finish_reason":"length"},
        {"index":1,"message":{"role":"assistant","content":"Second"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":5,"completion_tokens":8,"total_tokens":13}}]]
      local r = openai.parse(200, {}, body)
      assert.are.equal("Cut off", r.text)
      assert.are.same({"Cut off", "Second"}, r.texts)
      assert.are.equal("length", r.finish_reason)
      body = body:gsub('"length"', '"function_call"')
      assert.are.equal("tool_calls", openai.parse(200, {}, body).finish_reason)
      body = body:gsub('"function_call"', '"something_new"')
      assert.are.equal("other", openai.parse(200, {}, body).finish_reason)
    end)

    it("raises content_filter for a refusal or a filtered empty answer", function()
      local err = raised(openai.parse, 200, {}, [[{"model":"m","choices":[{"index":0,
        "message":{"role":"assistant","content":null,"refusal":"I can't help with that."},
        "finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}]])
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.are.equal("I can't help with that.", err.reason)
      err = raised(openai.parse, 200, {}, [[{"model":"m","choices":[{"index":0,
        "message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}]])
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.is_false(err.retryable)
    end)

    it("raises empty when the token limit came before any text", function()
      local err = raised(openai.parse, 200, {}, [[{"model":"o3-mini","choices":[{"index":0,
        "message":{"role":"assistant","content":""},"finish_reason":"length"}],
        "usage":{"prompt_tokens":20,"completion_tokens":100,"total_tokens":120,
        "completion_tokens_details":{"reasoning_tokens":100}}}]])
      assert.is_true(tide.is_error(err, "empty"))
      assert.are.equal("length", err.finish_reason)
      assert.are.equal("openai", err.provider)
    end)

    it("raises parse for bodies that are not a completion", function()
      local err = raised(openai.parse, 200, {}, '{"id":"chatcmpl-1","choices":[{"ind')
      assert.is_true(tide.is_error(err, "parse"))
      assert.matches("expected a chat completion JSON object", err.message, 1, true)
      assert.matches('{"id":"chatcmpl-1"', err.message, 1, true)
      assert.is_true(err.retryable)                    -- a truncated transfer
      err = raised(openai.parse, 200, {}, '{"object":"list","data":[]}')
      assert.is_true(tide.is_error(err, "parse"))
      assert.matches("choices", err.message)
      assert.is_false(err.retryable)
      err = raised(openai.parse, 200, {}, "<html>" .. ("x"):rep(500) .. "</html>")
      assert.is_true(#err.message < 300)
      assert.is_true(tide.is_error(raised(openai.parse, 200, {}, ""), "parse"))
    end)

    it("raises the classified error for an error body under 200", function()
      local err = raised(openai.parse, 200, {}, [[{"error":{"message":"The server had an error",
        "type":"server_error","param":null,"code":null}}]])
      assert.is_true(tide.is_error(err, "server"))
      assert.is_true(err.retryable)
    end)
  end)

  describe("classify", function()
    local function body(message, etype, code)
      return cjson.encode{error = {message = message, type = etype, param = cjson.null,
                                   code = code or cjson.null}}
    end

    it("maps every status family", function()
      local cases = {
        {400, "bad_request", false}, {401, "auth", false}, {403, "auth", false},
        {404, "not_found", false}, {408, "timeout", true}, {409, "server", true},
        {413, "bad_request", false}, {422, "bad_request", false}, {429, "rate_limit", true},
        {500, "server", true}, {502, "server", true}, {503, "server", true}, {529, "server", true},
      }
      for _, c in ipairs(cases) do
        local err = openai.classify(c[1], {}, body("boom " .. c[1], "invalid_request_error"))
        assert.is_true(tide.is_error(err, c[2]), c[1] .. " → " .. tostring(err.kind))
        assert.are.equal(c[3], err.retryable)
        assert.are.equal(c[1], err.status)
        assert.are.equal("openai", err.provider)
        assert.are.equal("boom " .. c[1] .. " (HTTP " .. c[1] .. " from openai)", err.message)
      end
    end)

    it("reads the retry delay and keeps the start of the body", function()
      local raw = body("Rate limit reached for gpt-4o-mini", "requests", "rate_limit_exceeded")
      local err = openai.classify(429, {["retry-after"] = "3"}, raw)
      assert.are.equal(3, err.retry_after)
      assert.are.equal("rate_limit_exceeded", err.code)
      assert.are.equal(raw, err.body)
      assert.are.equal(0.5, openai.classify(429, {["retry-after-ms"] = "500"}, raw).retry_after)
      assert.is_nil(openai.classify(500, {}, raw).retry_after)
      assert.are.equal(2000, #openai.classify(500, {}, ("x"):rep(5000)).body)
    end)

    it("knows a context overflow and a spent quota", function()
      local err = openai.classify(400, {}, body("This model's maximum context length is 128000 tokens. "
        .. "However, your messages resulted in 130412 tokens.", "invalid_request_error", "context_length_exceeded"))
      assert.is_true(tide.is_error(err, "context_window"))
      assert.is_false(err.retryable)
      -- vLLM says it in the message only
      err = openai.classify(400, {}, cjson.encode{object = "error", message = "This model's maximum "
        .. "context length is 4096 tokens. However, you requested 5000 tokens.", type = "BadRequestError", code = 400})
      assert.is_true(tide.is_error(err, "context_window"))
      err = openai.classify(429, {["x-request-id"] = "req_quota"},
        body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"))
      assert.is_true(tide.is_error(err, "quota"))
      assert.is_false(err.retryable)
      assert.are.equal("req_quota", err.request_id)
    end)

    it("copes with bodies that are not OpenAI's", function()
      local err = openai.classify(502, {}, "<html><body>Bad Gateway</body></html>")
      assert.is_true(tide.is_error(err, "server"))
      assert.matches("Bad Gateway", err.message)
      err = openai.classify(422, {}, '{"detail":"field required"}')
      assert.are.equal("field required (HTTP 422 from openai)", err.message)
      assert.are.equal("no error message (HTTP 503 from openai)", openai.classify(503, {}, "").message)
    end)
  end)

  describe("stream_event", function()
    local function chunk(delta, finish)
      return {data = cjson.encode{id = "chatcmpl-9", object = "chat.completion.chunk",
        created = 1, model = "gpt-4o-mini-2024-07-18",
        choices = {{index = 0, delta = delta, logprobs = cjson.null, finish_reason = finish or cjson.null}},
        usage = cjson.null}}
    end

    it("concatenates deltas and keeps finish, usage and model", function()
      local text, state, done = stream(openai, {
        chunk({role = "assistant", content = ""}),
        chunk({content = "Hel"}),
        chunk({content = "lo"}),
        chunk({}, "stop"),
        {data = [[{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18",]]
          .. [["choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}]]},
        {data = "[DONE]"},
      })
      assert.is_true(done)
      assert.are.equal("Hello", text)
      assert.are.equal("stop", state.finish_reason)
      assert_usage(state.usage, 12, 2, 14)
      assert.are.equal("gpt-4o-mini-2024-07-18", state.model)
      assert.are.equal("chatcmpl-9", state.id)
      openai.stream_end(state)   -- text arrived: nothing raised
    end)

    it("raises error events and malformed chunks", function()
      local err = raised(openai.stream_event, {}, {data = [[{"error":{"message":"The server is overloaded",
        "type":"server_error","param":null,"code":null}}]]})
      assert.is_true(tide.is_error(err, "server"))
      assert.is_true(err.retryable)
      assert.matches("stream error event from openai", err.message, 1, true)
      err = raised(openai.stream_event, {},
        {data = [[{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}]]})
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.is_true(tide.is_error(raised(openai.stream_event, {}, {data = "{not json"}), "parse"))
      -- compatible servers: no code at all, or the status as a number
      err = raised(openai.stream_event, {}, {data = '{"error":{"message":"worker died"}}'})
      assert.is_true(tide.is_error(err, "server"))
      assert.are.equal(500, err.status)
      err = raised(openai.stream_event, {}, {data = '{"error":{"message":"too long","code":"400"}}'})
      assert.is_true(tide.is_error(err, "bad_request"))
    end)

    it("stream_end raises empty or content_filter when no text came", function()
      local _, state = stream(openai,
        {chunk({role = "assistant", content = ""}), chunk({}, "length"), {data = "[DONE]"}})
      local err = raised(openai.stream_end, state)
      assert.is_true(tide.is_error(err, "empty"))
      assert.are.equal("length", err.finish_reason)
      _, state = stream(openai, {chunk({refusal = "I can't"}), chunk({refusal = " help."}), chunk({}, "stop")})
      err = raised(openai.stream_end, state)
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.are.equal("I can't help.", err.reason)
    end)
  end)
end)
