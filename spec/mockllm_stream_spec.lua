local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

-- One request per provider, the same prompt for all three.
local PROMPT = "tell me a story about a small robot who learns to paint"
local routes = {
  openai = {path = "/v1/chat/completions",
    body = {model = "gpt-mock", messages = {{role = "user", content = PROMPT}}}},
  anthropic = {path = "/v1/messages",
    body = {model = "claude-mock", max_tokens = 64, messages = {{role = "user", content = PROMPT}}}},
  gemini = {path = "/v1beta/models/gemini-mock:generateContent",
    stream_path = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse",
    body = {contents = {{role = "user", parts = {{text = PROMPT}}}}}},
}

--- The events of an SSE body, each {event = name or nil, data = text}; CRLF and LF alike.
local function sse_events(body)
  local list = {}
  for block in (body:gsub("\r\n", "\n")):gmatch("(.-)\n\n") do
    local ev = {}
    for line in block:gmatch("[^\n]+") do
      local k, v = line:match("^(%a+): ?(.*)$")
      if k == "event" then ev.event = v elseif k == "data" then ev.data = v end
    end
    list[#list + 1] = ev
  end
  return list
end

describe("mockllm streams", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function post(name, opts)
    opts = opts or {}
    local route = routes[name]
    local body = {}
    for k, v in pairs(route.body) do body[k] = v end
    for k, v in pairs(opts.fields or {}) do body[k] = v end
    local headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = opts.scenario}
    for k, v in pairs(opts.headers or {}) do headers[k] = v end
    return tide.request{url = server.url .. (opts.stream_path and route.stream_path or route.path),
      body = cjson.encode(body), headers = headers, timeout = opts.timeout or 10}
  end

  -- the text of the same request answered without a stream
  local function plain_text(name)
    local r = cjson.decode(post(name).body)
    if name == "openai" then return r.choices[1].message.content, r.usage.completion_tokens end
    if name == "anthropic" then return r.content[1].text, r.usage.output_tokens end
    return r.candidates[1].content.parts[1].text, r.usageMetadata.candidatesTokenCount
  end

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
      body = cjson.encode(routes.gemini.body)}
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

  it("error statuses answer with JSON, not a stream; latency delays the first byte", function()
    local r = post("openai", {fields = {stream = true}, scenario = "status=429;retry_after=1"})
    assert.are.equal(429, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal("rate_limit_exceeded", cjson.decode(r.body).error.code)
    local slow = post("anthropic", {fields = {stream = true}, scenario = "latency=150"})
    assert.is_true(slow.timings.ttfb >= 0.14, "ttfb " .. slow.timings.ttfb)
  end)

  it("stream_interval paces the events; a stream keeps the connection alive", function()
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

  it("blocked, no_text and finish=length answer 200 in each provider's shape", function()
    local oa = cjson.decode(post("openai", {scenario = "fault=blocked"}).body).choices[1]
    assert.are.equal("content_filter", oa.finish_reason)
    assert.are.equal(cjson.null, oa.message.content)
    assert.are.equal(cjson.null, oa.message.refusal)
    local an = cjson.decode(post("anthropic", {scenario = "fault=blocked"}).body)
    assert.are.same({"refusal", {}}, {an.stop_reason, an.content})
    local ge = cjson.decode(post("gemini", {scenario = "fault=blocked"}).body)
    assert.are.equal("SAFETY", ge.promptFeedback.blockReason)
    assert.is_nil(ge.candidates)
    assert.is_number(ge.usageMetadata.promptTokenCount)

    oa = cjson.decode(post("openai", {scenario = "fault=no_text"}).body).choices[1]
    assert.are.same({"length", ""}, {oa.finish_reason, oa.message.content})
    an = cjson.decode(post("anthropic", {scenario = "fault=no_text"}).body)
    assert.are.same({"max_tokens", {}}, {an.stop_reason, an.content})
    ge = cjson.decode(post("gemini", {scenario = "fault=no_text"}).body)
    assert.are.same({content = {role = "model"}, finishReason = "MAX_TOKENS", index = 0}, ge.candidates[1])

    oa = cjson.decode(post("openai", {scenario = "finish=length"}).body).choices[1]
    assert.are.same({"length", (plain_text("openai"))}, {oa.finish_reason, oa.message.content})
    an = cjson.decode(post("anthropic", {scenario = "finish=length"}).body)
    assert.are.equal("max_tokens", an.stop_reason)
    ge = cjson.decode(post("gemini", {scenario = "finish=length"}).body)
    assert.are.equal("MAX_TOKENS", ge.candidates[1].finishReason)
    assert.is_string(ge.candidates[1].content.parts[1].text)
  end)

  it("blocked streams end with the blocked finish and no text", function()
    local oa = sse_events(post("openai", {fields = {stream = true}, scenario = "fault=blocked"}).body)
    assert.are.equal("content_filter", cjson.decode(oa[#oa - 1].data).choices[1].finish_reason)
    local an = sse_events(post("anthropic", {fields = {stream = true}, scenario = "fault=blocked"}).body)
    assert.are.equal("refusal", cjson.decode(an[#an - 1].data).delta.stop_reason)
    local ge = sse_events(post("gemini", {stream_path = true, scenario = "fault=blocked"}).body)
    assert.are.same({1, "SAFETY"}, {#ge, cjson.decode(ge[1].data).promptFeedback.blockReason})
  end)

  it("error=context_window answers each provider's 400", function()
    local r = post("openai", {scenario = "error=context_window"})
    assert.are.equal(400, r.status)
    local e = cjson.decode(r.body).error
    assert.are.same({"invalid_request_error", "messages", "context_length_exceeded"}, {e.type, e.param, e.code})
    assert.matches("maximum context length is 128000 tokens", e.message)
    r = post("anthropic", {scenario = "error=context_window"})
    assert.are.equal(400, r.status)
    assert.are.same({type = "error", error = {type = "invalid_request_error",
      message = "prompt is too long: 210000 tokens > 200000 maximum"}}, cjson.decode(r.body))
    r = post("gemini", {scenario = "error=context_window"})
    assert.are.equal(400, r.status)
    e = cjson.decode(r.body).error
    assert.are.same({400, "INVALID_ARGUMENT"}, {e.code, e.status})
    assert.matches("exceeds the maximum number of tokens allowed %(1048576%)", e.message)
  end)

  it("error statuses carry each provider's error kind", function()
    local kinds = {
      [401] = {"invalid_api_key", "authentication_error", "UNAUTHENTICATED"},
      [403] = {cjson.null, "permission_error", "PERMISSION_DENIED"},
      [404] = {"model_not_found", "not_found_error", "NOT_FOUND"},
      [408] = {cjson.null, "timeout_error", "DEADLINE_EXCEEDED"},
      [409] = {cjson.null, "conflict_error", "ABORTED"},
      [429] = {"rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"},
      [500] = {cjson.null, "api_error", "INTERNAL"},
      [502] = {cjson.null, "api_error", "UNAVAILABLE"},
      [503] = {cjson.null, "api_error", "UNAVAILABLE"},
      [504] = {cjson.null, "timeout_error", "DEADLINE_EXCEEDED"},
      [529] = {cjson.null, "overloaded_error", "UNAVAILABLE"},
    }
    for status, want in pairs(kinds) do
      local sc = "status=" .. status
      local oa = post("openai", {scenario = sc})
      local an = post("anthropic", {scenario = sc})
      local ge = post("gemini", {scenario = sc})
      assert.are.same({status, status, status}, {oa.status, an.status, ge.status})
      local oe, ae, ge_ = cjson.decode(oa.body).error, cjson.decode(an.body), cjson.decode(ge.body).error
      assert.are.same(want, {oe.code, ae.error.type, ge_.status}, sc)
      assert.are.equal(status >= 500 and "server_error" or status == 429 and "requests"
        or "invalid_request_error", oe.type, sc)
      assert.are.equal("error", ae.type)
      assert.are.equal(status, ge_.code)
    end
  end)
end)

describe("mockllm's request log", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function chat(scenario, headers)
    headers = headers or {}
    headers["X-Mock-Scenario"] = scenario
    return tide.request{url = server.url .. "/v1/chat/completions", headers = headers,
      body = cjson.encode{model = "gpt-log", messages = {{role = "user", content = "hi"}}}}
  end

  it("records each request in order with its key, status, model and auth header name", function()
    local sc = "fail_first=2;key=abc;status=429;retry_after=1"
    for _ = 1, 3 do chat(sc, {Authorization = "Bearer sk-CANARY"}) end
    server:stats()                          -- control routes are not logged
    local r = tide.request{url = server.url .. "/__log"}
    assert.are.equal(200, r.status)
    assert.is_nil(r.body:find("CANARY", 1, true))   -- never a key's value
    local log = cjson.decode(r.body).requests
    assert.are.equal(3, #log)
    for i, e in ipairs(log) do
      assert.are.equal(i, e.seq)
      assert.are.same({"openai", "/v1/chat/completions", "abc", "gpt-log", false, "authorization"},
        {e.route, e.path, e.key, e.model, e.stream, e.auth})
    end
    assert.are.same({429, 429, 200}, {log[1].status, log[2].status, log[3].status})
    -- timestamps in arrival order (their gaps are the machine's, not asserted)
    assert.is_number(log[1].t)
    assert.is_true(log[1].t <= log[2].t and log[2].t <= log[3].t)
  end)

  it("names x-api-key, x-goog-api-key and a key in the query, never their values", function()
    tide.request{url = server.url .. "/v1/messages", headers = {["x-api-key"] = "sk-ant-CANARY"},
      body = cjson.encode{model = "claude-log", stream = true, messages = {{role = "user", content = "hi"}}}}
    tide.request{url = server.url .. "/v1beta/models/gem-log:streamGenerateContent?alt=sse",
      headers = {["x-goog-api-key"] = "AIza-CANARY"},
      body = cjson.encode{contents = {{role = "user", parts = {{text = "hi"}}}}}}
    tide.request{url = server.url .. "/v1beta/models/gem-log:generateContent?key=AIza-CANARY",
      body = cjson.encode{contents = {{role = "user", parts = {{text = "hi"}}}}}}
    assert.is_false(pcall(chat, "fault=drop;key=dropped"))
    local body = tide.request{url = server.url .. "/__log"}.body
    assert.is_nil(body:find("CANARY", 1, true))
    local log = cjson.decode(body).requests
    assert.are.same({"anthropic", "claude-log", true, "x-api-key"},
      {log[1].route, log[1].model, log[1].stream, log[1].auth})
    assert.are.same({"gemini", "/v1beta/models/gem-log:streamGenerateContent", "gem-log", true, "x-goog-api-key"},
      {log[2].route, log[2].path, log[2].model, log[2].stream, log[2].auth})
    assert.are.same({"/v1beta/models/gem-log:generateContent", false, "?key"},
      {log[3].path, log[3].stream, log[3].auth})
    assert.are.same({"dropped", cjson.null, cjson.null}, {log[4].key, log[4].status, log[4].auth})
    for i = 2, #log do assert.is_true(log[i].t >= log[i - 1].t) end
    server:reset()
    assert.are.same({}, server:get_json("/__log").requests)
  end)
end)
