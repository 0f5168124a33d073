-- tide.LM against what real providers sent: recorded tool-call responses (OpenAI's
-- parallel calls streamed and not, Anthropic's tool_use after text, Gemini's
-- functionCall), replayed over HTTP on 127.0.0.1 in small pieces by
-- spec/support/replay_server.js.
local tide = require "tide"
local cjson = require "cjson"
local assert_clean = require "support.clean"
local spawn = require "support.spawn"

local DIR = "spec/fixtures/recorded"

local function start()
  local server, port = {}
  server.pipe, server.pid, port = spawn("node spec/support/replay_server.js " .. DIR,
    "^listening on 127%.0%.0%.1 (%d+)$", "the replay server")
  server.port = tonumber(port)
  server.url = "http://127.0.0.1:" .. server.port
  function server.stop()
    os.execute("kill " .. server.pid .. " 2>/dev/null")
    server.pipe:close()
  end
  function server.last()
    return cjson.decode(tide.request{url = server.url .. "/__last", timeout = 10}.body)
  end
  return server
end

describe("tide.LM against recorded provider responses", function()
  local server
  setup(function() server = start() end)
  teardown(function() server.stop() end)
  after_each(assert_clean)

  local weather = tide.Tool{name = "weather", desc = "Current weather in a city.",
    args = {city = "str", unit = "one of: C, F"}, fn = function(a) return a.city end}
  local USER = {role = "user", content = "Weather in Oslo and Lima?"}

  local function lm(model, recording, base)
    return tide.LM(model, {api_key = "sk-recorded", base_url = server.url .. (base or ""),
      cache = false, num_retries = 0, headers = {["x-replay"] = recording}})
  end

  local function assert_oslo_lima(r)
    assert.are.equal("tool_calls", r.finish_reason)
    assert.are.equal(2, #r.tool_calls)
    assert.are.same({id = "call_8sY0fGJq3Zb1mQwRk2LhVt7C", name = "weather",
                     args = {city = "Oslo", unit = "C"}}, r.tool_calls[1])
    assert.are.same({id = "call_Xw2Lm9Rt4Pq7Nz5Vb1Ks3Hd0", name = "weather",
                     args = {city = "Lima", unit = "C"}}, r.tool_calls[2])
    assert.are.equal(87, r.usage.input)
    assert.are.equal(51, r.usage.output)
  end

  it("reads OpenAI's streamed parallel tool calls as a result with finish_reason tool_calls", function()
    local model = lm("openai/gpt-4o-mini", "openai_tool_calls.sse", "/v1")
    local pieces = {}
    local it, final, s, closer = model:stream{messages = {USER}, tools = {weather}}
    for piece in it, final, s, closer do pieces[#pieces + 1] = piece end
    assert.are.same({}, pieces)                       -- no text, only calls
    assert_oslo_lima(final)
    local sent = cjson.decode(server.last().body)
    assert.are.equal("/v1/chat/completions", server.last().path)
    assert.are.equal("weather", sent.tools[1]["function"].name)
    assert.are.same({"C", "F"}, sent.tools[1]["function"].parameters.properties.unit.enum)
    assert.is_true(sent.stream)
  end)

  it("reads OpenAI's tool calls not streamed", function()
    local r = lm("openai/gpt-4o-mini", "openai_tool_calls.json", "/v1"):call{messages = {USER}, tools = {weather}}
    assert_oslo_lima(r)
    assert.are.equal("", r.text)
  end)

  it("reads Anthropic's text then tool_use, streamed, with input_json_delta pieces", function()
    local model = lm("anthropic/claude-3-5-haiku-20241022", "anthropic_tool_use.sse")
    local text = {}
    local it, r, s, closer = model:stream{messages = {USER}, tools = {weather}}
    for piece in it, r, s, closer do text[#text + 1] = piece end
    assert.are.equal("I'll check the weather in Oslo.", table.concat(text))
    assert.are.equal("tool_calls", r.finish_reason)
    assert.are.same({{id = "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name = "weather",
                      args = {city = "Oslo", unit = "C"}}}, r.tool_calls)
    assert.are.equal(384, r.usage.input)
    assert.are.equal(89, r.usage.output)
    assert.are.equal("weather", cjson.decode(server.last().body).tools[1].name)
  end)

  it("reads Gemini's streamed functionCall part", function()
    local model = lm("gemini/gemini-2.5-flash", "gemini_function_call.sse")
    local it, r, s, closer = model:stream{messages = {USER}, tools = {weather}}
    for _ in it, r, s, closer do end
    assert.are.equal("tool_calls", r.finish_reason)
    assert.are.equal(1, #r.tool_calls)
    assert.are.equal("weather", r.tool_calls[1].name)
    assert.are.same({city = "Oslo", unit = "C"}, r.tool_calls[1].args)
    assert.matches(":streamGenerateContent", server.last().path)
  end)
end)
