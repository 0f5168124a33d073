local tide = require "tide"
local cjson = require "cjson"
local providers = require "tide.providers"
local common = require "tide.providers.common"
local openai = require "tide.providers.openai"
local anthropic = require "tide.providers.anthropic"
local gemini = require "tide.providers.gemini"

-- A fake environment for resolve.
local function env_of(t)
  return function(name) return t[name] end
end

-- The error a call raises (it must raise).
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function is_int(x)
  return math.type(x) == "integer"
end

local function assert_usage(u, input, output, total)
  assert.are.same({input = input, output = output, total = total}, u)
  assert.is_true(is_int(u.input) and is_int(u.output) and is_int(u.total))
end

local CHAT = {
  messages = {
    {role = "system", content = "You are terse."},
    {role = "system", content = "Answer in English."},
    {role = "user", content = "Name a colour."},
    {role = "assistant", content = "Red."},
    {role = "user", content = "Another."},
    {role = "user", content = "Just one word."},
  },
}

local function request(fields)
  local req = {}
  for k, v in pairs(CHAT) do req[k] = v end
  for k, v in pairs(fields or {}) do req[k] = v end
  return req
end

local function cfg_for(model, opts)
  local o = {api_key = "sk-test", env = env_of{}}
  for k, v in pairs(opts or {}) do o[k] = v end
  return select(2, providers.resolve(model, o))
end

