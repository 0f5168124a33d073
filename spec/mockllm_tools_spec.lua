-- mockllm answers tool-call requests in the three wire formats, on the bytes it
-- puts on the wire: the tool the request forces or else the first one offered,
-- with arguments valid against its parameters; the calls a scenario scripts
-- (several per turn, malformed arguments); text once a tool's result is in;
-- each streamed as its provider streams tool calls.
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local wire = require "support.routes"
local sse_events = wire.sse_events

local WEATHER = {type = "object", properties = {city = {type = "string"},
  days = {type = "integer", minimum = 1, maximum = 7}}, required = {"city", "days"}}
local CLOCK = {type = "object", properties = {zone = {type = "string", enum = {"UTC", "CET"}}}}

local openai_tools = {
  {type = "function", ["function"] = {name = "get_weather", description = "the weather",
    parameters = WEATHER}},
  {type = "function", ["function"] = {name = "get_time", parameters = CLOCK}},
}
local anthropic_tools = {{name = "get_weather", input_schema = WEATHER},
  {name = "get_time", input_schema = CLOCK}}
local gemini_tools = {{functionDeclarations = {{name = "get_weather", parameters = WEATHER},
  {name = "get_time", parameters = CLOCK}}}}

-- Arguments the schema filler made: every property, the days within bounds.
local function assert_weather_args(args)
  assert.is_string(args.city)
  assert.is_true(args.days == math.floor(args.days) and args.days >= 1 and args.days <= 7, tostring(args.days))
end

local encode = mockllm.encode   -- a scenario value for the header

