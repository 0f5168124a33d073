-- The three providers against mockllm over real sockets: answers, errors, streams, schemas.
local tide = require "tide"
local providers = require "tide.providers"
local support = require "support.providers"
local env_of, raised, is_int, request = support.env_of, support.raised, support.is_int, support.request

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
