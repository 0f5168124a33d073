-- mockllm's streams, checked on the bytes it puts on the wire: each provider's event
-- sequence, stream faults, pacing and a client that leaves.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local wire = require "support.routes"
local routes, sse_events = wire.routes, wire.sse_events

describe("mockllm streams", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function post(name, opts) return wire.post(server, name, opts) end
  local function plain_text(name) return wire.plain_text(server, name) end

  it("OpenAI: a role chunk, text deltas, a finish chunk, usage, then [DONE]", function()
    local r = post("openai", {fields = {stream = true, stream_options = {include_usage = true}}})
    assert.are.equal(200, r.status)
    assert.matches("^text/event%-stream", r.headers["content-type"])
    assert.is_nil(r.body:find("\r", 1, true))
    local evs = sse_events(r.body)
    assert.are.equal("[DONE]", evs[#evs].data)
    local chunks = {}
    for i = 1, #evs - 1 do chunks[i] = cjson.decode(evs[i].data) end
    local first, finish, usage = chunks[1], chunks[#chunks - 1], chunks[#chunks]
    assert.are.same({role = "assistant", content = "", refusal = cjson.null}, first.choices[1].delta)
    assert.are.same({}, finish.choices[1].delta)
    assert.are.equal("stop", finish.choices[1].finish_reason)
    assert.are.same({}, usage.choices)
    local text, ctok = plain_text("openai")
    assert.are.equal(ctok, usage.usage.completion_tokens)
    assert.is_number(usage.usage.prompt_tokens)
    local parts = {}
    for i = 2, #chunks - 2 do
      local c = chunks[i]
      assert.are.equal(cjson.null, c.choices[1].finish_reason)
      assert.are.equal(cjson.null, c.usage)   -- include_usage: null until the last chunk
      parts[#parts + 1] = c.choices[1].delta.content
    end
    for _, c in ipairs(chunks) do
      assert.are.equal("chat.completion.chunk", c.object)
      assert.are.equal(first.id, c.id)
      assert.are.equal("gpt-mock", c.model)
    end
    assert.is_true(#parts >= 4 and #parts <= 8, #parts .. " deltas")
    assert.are.equal(text, table.concat(parts))
    -- without include_usage there is no usage chunk
    local plain = sse_events(post("openai", {fields = {stream = true}}).body)
    assert.are.equal("stop", cjson.decode(plain[#plain - 1].data).choices[1].finish_reason)
  end)

  it("Anthropic: the named event sequence, deltas adding up to the message", function()
    local r = post("anthropic", {fields = {stream = true}})
    assert.are.equal(200, r.status)
    assert.matches("^text/event%-stream", r.headers["content-type"])
    local evs = sse_events(r.body)
    local names, parts, datas = {}, {}, {}
    for i, ev in ipairs(evs) do
      local d = cjson.decode(ev.data)
      assert.are.equal(ev.event, d.type)   -- the event name repeats the data's type
      names[i], datas[ev.event] = ev.event, d
      if ev.event == "content_block_delta" then
        assert.are.equal("text_delta", d.delta.type)
        parts[#parts + 1] = d.delta.text
      end
    end
    local expected = {"message_start", "content_block_start", "ping"}
    for _ = 1, #parts do expected[#expected + 1] = "content_block_delta" end
    for _, n in ipairs{"content_block_stop", "message_delta", "message_stop"} do expected[#expected + 1] = n end
    assert.are.same(expected, names)
    local text, ctok = plain_text("anthropic")
    assert.are.equal(text, table.concat(parts))
    assert.is_true(#parts >= 4)
    local start = datas.message_start.message
    assert.are.equal("claude-mock", start.model)
    assert.is_number(start.usage.input_tokens)
    assert.are.equal(1, start.usage.output_tokens)
    assert.are.same({type = "text", text = ""}, datas.content_block_start.content_block)
    assert.are.same({stop_reason = "end_turn", stop_sequence = cjson.null}, datas.message_delta.delta)
    assert.are.equal(ctok, datas.message_delta.usage.output_tokens)
  end)

  it("Gemini: CRLF-framed data events, the last with finishReason and full usage", function()
    local r = post("gemini", {stream_path = true})
    assert.are.equal(200, r.status)
    assert.matches("^text/event%-stream", r.headers["content-type"])
    assert.matches("\r\n\r\n$", r.body)
    local evs = sse_events(r.body)
    local parts = {}
    for i, ev in ipairs(evs) do
      local d = cjson.decode(ev.data)
      local cand = d.candidates[1]
      assert.are.equal("model", cand.content.role)
      assert.are.equal("gemini-mock", d.modelVersion)
      assert.is_number(d.usageMetadata.promptTokenCount)
      parts[i] = cand.content.parts[1].text
      if i < #evs then assert.is_nil(cand.finishReason) end
    end
    local last = cjson.decode(evs[#evs].data)
    local text, ctok = plain_text("gemini")
    assert.are.equal("STOP", last.candidates[1].finishReason)
    assert.are.equal(ctok, last.usageMetadata.candidatesTokenCount)
    assert.are.equal(text, table.concat(parts))
    assert.is_true(#parts >= 4)
  end)

  it("Gemini without alt=sse streams one JSON array", function()
    local r = tide.request{url = server.url .. "/v1beta/models/g:streamGenerateContent",
      body = cjson.encode(routes.gemini.body), headers = wire.headers("gemini")}
    assert.are.equal(200, r.status)
    local list = cjson.decode(r.body)
    assert.are.equal("STOP", list[#list].candidates[1].finishReason)
  end)

  it("stream_error: two text deltas, then the provider's error event", function()
    local oa = sse_events(post("openai", {fields = {stream = true}, scenario = "fault=stream_error"}).body)
    assert.are.equal(4, #oa)   -- role, two deltas, error; no [DONE]
    assert.are.same({message = "mock stream error", type = "server_error", param = cjson.null,
      code = cjson.null}, cjson.decode(oa[4].data).error)

    local an = sse_events(post("anthropic", {fields = {stream = true}, scenario = "fault=stream_error"}).body)
    assert.are.equal("error", an[#an].event)
    assert.are.same({type = "error", error = {type = "overloaded_error", message = "Overloaded"}},
      cjson.decode(an[#an].data))
    assert.are.equal("content_block_delta", an[#an - 1].event)
    assert.are.equal("content_block_delta", an[#an - 2].event)

    local ge = sse_events(post("gemini", {stream_path = true, scenario = "fault=stream_error"}).body)
    assert.are.equal(3, #ge)
    assert.are.same({code = 500, message = "mock stream error", status = "INTERNAL"},
      cjson.decode(ge[3].data).error)
    assert.is_nil(cjson.decode(ge[2].data).candidates[1].finishReason)
  end)

  it("stream_drop cuts the connection mid-stream: a protocol error", function()
    for name in pairs(routes) do
      local ok, err = pcall(post, name, {fields = {stream = true}, stream_path = true,
        scenario = "fault=stream_drop"})
      assert.is_false(ok, name)
      assert.are.equal("protocol", err.kind, name)
    end
  end)

  it("error statuses answer with JSON, not a stream; latency delays the first byte #timing", function()
    local r = post("openai", {fields = {stream = true}, scenario = "status=429;retry_after=1"})
    assert.are.equal(429, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal("rate_limit_exceeded", cjson.decode(r.body).error.code)
    local slow = post("anthropic", {fields = {stream = true}, scenario = "latency=150"})
    assert.is_true(slow.timings.ttfb >= 0.14, "ttfb " .. slow.timings.ttfb)
  end)

  it("stream_interval paces the events; a stream keeps the connection alive #timing", function()
    local r = post("openai", {fields = {stream = true}, scenario = "stream_interval=20"})
    local n = #sse_events(r.body)
    assert.is_true(r.timings.total >= (n - 1) * 0.02 * 0.9, "total " .. r.timings.total)
    post("anthropic", {fields = {stream = true}})
    post("gemini", {stream_path = true})
    assert.is_true(server:stats().connections_total <= 1)
  end)

  it("a client leaving mid-stream is counted as aborted", function()
    local ok, err = pcall(post, "openai", {fields = {stream = true},
      scenario = "stream_interval=200", timeout = 0.1})
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    local s = server:wait_for(function(st) return st.aborted == 1 end)
    assert.are.same({1, 0}, {s.aborted, s.in_flight})
  end)

  it("blocked streams end with the blocked finish and no text", function()
    local oa = sse_events(post("openai", {fields = {stream = true}, scenario = "fault=blocked"}).body)
    assert.are.equal("content_filter", cjson.decode(oa[#oa - 1].data).choices[1].finish_reason)
    local an = sse_events(post("anthropic", {fields = {stream = true}, scenario = "fault=blocked"}).body)
    assert.are.equal("refusal", cjson.decode(an[#an - 1].data).delta.stop_reason)
    local ge = sse_events(post("gemini", {stream_path = true, scenario = "fault=blocked"}).body)
    assert.are.same({1, "SAFETY"}, {#ge, cjson.decode(ge[1].data).promptFeedback.blockReason})
  end)
end)