-- Runs a list of SSE events through a provider; returns the text and the state.
local function stream(provider, events)
  local state, out, done = {}, {}, false
  for _, ev in ipairs(events) do
    assert.is_false(done, "an event after the end marker")
    local delta
    delta, done = provider.stream_event(state, ev)
    if delta then out[#out + 1] = delta end
  end
  return table.concat(out), state, done
end

-------------------------------------------------------------------------------
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
    local err = raised(providers.resolve, "mistral/large", {env = env_of{}})
    assert.matches("unknown provider 'mistral' in 'mistral/large'; known: anthropic, gemini", err, 1, true)
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

-------------------------------------------------------------------------------
describe("common helpers", function()
  it("normalises counts to integers", function()
    assert.is_true(is_int(common.int(85.0)))
    assert.are.equal(0, common.int(cjson.null))
    assert.are.equal(0, common.int(nil))
    assert_usage(common.usage(3.0, 4.0), 3, 4, 7)
  end)

  it("drops counts that are not finite, non-negative integers, and says so", function()
    for _, bad in ipairs{1 / 0, -1 / 0, 0 / 0, -1e20, -1, 12.5, "12", true, 2^60} do
      local n = common.int(bad)
      assert.is_true(n ~= n, tostring(bad))   -- NaN: it stays NaN through a sum
      local u = common.usage(bad, 4.0, bad)
      assert.are.equal(0, u.input, tostring(bad))
      assert.are.equal(4, u.total)
      assert.are.equal("integer", math.type(u.input))
      assert.matches("counted as 0: input, total", u.note, 1, true)
    end
    assert.is_nil(common.usage(3.0, 4.0).note)
    assert.are.equal(0, common.int(-0.0))
  end)

  it("reads a JSON body after a UTF-8 byte-order mark", function()
    assert.are.same({a = 1}, common.decode("\239\187\191{\"a\":1}"))
    assert.is_nil(common.decode("\239\187{\"a\":1}"))   -- half a mark is not one
    local r = openai.parse(200, {}, "\239\187\191" .. cjson.encode{
      choices = {{message = {content = "hi"}, finish_reason = "stop"}},
      usage = {prompt_tokens = 1, completion_tokens = 2}})
    assert.are.equal("hi", r.text)
  end)

  it("parses HTTP dates in GMT whatever the local zone", function()
    assert.are.equal(784111777, common.http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.are.equal(784111777, common.http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.are.equal(784111777, common.http_date("Sun Nov  6 08:49:37 1994"))
    assert.are.equal(951782400, common.http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
    assert.is_nil(common.http_date("soon"))
  end)

  it("reads Retry-After as seconds, an HTTP date or milliseconds, never negative", function()
    local now = common.http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    assert.are.equal(2, common.retry_after({["retry-after"] = "2"}, now))
    assert.are.equal(30, common.retry_after({["retry-after"] = "Wed, 21 Oct 2015 07:28:30 GMT"}, now))
    assert.are.equal(0, common.retry_after({["retry-after"] = "Wed, 21 Oct 2015 07:27:00 GMT"}, now))
    assert.are.equal(0, common.retry_after({["retry-after"] = "-5"}, now))
    assert.are.equal(0.25, common.retry_after({["retry-after-ms"] = "250", ["retry-after"] = "1"}, now))
    assert.is_nil(common.retry_after({["retry-after"] = "later"}, now))
    assert.is_nil(common.retry_after({}, now))
  end)

  it("reads protobuf durations", function()
    assert.are.equal(2, common.duration("2s"))
    assert.are.equal(1.5, common.duration("1.5s"))
    assert.are.equal(0.25, common.duration("0.250s"))
    assert.is_nil(common.duration("2m"))
  end)
end)

-------------------------------------------------------------------------------
describe("openai provider", function()
  local cfg = cfg_for("openai/gpt-4o-mini", {headers = {["X-Extra"] = "1", ["content-type"] = "application/json; charset=utf-8"}})

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
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}},
      "system_fingerprint": "fp_06737a9306"}]]

    it("normalises a completion", function()
      local r = openai.parse(200, {}, OK)
      assert.are.equal("Teal.", r.text)
      assert.are.same({"Teal."}, r.texts)
      assert.are.equal("stop", r.finish_reason)
      assert_usage(r.usage, 31, 3, 34)
      assert.are.equal("gpt-4o-mini-2024-07-18", r.model)
      assert.are.equal("chatcmpl-AbC123", r.raw.id)
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
      err = openai.classify(429, {}, body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"))
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.is_false(err.retryable)
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
        {data = [[{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}]]},
        {data = "[DONE]"},
      })
      assert.is_true(done)
      assert.are.equal("Hello", text)
      assert.are.equal("stop", state.finish_reason)
      assert_usage(state.usage, 12, 2, 14)
      assert.are.equal("gpt-4o-mini-2024-07-18", state.model)
      openai.stream_end(state)   -- text arrived: nothing raised
    end)

    it("raises error events and malformed chunks", function()
      local err = raised(openai.stream_event, {}, {data = [[{"error":{"message":"The server is overloaded",
        "type":"server_error","param":null,"code":null}}]]})
      assert.is_true(tide.is_error(err, "server"))
      assert.is_true(err.retryable)
      assert.matches("stream error event from openai", err.message, 1, true)
      err = raised(openai.stream_event, {}, {data = [[{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}]]})
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
      local _, state = stream(openai, {chunk({role = "assistant", content = ""}), chunk({}, "length"), {data = "[DONE]"}})
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

-------------------------------------------------------------------------------
describe("anthropic provider", function()
  local cfg = cfg_for("anthropic/claude-sonnet-4-5")

  describe("build", function()
    it("posts to /v1/messages with the key and version headers", function()
      local r = anthropic.build(cfg, request())
      assert.are.equal("https://api.anthropic.com/v1/messages", r.url)
      assert.are.equal("sk-test", r.headers["x-api-key"])
      assert.are.equal("2023-06-01", r.headers["anthropic-version"])
      assert.are.equal("application/json", r.headers["Content-Type"])
      assert.is_nil(r.headers.Authorization)
    end)

    it("lifts system messages to the top and merges same-role turns", function()
      local b = cjson.decode(anthropic.build(cfg, request()).body)
      assert.are.equal("You are terse.\n\nAnswer in English.", b.system)
      assert.are.same({
        {role = "user", content = "Name a colour."},
        {role = "assistant", content = "Red."},
        {role = "user", content = "Another.\n\nJust one word."},
      }, b.messages)
      assert.are.equal(4096, b.max_tokens)          -- required by the API
    end)

    it("places max_tokens, sampling and stop sequences; ignores n", function()
      local b = cjson.decode(anthropic.build(cfg, request{max_tokens = 64, temperature = 0,
        top_p = 0.5, stop = {"\n\n", "END"}, n = 3, stream = true}).body)
      assert.are.equal(64, b.max_tokens)
      assert.are.equal(0, b.temperature)
      assert.are.equal(0.5, b.top_p)
      assert.are.same({"\n\n", "END"}, b.stop_sequences)
      assert.is_nil(b.stop)
      assert.is_nil(b.n)
      assert.is_true(b.stream)
    end)

    it("forces a tool for a JSON schema and asks in words for a JSON object", function()
      local schema = {type = "object", properties = {score = {type = "integer"}}, required = {"score"}}
      local b = cjson.decode(anthropic.build(cfg, request{response_format =
        {type = "json_schema", name = "grade", schema = schema}}).body)
      assert.are.same({{name = "grade", description = "Respond with JSON", input_schema = schema}}, b.tools)
      assert.are.same({type = "tool", name = "grade"}, b.tool_choice)
      b = cjson.decode(anthropic.build(cfg, request{response_format = {type = "json_object"}}).body)
      assert.matches("Respond with a single JSON object.$", b.system)
      assert.is_nil(b.tools)
    end)

    it("needs a turn besides the system prompt", function()
      assert.matches("needs a user message",
        raised(anthropic.build, cfg, {messages = {{role = "system", content = "s"}}}))
    end)
  end)

  describe("parse", function()
    local OK = [[{
      "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
      "model": "claude-sonnet-4-5-20250929",
      "content": [{"type": "text", "text": "Teal"}, {"type": "text", "text": "."}],
      "stop_reason": "end_turn", "stop_sequence": null,
      "usage": {"input_tokens": 25, "cache_creation_input_tokens": 10,
                "cache_read_input_tokens": 5, "output_tokens": 4}}]]

    it("normalises a message, counting cached input as input", function()
      local r = anthropic.parse(200, {}, OK)
      assert.are.equal("Teal.", r.text)
      assert.are.equal("stop", r.finish_reason)
      assert_usage(r.usage, 40, 4, 44)
      assert.are.equal("claude-sonnet-4-5-20250929", r.model)
    end)

    it("maps stop reasons", function()
      local cases = {end_turn = "stop", stop_sequence = "stop", max_tokens = "length",
                     tool_use = "tool_calls", refusal = "content_filter", pause_turn = "other"}
      for wire, ours in pairs(cases) do
        local body = OK:gsub('"end_turn"', '"' .. wire .. '"')
        assert.are.equal(ours, anthropic.parse(200, {}, body).finish_reason, wire)
      end
    end)

    it("reads the forced tool's input back as JSON text", function()
      local r = anthropic.parse(200, {}, [[{"id":"msg_2","type":"message","role":"assistant",
        "model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_01","name":"grade",
        "input":{"score":87,"feedback":"ok"}}],"stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":50,"output_tokens":20}}]])
      assert.are.equal("stop", r.finish_reason)
      assert.are.same({score = 87, feedback = "ok"}, cjson.decode(r.text))
    end)

    it("raises content_filter for a refusal with no text, empty for max_tokens with no blocks", function()
      local err = raised(anthropic.parse, 200, {}, [[{"id":"msg_3","type":"message","role":"assistant",
        "model":"m","content":[],"stop_reason":"refusal","stop_sequence":null,
        "usage":{"input_tokens":10,"output_tokens":0}}]])
      assert.is_true(tide.is_error(err, "content_filter"))
      assert.are.equal("refusal", err.reason)
      err = raised(anthropic.parse, 200, {}, [[{"id":"msg_4","type":"message","role":"assistant",
        "model":"m","content":[],"stop_reason":"max_tokens","stop_sequence":null,
        "usage":{"input_tokens":10,"output_tokens":1}}]])
      assert.is_true(tide.is_error(err, "empty"))
      assert.are.equal("length", err.finish_reason)
    end)

    it("raises parse for bodies that are not a message", function()
      local err = raised(anthropic.parse, 200, {}, '{"id":"msg_5","type":"message"}')
      assert.is_true(tide.is_error(err, "parse"))
      assert.matches("content list", err.message)
      assert.is_true(tide.is_error(raised(anthropic.parse, 200, {}, '{"id":"msg_5","ty'), "parse"))
    end)
  end)

  describe("classify", function()
    local function body(etype, message)
      return cjson.encode{type = "error", error = {type = etype, message = message}}
    end

    it("maps every status family", function()
      local cases = {
        {400, "invalid_request_error", "bad_request", false},
        {401, "authentication_error", "auth", false},
        {403, "permission_error", "auth", false},
        {404, "not_found_error", "not_found", false},
        {413, "request_too_large", "bad_request", false},
        {429, "rate_limit_error", "rate_limit", true},
        {500, "api_error", "server", true},
        {529, "overloaded_error", "server", true},
      }
      for _, c in ipairs(cases) do
        local err = anthropic.classify(c[1], {}, body(c[2], "says " .. c[2]))
        assert.is_true(tide.is_error(err, c[3]), c[1] .. " → " .. tostring(err.kind))
        assert.are.equal(c[4], err.retryable)
        assert.are.equal(c[2], err.code)
        assert.are.equal("says " .. c[2] .. " (HTTP " .. c[1] .. " from anthropic)", err.message)
      end
    end)

    it("knows a prompt that is too long, and reads Retry-After", function()
      local err = anthropic.classify(400, {}, body("invalid_request_error",
        "prompt is too long: 215000 tokens > 200000 maximum"))
      assert.is_true(tide.is_error(err, "context_window"))
      err = anthropic.classify(429, {["retry-after"] = "17"}, body("rate_limit_error", "slow down"))
      assert.are.equal(17, err.retry_after)
    end)
  end)

  describe("stream_event", function()
    local function ev(name, t)
      return {event = name, data = cjson.encode(t)}
    end
    local START = ev("message_start", {type = "message_start", message = {id = "msg_1", type = "message",
      role = "assistant", content = {}, model = "claude-sonnet-4-5-20250929", stop_reason = cjson.null,
      usage = {input_tokens = 25, cache_read_input_tokens = 5, output_tokens = 1}}})

    it("concatenates text deltas, takes input from message_start and output from message_delta", function()
      local text, state, done = stream(anthropic, {
        START,
        ev("content_block_start", {type = "content_block_start", index = 0, content_block = {type = "text", text = ""}}),
        ev("ping", {type = "ping"}),
        ev("content_block_delta", {type = "content_block_delta", index = 0, delta = {type = "text_delta", text = "Hello"}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0, delta = {type = "text_delta", text = " there"}}),
        ev("content_block_stop", {type = "content_block_stop", index = 0}),
        ev("message_delta", {type = "message_delta", delta = {stop_reason = "max_tokens", stop_sequence = cjson.null},
                             usage = {output_tokens = 15}}),
        ev("message_stop", {type = "message_stop"}),
      })
      assert.is_true(done)
      assert.are.equal("Hello there", text)
      assert.are.equal("length", state.finish_reason)
      assert_usage(state.usage, 30, 15, 45)
      assert.are.equal("claude-sonnet-4-5-20250929", state.model)
    end)

    it("streams the forced tool's JSON as text", function()
      local text, state = stream(anthropic, {
        START,
        ev("content_block_start", {type = "content_block_start", index = 0,
          content_block = {type = "tool_use", id = "toolu_1", name = "grade", input = {}}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0, delta = {type = "input_json_delta", partial_json = ""}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0, delta = {type = "input_json_delta", partial_json = '{"score": '}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0, delta = {type = "input_json_delta", partial_json = '87}'}}),
        ev("message_delta", {type = "message_delta", delta = {stop_reason = "tool_use"}, usage = {output_tokens = 9}}),
        ev("message_stop", {type = "message_stop"}),
      })
      assert.are.same({score = 87}, cjson.decode(text))
      assert.are.equal("stop", state.finish_reason)
    end)

    it("raises error events with their type's kind", function()
      local err = raised(anthropic.stream_event, {}, ev("error",
        {type = "error", error = {type = "overloaded_error", message = "Overloaded"}}))
      assert.is_true(tide.is_error(err, "server"))
      assert.is_true(err.retryable)
      assert.are.equal(529, err.status)
      assert.matches("Overloaded (stream error event from anthropic)", err.message, 1, true)
      -- the event name may be missing: the data's type says it too
      err = raised(anthropic.stream_event, {}, {data = [[{"type":"error","error":{"type":"rate_limit_error","message":"x"}}]]})
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.is_true(tide.is_error(raised(anthropic.stream_event, {}, {event = "message_start", data = "{"}), "parse"))
    end)

    it("stream_end raises content_filter after a refusal with no text", function()
      local _, state = stream(anthropic, {START,
        ev("message_delta", {type = "message_delta", delta = {stop_reason = "refusal"}, usage = {output_tokens = 0}}),
        ev("message_stop", {type = "message_stop"})})
      local err = raised(anthropic.stream_end, state)
      assert.is_true(tide.is_error(err, "content_filter"))
    end)
  end)
