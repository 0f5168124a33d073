--- optimize.lua: the optimizers' speed and budget figures (issue 16), against
-- mockllm's prompt-dependent model (mock-task).
--
--   tide scripts/bench/optimize.lua MOCKLLM_URL [LATENCY_MS]
--   scripts/with_mockllm build/tide scripts/bench/optimize.lua
--
-- 1. BootstrapFewShot over 20 training examples: the teacher's runs at once
--    (concurrency 16) against the same optimizer one example at a time
--    (concurrency = 1, DSPy's sequential bootstrap): wall seconds and the ratio.
-- 2. MIPROv2 auto = "light" on 20 + 20 examples: wall seconds and LM calls.
-- 3. GEPA with max_metric_calls = 200 on 20 + 20 examples: wall, LM calls (a
--    one-predictor program: they stay under the budget).
-- 4. CPU per example of an optimizer's candidate evaluation against tide.Evaluate on
--    the same 200 examples (latency 0).
-- Every LM call goes to the server (cache = false).  BENCH_QUICK=1 skips MIPROv2
-- and shrinks item 4 to 50 examples.
local tide = require "tide"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"
local run_mod = require "tide.optimize.run"

local url = arg[1] or os.getenv("MOCKLLM_URL")
if not url then
  io.stderr:write("usage: optimize.lua MOCKLLM_URL [LATENCY_MS]\n")
  os.exit(2)
end
local latency = math.tointeger(tonumber(arg[2] or "200"))
local quick = os.getenv("BENCH_QUICK") == "1"

local WORDS = {}
for i = 1, 400 do WORDS[i] = string.format("word%03dx", i) end

local function examples(from, to)
  local out = {}
  for i = from, to do
    out[#out + 1] = tide.Example{word = WORDS[i], answer = WORDS[i]:reverse()}:with_inputs("word")
  end
  return out
end

local function metric(ex, pred) return ex.answer == pred.answer end
local function feedback(ex, pred)
  if ex.answer == pred.answer then return {score = 1, feedback = "Correct."} end
  return {score = 0, feedback = "Wrong: the answer is the letters of the word reversed, " .. ex.answer}
end

local function lm_at(ms)
  return tide.LM("openai/mock-task", {api_key = "sk-bench", base_url = url .. "/v1", cache = false,
    headers = {["X-Mock-Scenario"] = "latency=" .. ms}})
end

local function timed(fn)
  local t0 = tide.now()
  local calls0 = tide.usage().calls
  fn()
  return tide.now() - t0, tide.usage().calls - calls0
end

-- 1. BootstrapFewShot, parallel against sequential
local lm = lm_at(latency)
local train = examples(1, 20)
local function bootstrap(concurrency)
  return timed(function()
    tide.BootstrapFewShot{metric = metric, max_bootstrapped_demos = 20, concurrency = concurrency,
      display_progress = false}:compile(tide.Predict("word -> answer", {lm = lm}), {trainset = train})
  end)
end
local par, par_calls = bootstrap(16)
local seq, seq_calls = bootstrap(1)
print(string.format("bootstrap        20 examples latency=%dms  parallel %.3f s (%d calls)  " ..
  "sequential %.3f s (%d calls)  %.1fx", latency, par, par_calls, seq, seq_calls, seq / par))

-- 2. MIPROv2 light
if not quick then
  local wall, calls = timed(function()
    tide.MIPROv2{metric = metric, auto = "light", seed = 7, display_progress = false}
      :compile(tide.ChainOfThought("word -> answer", {lm = lm}),
        {trainset = examples(1, 20), valset = examples(21, 40), max_bootstrapped_demos = 2,
         max_labeled_demos = 2})
  end)
  print(string.format("mipro-light      20+20 examples latency=%dms  wall %.3f s  LM calls %d", latency, wall, calls))
end

-- 3. GEPA, 200 metric calls
do
  local opt = tide.GEPA{metric = feedback, reflection_lm = lm, max_metric_calls = 200, seed = 1,
    skip_perfect_score = false, display_progress = false}
  local wall, calls = timed(function()
    opt:compile(tide.Predict("word -> answer", {lm = lm}), {trainset = examples(1, 20), valset = examples(21, 40)})
  end)
  print(string.format("gepa-200         20+20 examples latency=%dms  wall %.3f s  LM calls %d (budget 200)  " ..
    "candidates %d", latency, wall, calls, #opt.log.candidates))
end

-- 4. CPU per example: a candidate evaluation against tide.Evaluate
do
  local fast = lm_at(0)
  local n = quick and 50 or 200
  local dev = examples(1, n)
  local program = tide.Predict("word -> answer", {lm = fast})
  local function cpu_per_example(fn)
    local m = measure.start()
    fn()
    return m:cpu() * 1000 / n
  end
  local eval_ms = cpu_per_example(function()
    tide.Evaluate{devset = dev, metric = metric, display_progress = false, display_table = false}(program)
  end)
  local run = run_mod.new("bench", {metric = metric, display_progress = false})
  local cand_ms = cpu_per_example(function() run:evaluate(program, dev, "candidate") end)
  print(string.format("candidate-cpu    %d examples  tide.Evaluate %.3f ms/example  optimizer %.3f ms/example  " ..
    "%.2fx", n, eval_ms, cand_ms, cand_ms / eval_ms))
end
