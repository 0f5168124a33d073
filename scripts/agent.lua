-- An agent with two tools, twice: tide.Predict with native tool calls (a turn's
-- calls run side by side), then tide.ReAct in DSPy's format.
--   scripts/with_mockllm build/tide scripts/agent.lua                (local mock server)
--   TIDE_MODEL=openai/gpt-4o-mini build/tide scripts/agent.lua       (a real provider)
-- Against the mock server the model's turns are scripted (mockllm's tool_turns=
-- and react= scenario keys): it asks for both cities' weather in one turn.
local tide = require "tide"
local script = require "tide.script"

local _, _, lm = script.setup(arg, "scripts/agent.lua")
local mock = os.getenv("MOCKLLM_URL")

--- The LM, or against the mock server one whose replies follow this script.
local used = {}
local function scripted(key, value)
  local l = lm
  if lm.model == "openai/mock" and mock then
    local encoded = value:gsub("[^%w_()]", function(c) return string.format("%%%02X", c:byte()) end)
    l = tide.LM("openai/mock", {api_key = "mock", base_url = mock .. "/v1",
      headers = {["X-Mock-Scenario"] = key .. "=" .. encoded}})
  end
  used[#used + 1] = l
  return l
end

local CITIES = {oslo = {c = 4, sky = "sleet"}, lima = {c = 19, sky = "overcast"}}

-- A slow service: each lookup waits 300 ms, as a weather API might.
local weather = tide.Tool{name = "weather", desc = "Current weather in a city.",
  args = {city = "str", unit = "one of: C, F"},
  fn = function(args)
    tide.sleep(0.3)
    local w = CITIES[args.city:lower()]
    if not w then error("no weather station in " .. args.city) end
    local t = args.unit == "F" and w.c * 9 / 5 + 32 or w.c
    return string.format("%s: %g %s, %s", args.city, t, args.unit, w.sky)
  end}

local clock = tide.Tool(function(args) return os.date("!%H:%M", os.time()) .. " " .. args.zone end,
  {name = "clock", desc = "The time now in a zone.", args = {zone = "one of: UTC, CET"}})

local question = "Is it warmer in Oslo or Lima right now?"

print("-- tide.Predict with tools")
local agent = tide.Predict("question -> answer", {tools = {weather, clock}, max_iters = 4})
local t0 = tide.now()
local r = agent({question = question},
  {lm = scripted("tool_turns", 'weather({"city":"Oslo","unit":"C"})+weather({"city":"Lima","unit":"C"})')})
for _, c in ipairs(r.tool_calls) do
  print(string.format("  turn %d  %-8s %-36s -> %s  (%.2f s)", c.turn, c.name,
    tide.json.encode(c.args), c.result, c.seconds))
end
print(string.format("  answer: %s  (%.2f s in all)", r.answer, tide.now() - t0))

print("-- tide.ReAct")
local react = tide.ReAct("question -> answer", {tools = {weather, clock}, max_iters = 5})
local p = react({question = question}, {lm = scripted("react",
  'weather({"city":"Oslo","unit":"C"})|weather({"city":"Lima","unit":"C"})|finish({})')})
local i = 0
while p.trajectory["tool_name_" .. i] do
  print(string.format("  step %d  %s %s -> %s", i, p.trajectory["tool_name_" .. i],
    tide.json.encode(p.trajectory["tool_args_" .. i]), p.trajectory["observation_" .. i]))
  i = i + 1
end
print("  answer: " .. p.answer)
local tokens, calls = 0, 0
for _, l in ipairs(used) do tokens, calls = tokens + l.usage.total, calls + #l.history end
print(string.format("usage: %d tokens in %d calls", tokens, calls))
