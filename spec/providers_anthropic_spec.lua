-- tide.providers.anthropic: build, parse, classify, stream.
local tide = require "tide"
local cjson = require "cjson"
local anthropic = require "tide.providers.anthropic"
local support = require "support.providers"
local raised, request, cfg_for = support.raised, support.request, support.cfg_for
local assert_usage, stream = support.assert_usage, support.stream

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
      local r = anthropic.parse(200, {["request-id"] = "req_011CQ"}, OK)
      assert.are.equal("Teal.", r.text)
      assert.are.equal("stop", r.finish_reason)
      -- the cache read is part of the input; thinking is not counted apart
      assert_usage(r.usage, 40, 4, 44, {cached = 5})
      assert.are.equal("claude-sonnet-4-5-20250929", r.model)
      assert.are.equal("msg_01XFDUDYJgAACzvnptvVoYEL", r.id)
      assert.are.equal("req_011CQ", r.request_id)
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

    it("carries the request id: the request-id header, else the body's request_id", function()
      local raw = cjson.encode{type = "error", error = {type = "api_error", message = "boom"},
                               request_id = "req_in_body"}
      assert.are.equal("req_in_body", anthropic.classify(500, {}, raw).request_id)
      assert.are.equal("req_header", anthropic.classify(500, {["request-id"] = "req_header"}, raw).request_id)
      assert.is_nil(anthropic.classify(500, {}, body("api_error", "boom")).request_id)
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
        ev("content_block_start", {type = "content_block_start", index = 0,
                                   content_block = {type = "text", text = ""}}),
        ev("ping", {type = "ping"}),
        ev("content_block_delta", {type = "content_block_delta", index = 0,
                                   delta = {type = "text_delta", text = "Hello"}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0,
                                   delta = {type = "text_delta", text = " there"}}),
        ev("content_block_stop", {type = "content_block_stop", index = 0}),
        ev("message_delta", {type = "message_delta", delta = {stop_reason = "max_tokens", stop_sequence = cjson.null},
                             usage = {output_tokens = 15}}),
        ev("message_stop", {type = "message_stop"}),
      })
      assert.is_true(done)
      assert.are.equal("Hello there", text)
      assert.are.equal("length", state.finish_reason)
      assert_usage(state.usage, 30, 15, 45, {cached = 5})
      assert.are.equal("claude-sonnet-4-5-20250929", state.model)
      assert.are.equal("msg_1", state.id)
    end)

    it("streams the forced tool's JSON as text", function()
      local text, state = stream(anthropic, {
        START,
        ev("content_block_start", {type = "content_block_start", index = 0,
          content_block = {type = "tool_use", id = "toolu_1", name = "grade", input = {}}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0,
                                   delta = {type = "input_json_delta", partial_json = ""}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0,
                                   delta = {type = "input_json_delta", partial_json = '{"score": '}}),
        ev("content_block_delta", {type = "content_block_delta", index = 0,
                                   delta = {type = "input_json_delta", partial_json = '87}'}}),
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
      err = raised(anthropic.stream_event, {},
        {data = [[{"type":"error","error":{"type":"rate_limit_error","message":"x"}}]]})
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