end)

-------------------------------------------------------------------------------
describe("gemini provider", function()
  local cfg = cfg_for("gemini/gemini-2.5-flash")

  describe("build", function()
    it("posts to generateContent with the key in a header, never in the URL", function()
      local r = gemini.build(cfg, request())
      assert.are.equal("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", r.url)
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
        extra = {generationConfig = {thinkingConfig = {thinkingBudget = 0}}, safetySettings = {{category = "HARM_CATEGORY_HARASSMENT", threshold = "BLOCK_NONE"}}}}).body)
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
      local r = gemini.parse(200, {}, OK)
      assert.are.equal("Teal.", r.text)
      assert.are.equal("stop", r.finish_reason)
      assert_usage(r.usage, 12, 28, 40)
      assert.are.equal("gemini-2.5-flash", r.model)
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
        {["@type"] = "type.googleapis.com/google.rpc.Help", links = {{description = "quota", url = "https://ai.google.dev"}}},
        {["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "38s"},
      }
      local err = gemini.classify(429, {}, body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", details))
      assert.is_true(tide.is_error(err, "rate_limit"))
      assert.are.equal(38, err.retry_after)
      details[3].retryDelay = "0.250s"
      assert.are.equal(0.25, gemini.classify(429, {}, body(429, "RESOURCE_EXHAUSTED", "q", details)).retry_after)
      -- a header wins over the body
      assert.are.equal(4, gemini.classify(429, {["retry-after"] = "4"}, body(429, "RESOURCE_EXHAUSTED", "q", details)).retry_after)
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
      local err = gemini.classify(400, {}, body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
        {{["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "API_KEY_INVALID", domain = "googleapis.com"}}))
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
      return chunk{candidates = {{content = {parts = {{text = text}}, role = "model"}, finishReason = finish, index = 0}},
                   usageMetadata = usage, modelVersion = "gemini-2.5-flash"}
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
      gemini.stream_end(state)
    end)

    it("raises error events, blocked prompts and malformed chunks", function()
      local err = raised(gemini.stream_event, {}, chunk{error = {code = 503, message = "The model is overloaded.", status = "UNAVAILABLE"}})
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

-------------------------------------------------------------------------------
describe("providers against mockllm", function()
  local mockllm = require "support.mockllm"
  local assert_clean = require "support.clean"
  local sse = require "tide.sse"
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  local BASES = {openai = "/v1", anthropic = "", gemini = ""}

  -- provider, cfg pointed at mockllm with an optional scenario
  local function target(name, scenario)
    local p, cfg = providers.resolve(name .. "/mock-model", {
      api_key = "sk-spec", base_url = server.url .. BASES[name], env = env_of{},
      headers = scenario and {["X-Mock-Scenario"] = scenario} or nil,
    })
    return p, cfg
  end

  local function call(name, scenario, req)
    local p, cfg = target(name, scenario)
    local built = p.build(cfg, req or request{max_tokens = 100})
    built.timeout = 10
    return p, tide.request(built)
  end

  for _, name in ipairs{"openai", "anthropic", "gemini"} do
    describe(name, function()
      it("parses a real answer", function()
        local p, r = call(name, "reply=Mock+teal")
        assert.are.equal(200, r.status)
        local res = p.parse(r.status, r.headers, r.body)
        assert.are.equal("Mock teal", res.text)
        assert.are.equal("stop", res.finish_reason)
        assert.is_true(is_int(res.usage.input) and res.usage.input > 0)
        assert.are.equal(res.usage.input + res.usage.output, res.usage.total)
      end)

      it("classifies 429 with its delay, 529 and 401", function()
        local p, r = call(name, "status=429;retry_after=2")
        local err = p.classify(r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "rate_limit"))
        assert.are.equal(2, err.retry_after)
        assert.is_true(err.retryable)
        assert.matches("(HTTP 429 from " .. name .. ")", err.message, 1, true)
        p, r = call(name, "status=529")
        err = p.classify(r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "server"))
        assert.is_true(err.retryable)
        p, r = call(name, "status=401")
        err = p.classify(r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "auth"))
        assert.is_false(err.retryable)
      end)

      it("reads Retry-After as an HTTP date", function()
        local p, r = call(name, "status=503;retry_after_date=30")
        local err = p.classify(r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "server"))
        assert.is_true(err.retry_after >= 28 and err.retry_after <= 31, tostring(err.retry_after))
      end)

      it("raises parse for a malformed 200", function()
        local p, r = call(name, "fault=malformed")
        assert.are.equal(200, r.status)
        local err = raised(p.parse, r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "parse"))
      end)

      it("raises content_filter for a blocked answer, empty for no text", function()
        local p, r = call(name, "fault=blocked")
        assert.is_true(tide.is_error(raised(p.parse, r.status, r.headers, r.body), "content_filter"))
        p, r = call(name, "fault=no_text")
        local err = raised(p.parse, r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "empty"))
        assert.are.equal("length", err.finish_reason)
      end)

      it("classifies a context overflow", function()
        local p, r = call(name, "error=context_window")
        local err = p.classify(r.status, r.headers, r.body)
        assert.is_true(tide.is_error(err, "context_window"))
        assert.is_false(err.retryable)
      end)

      it("streams: deltas concatenate to the reply, usage and finish are kept", function()
        local p, r = call(name, "reply=one+two+three", request{stream = true, max_tokens = 100})
        assert.matches("text/event-stream", r.headers["content-type"], 1, true)
        local state, pieces, done = {}, {}, false
        for _, ev in ipairs(sse.new():feed(r.body)) do
          local delta
          delta, done = p.stream_event(state, ev)
          pieces[#pieces + 1] = delta
          if done then break end
        end
        p.stream_end(state)
        assert.are.equal("one two three", table.concat(pieces))
        assert.are.equal(name ~= "gemini", done)   -- Gemini has no end marker
        assert.are.equal("stop", state.finish_reason)
        assert.is_true(is_int(state.usage.input) and state.usage.input > 0)
        assert.is_true(state.usage.output > 0)
      end)

      it("round-trips a JSON schema request", function()
        local p, r = call(name, nil, request{response_format = {type = "json_schema", name = "colour",
          schema = {type = "object", properties = {colour = {type = "string"}}, required = {"colour"}}}})
        assert.are.equal(200, r.status)
        local res = p.parse(r.status, r.headers, r.body)
        assert.is_string(res.text)
        assert.is_true(#res.text > 0)
      end)
    end)
  end

  it("gemini: RetryInfo in the body of a real 429", function()
    local p, r = call("gemini", "status=429;retry_after=3")
    r.headers["retry-after"] = nil   -- the body alone must do
    local err = p.classify(r.status, r.headers, r.body)
    assert.are.equal(3, err.retry_after)
  end)
end)
