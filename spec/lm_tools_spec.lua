-- Native tool calling through lm:call, in the three wire formats, against mockllm
-- over real sockets (strict: it refuses what the real APIs refuse): tools and
-- tool_choice out, r.tool_calls = {{id, name, args}} back, and a conversation
-- that sends the calls and their results back for a text answer.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"

local lm_server = require "support.lm_server"

local PROVIDERS = lm_server.PROVIDERS

local encode = mockllm.encode   -- a scenario value for the header

describe("lm:call with tools", function()
  local server = mockllm.serve()

  local function lm_for(p, scenario, opts) return lm_server.lm_for(server, p, scenario, opts) end

  local weather = tide.Tool{name = "weather", desc = "Current weather in a city.",
    args = {city = "str", days = "int"},
    fn = function(args) return string.format("sunny in %s for %d days", args.city, args.days) end}
  local clock = tide.Tool{name = "clock", desc = "The time in a zone.", args = {zone = "one of: UTC, CET"},
    fn = function(args) return "12:00 " .. args.zone end}
  local USER = {role = "user", content = "Weather in Oslo?"}

  for _, p in ipairs(PROVIDERS) do
    describe(p.name, function()
      it("gets the first tool called with typed arguments, never the empty error", function()
        local lm = lm_for(p)
        local r = lm:call{messages = {USER}, tools = {weather, clock}}
        assert.are.equal("tool_calls", r.finish_reason)
        assert.are.equal(1, #r.tool_calls)
        local c = r.tool_calls[1]
        assert.are.equal("weather", c.name)
        assert.is_string(c.id)
        assert.is_string(c.args.city)
        assert.are.equal("integer", math.type(c.args.days))
        assert.are.equal("", r.text)
        assert.are.equal(1, lm.usage.calls)
        assert.is_true(r.usage.output > 0)
        assert.are.same(r.tool_calls, lm.history[1].tool_calls)   -- history shows what was asked
      end)

      it("runs a two-step conversation: call, tool result, text answer", function()
        local lm = lm_for(p)
        local messages = {{role = "system", content = "Use tools."}, USER}
        local r = lm:call{messages = messages, tools = {weather, clock}, tool_choice = "auto"}
        local c = r.tool_calls[1]
        local result, err = weather(c.args)
        assert.is_nil(err)
        messages[#messages + 1] = {role = "assistant", content = r.text, tool_calls = r.tool_calls}
        messages[#messages + 1] = {role = "tool", tool_call_id = c.id, content = result}
        local r2 = lm:call{messages = messages, tools = {weather, clock}}
        assert.are.equal("stop", r2.finish_reason)
        assert.is_nil(r2.tool_calls)
        assert.matches("Mock reply to: Weather in Oslo", r2.text)
        assert.are.same({2, 2}, {server:stats().requests, lm.usage.calls})
      end)

      it("sends several scripted calls and their results back in one turn", function()
        local lm = lm_for(p, "tool_calls=" .. encode('clock({"zone":"CET"})+weather({"city":"Lima","days":2})'))
        local r = lm:call{messages = {USER}, tools = {weather, clock}}
        assert.are.same({"clock", "weather"}, {r.tool_calls[1].name, r.tool_calls[2].name})
        assert.are.same({zone = "CET"}, r.tool_calls[1].args)
        assert.are.same({city = "Lima", days = 2}, r.tool_calls[2].args)
        local messages = {USER, {role = "assistant", tool_calls = r.tool_calls}}
        for _, c in ipairs(r.tool_calls) do
          local tool = c.name == "clock" and clock or weather
          messages[#messages + 1] = {role = "tool", tool_call_id = c.id, content = (tool(c.args))}
        end
        local r2 = lm_for(p):call{messages = messages, tools = {weather, clock}}
        assert.matches("Mock reply to: Weather in Oslo", r2.text)
      end)

      it("takes tool_choice none (text) and a tool's name (that tool)", function()
        local lm = lm_for(p)
        local r = lm:call{messages = {USER}, tools = {weather, clock}, tool_choice = "none"}
        assert.is_nil(r.tool_calls)
        assert.matches("Mock reply to", r.text)
        if p.name ~= "anthropic" then   -- mockllm keeps Anthropic's forced tool structured output
          local forced = lm:call{messages = {USER}, tools = {weather, clock}, tool_choice = "clock"}
          assert.are.equal("clock", forced.tool_calls[1].name)
          assert.is_truthy(({UTC = true, CET = true})[forced.tool_calls[1].args.zone])
        end
      end)

      it("builds the wire format's tool shapes", function()
        local providers = require "tide.providers"
        local prov, cfg = providers.resolve(p.model, {api_key = "k", base_url = p.base(server)})
        local req = {messages = {USER, {role = "assistant", tool_calls = {{id = "c1", name = "weather",
          args = {city = "Oslo", days = 1}}}}, {role = "tool", tool_call_id = "c1", content = "sunny"}},
          tools = {weather:spec()}, tool_choice = "weather", tool_messages = true}
        local body = cjson.decode(prov.build(cfg, req).body)
        if p.name == "openai" then
          assert.are.equal("weather", body.tools[1]["function"].name)
          assert.are.equal("weather", body.tool_choice["function"].name)
          assert.are.equal(cjson.null, body.messages[2].content)
          assert.are.same({city = "Oslo", days = 1},
            cjson.decode(body.messages[2].tool_calls[1]["function"].arguments))
          assert.are.same({"tool", "c1", "sunny"},
            {body.messages[3].role, body.messages[3].tool_call_id, body.messages[3].content})
        elseif p.name == "anthropic" then
          assert.are.equal("object", body.tools[1].input_schema.type)
          assert.are.same({type = "tool", name = "weather"}, body.tool_choice)
          assert.are.equal("tool_use", body.messages[2].content[1].type)
          assert.are.same({"user", "tool_result", "c1"}, {body.messages[3].role,
            body.messages[3].content[1].type, body.messages[3].content[1].tool_use_id})
        else
          assert.are.equal("weather", body.tools[1].functionDeclarations[1].name)
          assert.are.same({mode = "ANY", allowedFunctionNames = {"weather"}},
            body.toolConfig.functionCallingConfig)
          assert.are.equal("weather", body.contents[2].parts[1].functionCall.name)
          assert.are.same({"user", "weather"}, {body.contents[3].role,
            body.contents[3].parts[1].functionResponse.name})
        end
      end)

      it("keeps the tools in the cache key, and serves a cached call's tool_calls", function()
        local lm = lm_for(p, nil, {cache = require("tide.cache").new{dir = false}})
        local r1 = lm:call{messages = {USER}, tools = {weather, clock}}
        local r2 = lm:call{messages = {USER}, tools = {weather, clock}}
        assert.is_true(r2.cached)
        assert.are.same(r1.tool_calls, r2.tool_calls)
        local r3 = lm:call{messages = {USER}, tools = {clock}}
        assert.is_false(r3.cached)
        assert.are.equal("clock", r3.tool_calls[1].name)
        local r4 = lm:call{messages = {USER}}
        assert.is_false(r4.cached)
        assert.are.equal(3, server:stats().requests)
      end)
    end)
  end

  it("keeps the first sample's tool_calls when n calls are made (Anthropic)", function()
    local r = lm_for(PROVIDERS[2]):call{messages = {USER}, tools = {weather}, n = 2}
    assert.are.equal("weather", r.tool_calls[1].name)
    assert.are.equal(2, server:stats().requests)
  end)

  it("raises a typed parse error with the raw text for malformed arguments (OpenAI)", function()
    local lm = lm_for(PROVIDERS[1], "tool_args=malformed")
    local ok, err = pcall(lm.call, lm, {messages = {USER}, tools = {weather}})
    assert.is_false(ok)
    assert.are.equal("parse", err.kind)
    assert.are.equal("weather", err.tool)
    assert.matches(',"$', err.raw_text)
    assert.is_false(err.retryable)
  end)

  it("lets the tool report arguments that miss its schema (Anthropic, Gemini)", function()
    for i = 2, 3 do
      local r = lm_for(PROVIDERS[i], "tool_args=malformed"):call{messages = {USER}, tools = {weather}}
      local text, err = weather(r.tool_calls[1].args)
      assert.matches("bad arguments: missing argument", text)
      assert.are.equal("bad_request", err.kind)
    end
  end)

  it("refuses bad tools, tool_choice and tool messages at the caller's line", function()
    local lm = lm_for(PROVIDERS[1])
    assert.has_error(function() lm:call{messages = {USER}, tools = {}} end,
      "bad argument 'tools' to 'call' (a non-empty list of tools expected)")
    local ok, msg = pcall(lm.call, lm, {messages = {USER}, tools = {weather}, tool_choice = "nope"})
    assert.is_false(ok)
    assert.matches("bad argument 'tool_choice' to 'call'", msg)
    ok, msg = pcall(lm.call, lm, {messages = {USER}, tool_choice = "auto"})
    assert.matches("needs `tools`", msg)
    ok, msg = pcall(lm.call, lm, {messages = {USER, {role = "tool", content = "x"}}})
    assert.matches("messages%[2%]%.tool_call_id", msg)
    ok, msg = pcall(lm.call, lm, {messages = {USER, {role = "assistant", tool_calls = {{name = "w"}}}}})
    assert.matches("messages%[2%]%.tool_calls%[1%]%.id", msg)
    assert.are.equal(0, server:stats().requests)
  end)
end)

describe("lm:stream with tools", function()
  local server = mockllm.serve()

  local weather = tide.Tool{name = "weather", args = {city = "str", days = "int"}, fn = function() end}
  local clock = tide.Tool{name = "clock", args = {zone = "one of: UTC, CET"}, fn = function() end}
  local USER = {role = "user", content = "Weather in Oslo?"}

  local function lm_for(p, scenario) return lm_server.lm_for(server, p, scenario) end

  for _, p in ipairs(PROVIDERS) do
    it(p.name .. ": assembles streamed calls into final.tool_calls, as lm:call gives them", function()
      local scenario = "tool_calls=" .. encode('clock({"zone":"CET"})+weather({"city":"Lima","days":2})')
      local pieces = {}
      local next_piece, final = lm_for(p, scenario):stream{messages = {USER}, tools = {weather, clock}}
      for piece in next_piece, final do pieces[#pieces + 1] = piece end
      assert.are.equal("", table.concat(pieces))
      assert.are.equal("tool_calls", final.finish_reason)
      local r = lm_for(p, scenario):call{messages = {USER}, tools = {weather, clock}}
      assert.are.same({"clock", "weather"}, {final.tool_calls[1].name, final.tool_calls[2].name})
      assert.are.same(r.tool_calls[1].args, final.tool_calls[1].args)
      assert.are.same({city = "Lima", days = 2}, final.tool_calls[2].args)
      if p.name ~= "gemini" then   -- Gemini's calls have no ids: tide numbers them
        assert.are.same({r.tool_calls[1].id ~= nil, r.tool_calls[2].id ~= nil},
          {final.tool_calls[1].id ~= nil, final.tool_calls[2].id ~= nil})
      end
      assert.are.equal(2, server:stats().requests)
    end)
  end

  it("raises a typed parse error for malformed streamed arguments (OpenAI)", function()
    local ok, err = pcall(function()
      local next_piece, final = lm_for(PROVIDERS[1], "tool_args=malformed"):stream{
        messages = {USER}, tools = {weather}}
      for _ in next_piece, final do end
    end)
    assert.is_false(ok)
    assert.are.equal("parse", err.kind)
    assert.matches(',"$', err.raw_text)
  end)
end)