describe("mockllm tool calls", function()
  local server = mockllm.serve()

  local function post(name, opts) return wire.post(server, name, opts) end
  local function json(r)
    assert.are.equal(200, r.status, r.body)
    return cjson.decode(r.body)
  end

  describe("OpenAI", function()
    local function message(fields, scenario)
      fields.tools = fields.tools or openai_tools
      local b = json(post("openai", {fields = fields, scenario = scenario}))
      return b.choices[1].message, b.choices[1].finish_reason, b
    end

    it("auto calls the first tool with arguments valid against its parameters", function()
      local m, finish, b = message({})
      assert.are.equal("tool_calls", finish)
      assert.are.equal(cjson.null, m.content)
      assert.are.equal(1, #m.tool_calls)
      local call = m.tool_calls[1]
      assert.matches("^call_", call.id)
      assert.are.same({"function", "get_weather"}, {call.type, call["function"].name})
      assert.is_string(call["function"].arguments)   -- a JSON string, not an object
      assert_weather_args(cjson.decode(call["function"].arguments))
      assert.is_true(b.usage.completion_tokens > 0)
    end)

    it("a named tool_choice calls that tool, required calls one, none answers text", function()
      local m = message({tool_choice = {type = "function", ["function"] = {name = "get_time"}}})
      assert.are.equal("get_time", m.tool_calls[1]["function"].name)
      assert.are.same({zone = "UTC"}, cjson.decode(m.tool_calls[1]["function"].arguments))
      m = message({tool_choice = "required"})
      assert.are.equal("get_weather", m.tool_calls[1]["function"].name)
      local finish
      m, finish = message({tool_choice = "none"})
      assert.are.equal("stop", finish)
      assert.is_nil(m.tool_calls)
      assert.are.equal("Mock reply to: " .. wire.PROMPT, m.content)
    end)

    it("a request without tools, or with reply=, is answered with text", function()
      local b = json(post("openai"))
      assert.are.equal("stop", b.choices[1].finish_reason)
      assert.is_nil(b.choices[1].message.tool_calls)
      -- a scripted reply= is text, tools or not
      local m = message({}, "reply=hello")
      assert.are.same({"hello"}, {m.content, m.tool_calls})
    end)

    it("calls the tools a scenario scripts, several in one turn", function()
      local m = message({}, "tool_calls=" .. encode('get_time({"zone":"CET"})+lookup({"q":[1,2]})+get_weather()'))
      assert.are.equal(3, #m.tool_calls)
      local got = {}
      for i, c in ipairs(m.tool_calls) do got[i] = {c["function"].name, cjson.decode(c["function"].arguments)} end
      assert.are.same({{"get_time", {zone = "CET"}}, {"lookup", {q = {1, 2}}}, {"get_weather", {}}}, got)
      assert.are_not.equal(m.tool_calls[1].id, m.tool_calls[2].id)
    end)

    it("tool_args=malformed sends arguments that are not JSON", function()
      local m = message({}, "tool_args=malformed")
      local args = m.tool_calls[1]["function"].arguments
      assert.is_false(pcall(cjson.decode, args))
      assert.matches('^{.*"city":"Mock city', args)   -- the valid arguments, cut
    end)

    it("a bad tool_calls script is refused with the scenario's 400", function()
      local r = post("openai", {fields = {tools = openai_tools}, scenario = "tool_calls=get_weather"})
      assert.are.equal(400, r.status)
      assert.matches("NAME%(JSON_ARGS%)", r.body)
      r = post("openai", {fields = {tools = openai_tools}, scenario = "tool_calls=" .. encode("f([1])")})
      assert.are.equal(400, r.status)
      assert.matches("not an object", r.body)
    end)

    it("answers with text once the last message is a tool's result", function()
      local messages = {{role = "user", content = "weather in Paris?"},
        {role = "assistant", content = cjson.null, tool_calls = {{id = "call_1", type = "function",
          ["function"] = {name = "get_weather", arguments = '{"city":"Paris","days":1}'}}}},
        {role = "tool", tool_call_id = "call_1", content = "sunny"}}
      local m, finish = message({messages = messages})
      assert.are.equal("stop", finish)
      assert.are.equal("Mock reply to: weather in Paris?", m.content)
      -- the same scripted: the loop still ends
      m, finish = message({messages = messages}, "tool_calls=" .. encode("get_time()"))
      assert.are.same({"stop", "Mock reply to: weather in Paris?"}, {finish, m.content})
      -- strict still refuses a tool message without the assistant's tool_calls
      local r = post("openai", {fields = {tools = openai_tools, messages = {messages[1], messages[3]}}})
      assert.are.equal(400, r.status)
      assert.are.equal("messages.[1].role", cjson.decode(r.body).error.param)
    end)

    it("streams each call's id and name first, its arguments in pieces, then tool_calls", function()
      local r = post("openai", {fields = {tools = openai_tools, stream = true,
        stream_options = {include_usage = true}},
        scenario = "tool_calls=" .. encode('get_weather({"city":"Paris","days":3})+get_time({"zone":"UTC"})')})
      assert.are.equal(200, r.status)
      local evs = sse_events(r.body)
      assert.are.equal("[DONE]", evs[#evs].data)
      local calls, finish, usage, pieces = {}, nil, nil, 0
      for i = 1, #evs - 1 do
        local c = cjson.decode(evs[i].data)
        local ch = c.choices[1]
        if ch and ch.delta.tool_calls then
          local d = ch.delta.tool_calls[1]
          local call = calls[d.index + 1]
          if call == nil then
            assert.is_string(d.id)
            assert.are.equal("function", d.type)
            call = {name = d["function"].name, args = d["function"].arguments}
            calls[d.index + 1] = call
          else
            assert.is_nil(d.id)
            assert.is_nil(d["function"].name)
            call.args = call.args .. d["function"].arguments
            pieces = pieces + 1
          end
        elseif ch and ch.finish_reason ~= cjson.null then
          finish = ch.finish_reason
        elseif c.usage ~= cjson.null then
          usage = c.usage
        end
      end
      assert.are.equal("tool_calls", finish)
      assert.is_true(pieces >= 4, pieces .. " argument pieces")
      assert.are.same({name = "get_weather", args = '{"city":"Paris","days":3}'}, calls[1])
      assert.are.same({name = "get_time", args = '{"zone":"UTC"}'}, calls[2])
      assert.is_true(usage.completion_tokens > 0)
    end)
  end)

  describe("Anthropic", function()
    local function answer(fields, scenario)
      fields.tools = fields.tools or anthropic_tools
      return json(post("anthropic", {fields = fields, scenario = scenario}))
    end

    it("auto calls the first tool, any and a named tool force one, none answers text", function()
      local b = answer({})
      assert.are.equal("tool_use", b.stop_reason)
      assert.are.same({"tool_use", "get_weather"}, {b.content[1].type, b.content[1].name})
      assert.matches("^toolu_", b.content[1].id)
      assert_weather_args(b.content[1].input)
      b = answer({tool_choice = {type = "auto"}})
      assert.are.equal("get_weather", b.content[1].name)
      b = answer({tool_choice = {type = "tool", name = "get_time"}})
      assert.are.same({"get_time", {zone = "UTC"}}, {b.content[1].name, b.content[1].input})
      b = answer({tool_choice = {type = "any"}})
      assert.are.equal("tool_use", b.stop_reason)
      b = answer({tool_choice = {type = "none"}})
      assert.are.same({"end_turn", "text"}, {b.stop_reason, b.content[1].type})
    end)

    it("scripted calls are tool_use blocks, malformed input leaves the schema", function()
      local b = answer({}, "tool_calls=" .. encode('get_time({"zone":"CET"})+get_weather({"city":"Oslo","days":2})'))
      assert.are.equal(2, #b.content)
      assert.are.same({"get_time", {zone = "CET"}}, {b.content[1].name, b.content[1].input})
      assert.are.same({"get_weather", {city = "Oslo", days = 2}}, {b.content[2].name, b.content[2].input})
      assert.are_not.equal(b.content[1].id, b.content[2].id)
      b = answer({tool_choice = {type = "tool", name = "get_weather"}}, "tool_args=malformed")
      assert.is_nil(b.content[1].input.city)   -- a required property is missing
      assert.is_true(b.content[1].input.mock_malformed)
    end)

    it("answers with text after a tool_result, and strict accepts the alternation", function()
      local messages = {{role = "user", content = "weather in Paris?"},
        {role = "assistant", content = {{type = "tool_use", id = "toolu_1", name = "get_weather",
          input = {city = "Paris", days = 1}}}},
        {role = "user", content = {{type = "tool_result", tool_use_id = "toolu_1", content = "sunny"}}}}
      local b = answer({messages = messages})
      assert.are.same({"end_turn", "Mock reply to: weather in Paris?"}, {b.stop_reason, b.content[1].text})
      local r = post("anthropic", {fields = {tools = anthropic_tools, messages = {messages[1], messages[1]}}})
      assert.are.equal(400, r.status)   -- still: roles must alternate
    end)

    it("streams a tool_use block per call with input_json_delta pieces", function()
      local r = post("anthropic", {fields = {tools = anthropic_tools, stream = true},
        scenario = "tool_calls=" .. encode('get_weather({"city":"Paris","days":3})+get_time({"zone":"UTC"})')})
      assert.are.equal(200, r.status)
      local blocks, names, stop = {}, {}, nil
      for _, ev in ipairs(sse_events(r.body)) do
        local d = cjson.decode(ev.data)
        assert.are.equal(ev.event, d.type)
        if d.type == "content_block_start" then
          assert.are.same({}, d.content_block.input)
          names[d.index + 1], blocks[d.index + 1] = d.content_block.name, ""
        elseif d.type == "content_block_delta" then
          assert.are.equal("input_json_delta", d.delta.type)
          blocks[d.index + 1] = blocks[d.index + 1] .. d.delta.partial_json
        elseif d.type == "message_delta" then
          stop = d.delta.stop_reason
        end
      end
      assert.are.same({"get_weather", "get_time"}, names)
      assert.are.same({{city = "Paris", days = 3}, {zone = "UTC"}},
        {cjson.decode(blocks[1]), cjson.decode(blocks[2])})
      assert.are.equal("tool_use", stop)
    end)
  end)

  describe("Gemini", function()
    local function candidate(fields, scenario, stream)
      fields.tools = fields.tools or gemini_tools
      local r = post("gemini", {fields = fields, scenario = scenario, stream_path = stream})
      assert.are.equal(200, r.status, r.body)
      if stream then return r end
      local b = cjson.decode(r.body)
      return b.candidates[1], b
    end

    it("AUTO calls the first declaration, ANY the allowed one, NONE answers text", function()
      local c, b = candidate({})
      assert.are.equal("STOP", c.finishReason)
      assert.are.equal("model", c.content.role)
      local call = c.content.parts[1].functionCall
      assert.are.equal("get_weather", call.name)
      assert_weather_args(call.args)   -- an object, not a string
      assert.is_true(b.usageMetadata.candidatesTokenCount > 0)
      c = candidate({toolConfig = {functionCallingConfig = {mode = "ANY",
        allowedFunctionNames = {"get_time"}}}})
      assert.are.same({name = "get_time", args = {zone = "UTC"}}, c.content.parts[1].functionCall)
      c = candidate({toolConfig = {functionCallingConfig = {mode = "NONE"}}})
      assert.are.equal("Mock reply to: " .. wire.PROMPT, c.content.parts[1].text)
    end)

    it("scripted calls are functionCall parts; malformed args leave the schema", function()
      local c = candidate({}, "tool_calls=" .. encode('get_time({"zone":"CET"}) get_weather({"city":"Rome","days":5})'))
      assert.are.same({{functionCall = {name = "get_time", args = {zone = "CET"}}},
        {functionCall = {name = "get_weather", args = {city = "Rome", days = 5}}}}, c.content.parts)
      c = candidate({}, "tool_args=malformed")
      assert.are.same({mock_malformed = true}, c.content.parts[1].functionCall.args)
    end)

    it("answers with text after a functionResponse, which strict accepts", function()
      local contents = {{role = "user", parts = {{text = "weather in Paris?"}}},
        {role = "model", parts = {{functionCall = {name = "get_weather", args = {city = "Paris", days = 1}}}}},
        {role = "user", parts = {{functionResponse = {name = "get_weather", response = {sky = "sunny"}}}}}}
      local c = candidate({contents = contents})
      assert.are.equal("Mock reply to: weather in Paris?", c.content.parts[1].text)
      local r = post("gemini", {fields = {tools = gemini_tools,
        contents = {{role = "tool", parts = {{text = "x"}}}}}})
      assert.are.equal(400, r.status)   -- still: only user and model roles
    end)

    it("streams the functionCall parts whole in one event", function()
      local r = candidate({}, "tool_calls=" .. encode('get_time({"zone":"CET"})+get_weather()'), true)
      local evs = sse_events(r.body)
      assert.are.equal(1, #evs)
      local c = cjson.decode(evs[1].data).candidates[1]
      assert.are.equal("STOP", c.finishReason)
      assert.are.same({{functionCall = {name = "get_time", args = {zone = "CET"}}},
        {functionCall = {name = "get_weather", args = {}}}}, c.content.parts)
    end)
  end)

  it("logs each tool request like any other", function()
    post("openai", {fields = {tools = openai_tools}})
    post("gemini", {fields = {tools = gemini_tools}})
    local s = server:stats()
    assert.are.equal(2, s.requests)
  end)
end)
