-- BestOfN, Refine, MultiChainComparison, Parallel and majority against mockllm over
-- real sockets: attempts in flight at once are counted by the server, prompts are
-- read back from the LM's history.
local tide = require "tide"
local mockllm = require "support.mockllm"

local function text_of(entry)
  local parts = {}
  for _, m in ipairs(entry.messages) do
    parts[#parts + 1] = type(m.content) == "string" and m.content or ""
  end
  return table.concat(parts, "\n")
end

describe("modules over modules", function()
  local server = mockllm.serve()

  local function lm(scenario, opts, model)
    opts = opts or {}
    opts.api_key, opts.base_url, opts.num_retries = "sk-spec", server.url .. "/v1", 0
    if opts.cache == nil then opts.cache = false end
    if scenario then opts.headers = {["X-Mock-Scenario"] = scenario} end
    return tide.LM(model or "openai/gpt-4o-mini", opts)
  end

  describe("tide.BestOfN", function()
    it("runs its N attempts at once, each at its own rollout and temperature 1", function()
      local qa = tide.Predict("question -> answer", {lm = lm("latency=200")})
      local rewards = 0
      local best = tide.BestOfN(qa, {N = 5, threshold = 1e6,
        reward_fn = function(inputs, pred)
          assert.are.equal("Oslo?", inputs.question)
          rewards = rewards + 1
          return #pred.answer
        end})
      local r = best{question = "Oslo?"}
      assert.is_string(r.answer)
      assert.are.equal(5, rewards)                     -- none reached it: every attempt scored
      local s = server:stats()
      assert.are.equal(5, s.requests)                  -- distinct rollouts: no call shared
      assert.are.equal(5, s.peak_in_flight)            -- all five at once
      assert.are.same({}, qa.demos)                    -- the module itself is untouched
      assert.are.same({}, qa.config)
    end)

    it("samples at temperature 1 whatever the module's config says", function()
      -- mockllm refuses any temperature but 1 for a reasoning model, as OpenAI does
      local qa = tide.Predict("question -> answer", {lm = lm(nil, nil, "openai/o3-mini"),
        config = {temperature = 0.7}})
      local _, err = pcall(qa, {question = "q"})
      assert.is_true(tide.is_error(err, "bad_request"), tostring(err))
      local best = tide.BestOfN(qa, {N = 2, threshold = 1, reward_fn = function() return 1 end})
      assert.is_string(best{question = "q"}.answer)
      assert.are.equal(0.7, qa.config.temperature)
    end)

    it("stops the other attempts once one reaches the threshold", function()
      local qa = tide.Predict("question -> answer", {lm = lm("latency=100")})
      local started, finished = 0, 0
      local best = tide.BestOfN(qa, {N = 4, threshold = 1,
        reward_fn = function()
          started = started + 1
          if started == 1 then return 1 end
          tide.sleep(30)        -- the later ones are still scoring when the first passes
          finished = finished + 1
          return 0
        end})
      local r = best{question = "Lima?"}
      assert.is_string(r.answer)
      assert.are.equal(0, finished)                    -- the rest were cancelled
    end)

    it("keeps the best reward when none reaches the threshold", function()
      local qa = tide.Predict("question -> answer", {lm = lm()})
      local n = 0
      local seen = {}
      local best = tide.BestOfN(qa, {N = 3, threshold = 10, reward_fn = function(_, pred)
        n = n + 1
        seen[pred] = n == 2 and 5 or 1     -- the second scored is the best
        return seen[pred]
      end})
      local r = best{question = "q"}
      assert.are.equal(5, seen[r])
    end)

    it("takes booleans and {score = } from reward_fn", function()
      local qa = tide.Predict("question -> answer", {lm = lm()})
      assert.is_string(tide.BestOfN(qa, {N = 2, threshold = 1,
        reward_fn = function() return true end}){question = "q"}.answer)
      assert.is_string(tide.BestOfN(qa, {N = 2, threshold = 1,
        reward_fn = function() return {score = 1, feedback = "ok"} end}){question = "q"}.answer)
    end)

    it("raises a metric error naming reward_fn and the attempt after fail_count failures", function()
      local qa = tide.Predict("question -> answer", {lm = lm()})
      local best = tide.BestOfN(qa, {N = 3, threshold = 1, fail_count = 1,
        reward_fn = function() error("boom") end})
      local ok, err = pcall(best, {question = "q"})
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "metric"))
      assert.matches("BestOfN: reward_fn raised on attempt %d: .*boom", err.message)
      local bad = tide.BestOfN(qa, {N = 2, threshold = 1, reward_fn = function() return "high" end})
      ok, err = pcall(bad, {question = "q"})
      assert.is_true(tide.is_error(err, "metric"))
      assert.matches("returned string", err.message)
    end)

    it("returns a success when only some attempts fail, and raises when every one does", function()
      local qa = tide.Predict("question -> answer", {lm = lm()})
      local calls = 0
      local best = tide.BestOfN(qa, {N = 3, threshold = 1, reward_fn = function()
        calls = calls + 1
        if calls < 3 then error("not this one") end
        return 1
      end})
      assert.is_string(best{question = "q"}.answer)
      local failing = tide.Predict("question -> answer", {lm = lm("status=500")})
      local ok, err = pcall(tide.BestOfN(failing, {N = 3, threshold = 1,
        reward_fn = function() return 1 end}), {question = "q"})
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "server"))
      assert.are.equal(3, server:stats().requests - 3)
    end)

    it("refuses bad arguments at once, naming them", function()
      local qa = tide.Predict("question -> answer")
      assert.has_error(function() tide.BestOfN(function() end, {N = 2, reward_fn = print}) end,
        "bad argument #1 to 'BestOfN' (a tide program (Predict, ChainOfThought, Module, panel) " ..
        "expected, got function)")
      assert.has_error(function() tide.BestOfN(qa, {N = 0, reward_fn = print}) end,
        "bad argument 'N' to 'BestOfN' (an integer >= 1 expected, got 0)")
      assert.has_error(function() tide.BestOfN(qa, {N = 2}) end,
        "bad argument 'reward_fn' to 'BestOfN' (a function(inputs, prediction) → number expected, got nil)")
    end)

    it("names its predictors as DSPy does, so it saves and loads", function()
      local best = tide.BestOfN(tide.ChainOfThought("question -> answer"),
        {N = 2, reward_fn = print, threshold = 1})
      local names = {}
      for i, np in ipairs(best:named_predictors()) do names[i] = np[1] end
      assert.are.same({"module.predict"}, names)
    end)
  end)

  describe("tide.Refine", function()
    it("hands each failed attempt's advice to the next as hint_, in DSPy's OfferFeedback call", function()
      local model = lm()
      tide.configure{lm = model}
      local qa = tide.ChainOfThought("question -> answer")
      local rewards = 0
      local refine = tide.Refine(qa, {N = 3, threshold = 1,
        reward_fn = function() rewards = rewards + 1; return 0 end})
      local r = refine{question = "Capital of Belgium?"}
      assert.is_string(r.answer)
      assert.are.equal(3, rewards)
      local h = model.history
      assert.are.equal(5, #h)            -- attempt, advice, attempt, advice, attempt
      assert.is_nil(text_of(h[1]):find("[[ ## hint_ ## ]]", 1, true))
      local advice = text_of(h[2])
      assert.truthy(advice:find("In the discussion, assign blame to each module that contributed", 1, true))
      assert.truthy(advice:find("[[ ## module_names ## ]]\n[\"predict\"]", 1, true))
      assert.truthy(advice:find("reward_fn = function() rewards = rewards + 1; return 0 end", 1, true))
      assert.truthy(advice:find("Module predict\n\tInput Fields:\n\t\t1. `question` (str)", 1, true))
      assert.truthy(text_of(h[3]):find("[[ ## hint_ ## ]]", 1, true))
      assert.truthy(text_of(h[5]):find("[[ ## hint_ ## ]]", 1, true))
    end)

    it("stops at the first attempt that reaches the threshold", function()
      local model = lm()
      local refine = tide.Refine(tide.Predict("question -> answer", {lm = model}),
        {N = 3, threshold = 1, reward_fn = function() return 1 end})
      refine{question = "q"}
      assert.are.equal(1, #model.history)
    end)
  end)

  describe("tide.MultiChainComparison", function()
    it("compares M reasoning attempts in DSPy's words and answers", function()
      local model = lm("latency=100")
      local cot = tide.ChainOfThought("question -> answer", {lm = model})
      local attempts = tide.map({1, 2, 3}, function(i)
        return cot({question = "2+2?"}, {config = {rollout_id = i, temperature = 1}})
      end)
      assert.are.equal(3, server:stats().peak_in_flight)
      local mcc = tide.MultiChainComparison("question -> answer", {M = 3, lm = model})
      local r = mcc(attempts, {question = "2+2?"})
      assert.is_string(r.rationale)
      assert.is_string(r.answer)
      local prompt = text_of(model.history[#model.history])
      assert.truthy(prompt:find("[[ ## reasoning_attempt_3 ## ]]\n«I'm trying to ", 1, true))
      assert.truthy(prompt:find(" I'm not sure but my prediction is ", 1, true))
      -- its call is made at temperature 0.7, which a reasoning model refuses
      local strict = tide.MultiChainComparison("question -> answer", {M = 3, lm = lm(nil, nil, "openai/o3-mini")})
      local ok, err = pcall(strict, attempts, {question = "2+2?"})
      assert.is_false(ok)
      assert.matches("0.7", err.message)
      assert.has_error(function() mcc({attempts[1]}, {question = "q"}) end,
        "tide.MultiChainComparison: 1 attempts given, M is 3; pass M = 1 when making it")
    end)
  end)

  describe("tide.Parallel", function()
    it("runs (module, example) pairs under a limit, failures in their slots", function()
      local qa = tide.Predict("question -> answer", {lm = lm("latency=100")})
      local failing = tide.Predict("question -> answer", {lm = lm("status=400")})
      local pairs_list = {}
      for i = 1, 6 do
        pairs_list[i] = {i == 4 and failing or qa,
          tide.Example{question = "q" .. i, answer = "a"}:with_inputs("question")}
      end
      local results, failed, errors = tide.Parallel{limit = 3, return_failed_examples = true}(pairs_list)
      assert.are.equal(6, #results)
      assert.are.equal(3, server:stats().peak_in_flight)
      assert.is_string(results[1].answer)
      assert.is_true(tide.is_error(results[4], "bad_request"))
      assert.are.equal("q4", failed[1].question)
      assert.is_true(tide.is_error(errors[1], "bad_request"))
      local ok, err = pcall(tide.Parallel{max_errors = 0}, {{failing, {question = "x"}}})
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "max_errors"))
    end)
  end)

  describe("tide.majority", function()
    it("returns the first prediction with the most common normalized value", function()
      local P = tide.Prediction
      local votes = {P{answer = "Paris"}, P{answer = "the Lyon"}, P{answer = "paris!"}, P{answer = "Lyon"}}
      assert.are.equal(votes[1], tide.majority(votes, "answer"))   -- a tie: the first seen
      table.insert(votes, P{answer = "LYON"})
      assert.are.equal(votes[2], tide.majority(votes, "answer"))
      local exact = {P{answer = "a"}, P{answer = "A"}, P{answer = "A"}}
      assert.are.equal(exact[2], tide.majority(exact, "answer", false))
      local one = tide.Prediction({answer = "x"}, {{answer = "x"}, {answer = "y"}, {answer = "y"}})
      assert.are.equal("y", tide.majority(one, "answer").answer)
      assert.has_error(function() tide.majority({}, "answer") end,
        "bad argument #1 to 'majority' (no predictions to vote)")
    end)
  end)
end)
