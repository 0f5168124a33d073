--- agent.lua: issue 17's speed goals for tools and agents, against mockllm.
--
--   tide scripts/bench/agent.lua [MOCKLLM_URL] [ROUNDS] [STEPS]
--   scripts/with_mockllm build/tide scripts/bench/agent.lua    (MOCKLLM_URL from there)
--
-- 1. A turn with two tools that each wait 300 ms: tide.Predict's tool loop runs
--    them side by side, so the turn takes ~0.3 s, not 0.6 s (limit = 1, the
--    calls one after the other, is shown beside it).  The turn's time is read
--    from the calls' own records: the first start to the last end.
-- 2. ReAct's CPU per step beside a plain Predict call's (the goal: within 1.5×):
--    a ReAct of STEPS scripted steps, then finish and the extract, against the
--    same number of plain calls; CPU per LM call, the server answering at once.
-- ROUNDS defaults to 20, 3 with BENCH_QUICK=1.  Prints one line per measure.
local tide = require "tide"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"

local args = {table.unpack(arg)}
local url = args[1] and args[1]:match("^https?://") and table.remove(args, 1) or os.getenv("MOCKLLM_URL")
if not url then
  io.stderr:write("usage: agent.lua [MOCKLLM_URL] [ROUNDS] [STEPS]\n")
  os.exit(2)
end
local quick = os.getenv("BENCH_QUICK") == "1"
local rounds = math.tointeger(tonumber(args[1] or (quick and "3" or "20")))
local steps = math.tointeger(tonumber(args[2] or "4"))

local function encode(s)
  return (s:gsub("[^%w_()]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function lm_with(scenario)
  return tide.LM("openai/gpt-4o-mini", {api_key = "sk-bench", base_url = url .. "/v1",
    cache = false, headers = scenario and {["X-Mock-Scenario"] = scenario} or nil})
end

-- ---- 1. two 300 ms tools in one turn ---------------------------------------------------

local function waiting(name)
  return tide.Tool{name = name, desc = "Waits 300 ms, as a slow API does.", args = {q = "str"},
    fn = function(a) tide.sleep(0.3); return name .. " says " .. a.q end}
end
local tools = {waiting("lookup_a"), waiting("lookup_b")}
local turn_lm = lm_with("tool_turns=" .. encode('lookup_a({"q":"x"})+lookup_b({"q":"y"})'))

local function turn_seconds(limit)
  local agent = tide.Predict("question -> answer", {tools = tools, limit = limit})
  local total = 0
  for r = 1, rounds do
    local p = agent({question = "turn " .. r}, {lm = turn_lm})
    local first, last = math.huge, -math.huge
    for _, c in ipairs(p.tool_calls) do
      first, last = math.min(first, c.started), math.max(last, c.finished)
    end
    total = total + (last - first)
  end
  return total / rounds
end

local parallel, sequential = turn_seconds(nil), turn_seconds(1)
print(string.format("tool-turn  two tools x 300 ms: %.3f s a turn side by side, %.3f s one " ..
  "after the other (limit = 1); %d rounds", parallel, sequential, rounds))

-- ---- 2. ReAct CPU per step -----------------------------------------------------------

local clock = tide.Tool{name = "clock", desc = "The time.", args = {}, fn = function() return "12:00" end}
local script = {}
for i = 1, steps do script[i] = "clock({})" end
script[#script + 1] = "finish({})"
local react_lm = lm_with("react=" .. encode(table.concat(script, "|")))
local react = tide.ReAct("question -> answer", {tools = {clock}, max_iters = steps + 1})
local plain = tide.Predict("question -> answer")
local plain_lm = lm_with(nil)

local calls_per_react = steps + 2   -- the steps, finish, the extract

-- The two sides take turns round by round, so that a drift in the machine's speed
-- (or the collector's debt) falls on both; CPU is the process's, from /proc.
local function one_react(r) react({question = "What time is it? " .. r}, {lm = react_lm}) end
local function plain_calls(r)
  for i = 1, calls_per_react do plain({question = "What time is it? " .. r .. "." .. i}, {lm = plain_lm}) end
end
one_react(0)   -- warm: connections, formatted system messages
plain_calls(0)
local function cpu_of(fn, r)
  local m = measure.start()
  fn(r)
  return m:cpu()
end
local react_s, plain_s = 0, 0
for r = 1, rounds do
  react_s = react_s + cpu_of(one_react, r)
  plain_s = plain_s + cpu_of(plain_calls, r)
end
local calls = rounds * calls_per_react
local react_ms, plain_ms = react_s * 1000 / calls, plain_s * 1000 / calls
print(string.format("react-cpu  %.3f ms per ReAct LM call (%d steps + finish + extract), %.3f ms " ..
  "per plain Predict call: %.2fx; %d rounds", react_ms, steps, plain_ms, react_ms / plain_ms, rounds))
