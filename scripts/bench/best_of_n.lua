--- best_of_n.lua: tide.BestOfN's N attempts at once against the same N in turn.
--
--   tide scripts/bench/best_of_n.lua MOCKLLM_URL [N] [LATENCY_MS] [ROUNDS]
--
-- Issue 18's goal: BestOfN with N = 5 at 200 ms latency takes about one latency of
-- wall time, not five.  Each round asks a fresh question (no cache hit), with a
-- reward that no attempt reaches, so all N attempts are made; the sequential side is
-- the same module called N times in a loop at the same rollouts, as DSPy's BestOfN
-- does.  Prints one line per side: wall seconds per call and CPU ms per attempt.
local tide = require "tide"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"

local url = arg[1] or os.getenv("MOCKLLM_URL")
if not url then
  io.stderr:write("usage: best_of_n.lua MOCKLLM_URL [N] [LATENCY_MS] [ROUNDS]\n")
  os.exit(2)
end
local n = math.tointeger(tonumber(arg[2] or "5"))
local latency = math.tointeger(tonumber(arg[3] or "200"))
local rounds = math.tointeger(tonumber(arg[4] or "5"))

local lm = tide.LM("openai/gpt-4o-mini", {api_key = "sk-bench", base_url = url .. "/v1",
  cache = false, headers = {["X-Mock-Scenario"] = "latency=" .. latency}})
local qa = tide.Predict("question -> answer", {lm = lm})
local never = function() return 0 end
local best = tide.BestOfN(qa, {N = n, reward_fn = never, threshold = 1})

local function side(name, call)
  local m = measure.start()
  local t0 = tide.now()
  for r = 1, rounds do call(string.format("%s question %d at %f", name, r, t0)) end
  local wall = (tide.now() - t0) / rounds
  local cpu_ms = m:cpu() * 1000 / (rounds * n)
  print(string.format("%-16s N=%d latency=%dms  wall/call %.3f s  (%.1f latencies)  cpu/attempt %.3f ms",
    name, n, latency, wall, wall / (latency / 1000), cpu_ms))
end

side("bestofn-parallel", function(q) best{question = q} end)
side("sequential", function(q)
  for i = 0, n - 1 do
    qa({question = q}, {config = {rollout_id = i, temperature = 1.0}})
  end
end)
