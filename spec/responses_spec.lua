-- OpenAI's Responses API: tide.LM("openai/...", {api = "responses"}) against
-- mockllm's /v1/responses over real sockets.  mockllm is strict there: it
-- refuses the Chat Completions parameters that moved (messages, max_tokens,
-- response_format), chat-shaped tools and content parts of the wrong type, so
-- every answer below also checks the request's shape.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local lm_server = require "support.lm_server"

local encode = mockllm.encode   -- a scenario value for the header

describe("the Responses API", function()
  local server = mockllm.serve()

  -- an OpenAI LM (model: gpt-4o-mini unless given) on the Responses API; cache: none unless given
  local function lm_for(model, scenario, cache)
    return lm_server.lm_for(server, {model = "openai/" .. (model or "gpt-4o-mini"),
      base = lm_server.PROVIDERS[1].base}, scenario, {api = "responses", cache = cache or false})
  end

  local function last_path()
    local log = server:get_json("/__log").requests
    return log[#log].path, log[#log]
  end

  -- A raw POST to /v1/responses: what mockllm answers a body the client never sends.
  local function post(body)
    return tide.request{url = server.url .. "/v1/responses", method = "POST", timeout = 10,
      headers = {Authorization = "Bearer sk-raw", ["Content-Type"] = "application/json"},
      body = cjson.encode(body)}
  end

  it("sends input items and instructions and reads output_text, usage and ids", function()
    local lm = lm_for()
    local r = lm:call{messages = {
      {role = "system", content = "You answer briefly."},
      {role = "user", content = "first question"},
      {role = "assistant", content = "first answer"},
      {role = "user", content = "What is the capital of Peru?"},
    }, temperature = 0.2, max_tokens = 200}
    assert.are.equal("Mock reply to: What is the capital of Peru?", r.text)
    assert.are.equal("stop", r.finish_reason)
    assert.matches("^resp_mock_%d+$", r.id)
    assert.matches("^req_", r.request_id)
    assert.are.equal("gpt-4o-mini", r.model)
    assert.are.equal("response", r.raw.object)
    assert.are.equal("You answer briefly.", r.raw.instructions)   -- the system prompt went there
    assert.are.equal(200, r.raw.max_output_tokens)
    assert.is_true(r.usage.input > 0 and r.usage.output > 0)
    assert.are.equal(r.usage.input + r.usage.output, r.usage.total)
    assert.are.equal(0, r.usage.cached)
    assert.are.equal(0, r.usage.reasoning)
    local path, entry = last_path()
    assert.are.equal("/v1/responses", path)
    assert.are.equal("authorization", entry.auth)
  end)

  it("reads cached and reasoning tokens and prices them from the table", function()
    local lm = lm_for("o4-mini", "cached=3")
    local r = lm:call("Think about the capital of Chile, then answer.")
    assert.are.equal(3, r.usage.cached)
    assert.is_true(r.usage.reasoning > 0)
    assert.is_true(r.usage.output > r.usage.reasoning)   -- reasoning is part of output
    assert.are.equal("reasoning", r.raw.output[1].type)
    local price = tide.prices.lookup("openai", "o4-mini")
    local want = ((r.usage.input - 3) * price.input + 3 * price.cached + r.usage.output * price.output) / 1e6
    assert.near(want, r.cost, 1e-15)
    assert.are.equal(3, lm.usage.cached)
  end)

  it("is cut by max_output_tokens as an incomplete response (finish length)", function()
    local lm = lm_for()
    local r = lm:call{prompt = ("a long question about rivers and mountains "):rep(20), max_tokens = 16}
    assert.are.equal("length", r.finish_reason)
    assert.are.equal("incomplete", r.raw.status)
    assert.are.equal("max_output_tokens", r.raw.incomplete_details.reason)
    assert.is_true(#r.text <= 64)
  end)

  it("raises misuse at once for what the API cannot take", function()
    local lm = lm_for()
    local ok, err = pcall(lm.call, lm, {prompt = "x", stop = {"\n"}})
    assert.is_false(ok)
    assert.matches("responses_spec.lua:%d+: tide.LM: the Responses API has no stop sequences", err)
    ok, err = pcall(lm.call, lm, {prompt = "x", max_tokens = 8})
    assert.matches("takes max_tokens >= 16", err, 1, true)
    ok, err = pcall(tide.LM, "anthropic/claude-3-5-haiku", {api = "responses", api_key = "k"})
    assert.is_false(ok)
    assert.matches("anthropic has no Responses API", err, 1, true)
    ok, err = pcall(tide.LM, "openai/gpt-4o", {api = "completions", api_key = "k"})
    assert.matches("bad argument 'opts.api' to 'LM' ('completions': \"chat\" or \"responses\" expected)",
      err, 1, true)
    assert.are.equal(0, server:stats().requests)
  end)

  it("keeps its cache entries apart from the chat API's", function()
    local cache = require("tide.cache").new{memory = 16, dir = false}
    local chat = tide.LM("openai/gpt-4o-mini", {api_key = "k", base_url = server.url .. "/v1", cache = cache})
    local responses = lm_for(nil, nil, cache)
    chat:call("the same prompt twice")
    local r = responses:call("the same prompt twice")
    assert.is_false(r.cached)
    assert.are.equal("response", r.raw.object)
    assert.is_true(responses:call("the same prompt twice").cached)
    assert.are.equal(2, server:stats().requests)
  end)

  it("makes n samples as n calls (a response has one output)", function()
    local lm = lm_for()
    local r = lm:call{prompt = "two samples please", n = 2}
    assert.are.equal(2, #r.texts)
    assert.are.equal(2, server:stats().requests)
  end)

  it("asks for text.format json_schema and gets JSON that fits it", function()
    local lm = lm_for()
    local schema = {type = "object", properties = {city = {type = "string"}, population = {type = "integer"}},
                    required = {"city", "population"}, additionalProperties = false}
    local r = lm:call{prompt = "A city, as JSON.", response_format = {type = "json_schema", name = "city",
      schema = schema, strict = true}}
    local v = cjson.decode(r.text)
    assert.is_string(v.city)
    assert.are.equal("number", type(v.population))
  end)

  it("a refusal is a content_filter error", function()
    local lm = lm_for(nil, "fault=blocked")
    local ok, err = pcall(lm.call, lm, "refuse me")
    assert.is_false(ok)
    assert.are.equal("content_filter", err.kind)
    assert.matches("cannot help", err.reason)
  end)

  it("maps a server error through OpenAI's classification", function()
    local lm = lm_for(nil, "status=429;retry_after=7")
    local ok, err = pcall(lm.call, lm, "limited")
    assert.is_false(ok)
    assert.are.equal("rate_limit", err.kind)
    assert.are.equal(7, err.retry_after)
    assert.are.equal("openai", err.provider)
  end)

  it("runs a predictor: DSPy's chat prompt in, its fields parsed out", function()
    local qa = tide.Predict("question -> answer", {lm = lm_for()})
    local pred = qa{question = "What is the capital of Peru?"}
    assert.is_string(pred.answer)
    assert.are_not.equal("", pred.answer)
    local _, entry = last_path()
    assert.are.equal("/v1/responses", entry.path)
  end)

  describe("tools", function()
    local weather = tide.Tool{name = "weather", desc = "Current weather in a city.",
      args = {city = "str", days = "int"},
      fn = function(args) return string.format("sunny in %s for %d days", args.city, args.days) end}

    it("calls a tool, then answers its result (function_call and function_call_output items)", function()
      local lm = lm_for()
      local messages = {{role = "user", content = "Weather in Oslo?"}}
      local r = lm:call{messages = messages, tools = {weather}}
      assert.are.equal("tool_calls", r.finish_reason)
      local c = r.tool_calls[1]
      assert.are.equal("weather", c.name)
      assert.matches("^call_mock_", c.id)
      assert.is_string(c.args.city)
      assert.are.equal("integer", math.type(c.args.days))
      messages[#messages + 1] = {role = "assistant", content = r.text, tool_calls = r.tool_calls}
      messages[#messages + 1] = {role = "tool", tool_call_id = c.id, content = weather(c.args)}
      local r2 = lm:call{messages = messages, tools = {weather}}
      assert.are.equal("stop", r2.finish_reason)
      assert.matches("Mock reply to: Weather in Oslo", r2.text)
      assert.are.equal(2, server:stats().requests)
    end)

    it("forces the tool tool_choice names", function()
      local clock = tide.Tool{name = "clock", desc = "The time.", args = {zone = "str"},
        fn = function(args) return "12:00 " .. args.zone end}
      local r = lm_for():call{messages = {{role = "user", content = "Weather?"}}, tools = {weather, clock},
        tool_choice = "clock"}
      assert.are.equal("clock", r.tool_calls[1].name)
      assert.is_string(r.tool_calls[1].args.zone)   -- valid against clock's parameters
    end)

    it("streams scripted calls with their argument deltas", function()
      local lm = lm_for(nil, "tool_calls=" .. encode('weather({"city":"Lima","days":2})+weather({"city":"Quito","days":5})'))
      local it, final = lm:stream{messages = {{role = "user", content = "two cities"}}, tools = {weather}}
      for _ in it do end
      assert.are.equal("tool_calls", final.finish_reason)
      assert.are.same({city = "Lima", days = 2}, final.tool_calls[1].args)
      assert.are.same({city = "Quito", days = 5}, final.tool_calls[2].args)
    end)
  end)

  describe("streaming", function()
    it("yields the output_text deltas; they join to the whole answer", function()
      local prompt = "Stream the capital of Norway with many words in the answer please"
      local whole = lm_for("o4-mini"):call(prompt)
      server:reset()
      local lm = lm_for("o4-mini")
      local it, final = lm:stream(prompt)
      local pieces = {}
      for piece in it do pieces[#pieces + 1] = piece end
      assert.is_true(#pieces > 1)
      assert.are.equal(whole.text, table.concat(pieces))
      assert.are.equal(whole.text, final.text)
      assert.are.equal("stop", final.finish_reason)
      assert.are.same(whole.usage, final.usage)
      assert.is_true(final.usage.reasoning > 0)
      assert.matches("^resp_mock_", final.id)
      local _, entry = last_path()
      assert.is_true(entry.stream)
    end)

    it("an incomplete stream ends with finish length", function()
      local lm = lm_for()
      local it, final = lm:stream{prompt = ("stream a long answer about the sea "):rep(20), max_tokens = 16}
      for _ in it do end
      assert.are.equal("length", final.finish_reason)
    end)

    for _, fault in ipairs{"stream_cut", "stream_drop"} do
      it("fault=" .. fault .. " (no response.completed) is an incomplete transport error", function()
        local lm = lm_for(nil, "fault=" .. fault)
        local got = {}
        local ok, err = pcall(function()
          for piece in lm:stream("cut this stream short please, it has words") do got[#got + 1] = piece end
        end)
        assert.is_false(ok)
        assert.are.equal("transport", err.kind)
        if fault == "stream_cut" then   -- a clean end before the end event (a drop is curl's)
          assert.are.equal("incomplete", err.cause)
          assert.matches("response.completed", err.message, 1, true)
        end
        assert.are_not.equal("", err.partial_text)
        assert.are.equal(table.concat(got), err.partial_text)
      end)
    end

    it("an error event is the typed error it names", function()
      local lm = lm_for(nil, "fault=stream_error")
      local ok, err = pcall(function()
        for _ in lm:stream("fail in the middle of the stream, after some words") do end
      end)
      assert.is_false(ok)
      assert.are.equal("server", err.kind)
      assert.matches("scripted stream error", err.message, 1, true)
    end)
  end)

  describe("mockllm refuses what the real API refuses", function()
    it("Chat Completions parameters, chat-shaped tools, wrong content parts", function()
      local cases = {
        {{model = "m", messages = {}}, "'messages'. In the Responses API, this parameter has moved to 'input'"},
        {{model = "m", input = "x", max_tokens = 20}, "has moved to 'max_output_tokens'"},
        {{model = "m", input = "x", response_format = {type = "json_object"}}, "has moved to 'text.format'"},
        {{model = "m", input = "x", max_output_tokens = 5}, "Expected a value >= 16"},
        {{model = "m", input = "x", tools = {{type = "function", ["function"] = {name = "f"}}}},
         "Missing required parameter: 'tools[0].name'"},
        {{model = "m", input = {{role = "user", content = {{type = "text", text = "x"}}}}},
         "'input[0].content[0].type'"},
        {{model = "m", input = {{role = "assistant", content = {{type = "input_text", text = "x"}}}}},
         "'output_text' or 'refusal'"},
        {{input = "x"}, "Missing required parameter: 'model'"},
      }
      for _, case in ipairs(cases) do
        local r = post(case[1])
        assert.are.equal(400, r.status, r.body)
        assert.matches(case[2], cjson.decode(r.body).error.message, 1, true)
      end
    end)
  end)
end)
