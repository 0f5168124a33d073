local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

describe("tide.stream", function()
  local server, url
  local body = cjson.encode{model = "mock", messages = {{role = "user", content = "stream me"}}}
  setup(function()   -- raw keyless requests: lenient
    server = mockllm.start{lenient = true}; url = server.url .. "/v1/chat/completions"
  end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(function() collectgarbage(); assert_clean() end)

  local function open(scenario, extra)
    local opts = {url = url, body = body, headers = {["X-Mock-Scenario"] = scenario}}
    for k, v in pairs(extra or {}) do opts[k] = v end
    return tide.stream(opts)
  end

  it("returns at the headers, then hands over the body piece by piece", function()
    local s <close> = open("fault=drip;interval=5;bytes=40")
    assert.are.equal(200, s.status)
    assert.are.equal("application/json", s.headers["content-type"])
    local pieces = {}
    for chunk in s:chunks() do pieces[#pieces + 1] = chunk end
    assert.is_true(#pieces > 1)   -- more than one piece: it did not wait for the end
    local whole = cjson.decode(table.concat(pieces))
    assert.matches("stream me", whole.choices[1].message.content)
    assert.is_nil(s:read())        -- the end stays the end
  end)

  it("pauses a fast server while the reader is behind, losing nothing", function()
    local s <close> = open("fault=huge;size=8000000", {max_body = 10000000})
    tide.sleep(0.05)               -- let more than the pending cap pile up
    local got = 0
    for chunk in s:chunks() do got = got + #chunk end
    assert.are.equal(8000000, got)
  end)

  it("max_body bounds the whole stream", function()
    local ok, err = pcall(function()
      local s <close> = open("fault=huge;size=3000000", {max_body = 100000})
      for _ in s:chunks() do end
    end)
    assert.is_false(ok)
    assert.are.equal("too_large", err.kind)
  end)

  it("an endless stream ends with a timeout error, after the pieces that came", function()
    local got = 0
    local ok, err = pcall(function()
      local s <close> = open("fault=drip;interval=1;bytes=200;endless=1", {timeout = 0.2})
      for chunk in s:chunks() do got = got + #chunk end
    end)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(got > 0)
  end)

  it("cancelling a reading task closes the connection (the server sees it)", function()
    local t = tide.spawn(function()
      local s <close> = open("fault=drip;interval=20;endless=1")
      for _ in s:chunks() do end
    end)
    server:wait_for(function(st) return st.in_flight == 1 end)
    t:cancel()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal(1, server:wait_for(function(st) return st.aborted == 1 end).aborted)
  end)

  it("close() from another task ends a waiting read #slow", function()
    local s = open("fault=drip;interval=50;endless=1")
    local reader = tide.spawn(function() for _ in s:chunks() do end end)
    tide.sleep(0.02)
    s:close()
    local ok, err = pcall(reader.wait, reader)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
  end)

  it("raises transport errors before the headers as tide.request does", function()
    local ok, err = pcall(tide.stream, {url = "http://127.0.0.1:1/"})
    assert.is_false(ok)
    assert.are.equal("connect", err.kind)
    assert.has_error(function() tide.stream{} end,
      "bad argument #1 to 'stream' (field 'url' must be a string)")
  end)
end)

-- lm:stream over real sockets to mockllm: a stream is a success only when it
-- reached its provider's end marker; every way of framing the events parses.
describe("lm:stream", function()
  local cache_mod = require "tide.cache"
  local openai = require "tide.providers.openai"
  local anthropic = require "tide.providers.anthropic"
  local gemini = require "tide.providers.gemini"

  local PROVIDERS = require("support.lm_server").PROVIDERS

  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(function() collectgarbage(); assert_clean() end)

  local function lm_for(p, scenario, opts)
    opts = opts or {}
    opts.api_key = "sk-stream-test"
    opts.base_url = p.base(server)
    if opts.cache == nil then opts.cache = false end
    if scenario then opts.headers = {["X-Mock-Scenario"] = scenario} end
    if opts.num_retries == nil then opts.num_retries = 0 end
    return tide.LM(p.model, opts)
  end

  -- Reads a whole stream → ok, final table or error, the text the loop got.
  local function drain(lm, prompt)
    local got = {}
    local ok, res = pcall(function()
      local it, final, s, closer = lm:stream(prompt)
      for piece in it, final, s, closer do got[#got + 1] = piece end
      return final
    end)
    return ok, res, table.concat(got)
  end

  local function assert_incomplete_error(lm, err, got)
    assert.is_true(tide.is_error(err), tostring(err))
    assert.are.equal("transport", err.kind)
    assert.is_string(err.partial_text)
    assert.are_not.equal("", err.partial_text)
    assert.are.equal(got, err.partial_text)   -- the loop had every piece before the error
    local last = lm.history[#lm.history]
    assert.is_nil(last.response)
    assert.are.equal("transport", last.error.kind)
    assert.are.equal(0, lm.usage.calls)       -- not counted as an answer
  end

  for _, p in ipairs(PROVIDERS) do
    describe(p.name, function()
      it("a stream cut cleanly between events is an incomplete transport error, not an answer", function()
        local cache = cache_mod.new{memory = 16, dir = false}
        local lm = lm_for(p, "fault=stream_cut", {cache = cache})
        local ok, err, got = drain(lm, "cut me short please")
        assert.is_false(ok)
        assert.are.equal("incomplete", err.cause)
        assert.matches("stream ended before", err.message, 1, true)
        assert_incomplete_error(lm, err, got)
        -- the same request, made again, goes to the server: nothing was kept
        local clean = lm_for(p, nil, {cache = cache})
        local whole = clean("cut me short please")
        assert.are.equal(1, whole:find(got, 1, true))
        assert.are.equal(2, server:stats().requests)
      end)

      for _, fault in ipairs{"stream_drop", "stream_reset"} do
        it("fault=" .. fault .. " is a transport error carrying the text received", function()
          local lm = lm_for(p, "fault=" .. fault)
          local ok, err, got = drain(lm, "break my connection")
          assert.is_false(ok)
          assert_incomplete_error(lm, err, got)
        end)
      end

      local FRAMINGS = {"bom=1", "sse_eol=cr", "sse_eol=lf", "sse_eol=crlf", "sse_filler=20000",
                        "bom=1;sse_eol=cr;sse_filler=500"}
      for _, framing in ipairs(FRAMINGS) do
        it("reads the whole answer and usage with " .. framing, function()
          local want = lm_for(p):call("frame this answer in many ways")
          local lm = lm_for(p, framing)
          local ok, final, got = drain(lm, "frame this answer in many ways")
          assert.is_true(ok, tostring(final))
          assert.are.equal(want.text, got)
          assert.are.equal(want.text, final.text)
          assert.are.equal("stop", final.finish_reason)
          assert.are.same(want.usage, final.usage)
        end)
      end

      it("leaving the loop early closes the connection and records the call as cancelled", function()
        local lm = lm_for(p, "stream_interval=40")
        local it, final, s, closer = lm:stream("a long story, slowly")
        local first
        for piece in it, final, s, closer do
          first = piece
          break
        end
        assert.is_string(first)
        assert.are.equal(1, server:wait_for(function(st) return st.aborted == 1 end).aborted)
        assert.are.equal(first, final.text)
        assert.is_nil(final.finish_reason)
        local last = lm.history[#lm.history]
        assert.are.equal("cancelled", last.error.kind)
        assert.are.equal(0, lm.usage.calls)
      end)
    end)
  end

  describe("what counts as a complete stream", function()
    local cjson = require "cjson"
    local function run(provider, events)
      local state = {}
      for _, ev in ipairs(events) do provider.stream_event(state, ev) end
      return pcall(provider.stream_end, state)
    end
    local function incomplete(ok, err)
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "transport"))
      assert.are.equal("incomplete", err.cause)
    end

    it("openai: [DONE], or choice 0's finish_reason (compatible servers may omit [DONE])", function()
      local function chunk(content, finish)
        return {data = cjson.encode{choices = {{index = 0, delta = {content = content},
          finish_reason = finish or cjson.null}}}}
      end
      assert.is_true(run(openai, {chunk("Hi"), chunk("", "stop"), {data = "[DONE]"}}))
      assert.is_true(run(openai, {chunk("Hi"), chunk("", "length")}))
      assert.is_true(run(openai, {chunk("Hi"), {data = "[DONE]"}}))
      incomplete(run(openai, {chunk("Hi"), chunk(" there")}))
      incomplete(run(openai, {}))   -- nothing at all is a cut too, not `empty`
    end)

    it("anthropic: message_stop, or message_delta with its stop_reason", function()
      local function ev(name, t) t.type = name; return {event = name, data = cjson.encode(t)} end
      local text = ev("content_block_delta", {index = 0, delta = {type = "text_delta", text = "Hi"}})
      local stop = ev("message_delta", {delta = {stop_reason = "end_turn"}, usage = {output_tokens = 2}})
      assert.is_true(run(anthropic, {text, stop, ev("message_stop", {})}))
      assert.is_true(run(anthropic, {text, stop}))
      assert.is_true(run(anthropic, {text, ev("message_stop", {})}))
      incomplete(run(anthropic, {text, ev("message_delta", {delta = {}, usage = {output_tokens = 2}})}))
    end)

    it("gemini: a candidate with its finishReason", function()
      local function part(text, finish)
        return {data = cjson.encode{candidates = {{content = {parts = {{text = text}}}, finishReason = finish}}}}
      end
      assert.is_true(run(gemini, {part("Hi"), part(" there", "STOP")}))
      assert.is_true(run(gemini, {part("Hi", "MAX_TOKENS")}))
      incomplete(run(gemini, {part("Hi"), part(" there")}))
    end)
  end)
end)
