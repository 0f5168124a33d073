local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local fanout = tide.fanout

local function err(kind)
  return tide.error{kind = kind, message = kind .. " happened"}
end

describe("fanout aggregation helpers", function()
  local results = {
    technical = {technical_score = 80, technical_feedback = "a claim is wrong", technical_approved = false},
    style = {style_score = 70, style_feedback = "too long", style_approved = false},
    completeness = {completeness_score = 90, completeness_feedback = "no call to action",
                    completeness_approved = false},
  }
  local weights = {technical = 0.4, style = 0.3, completeness = 0.3}
  local priority = {"technical", "completeness", "style"}

  it("weighs the scores (0.4 * 80 + 0.3 * 70 + 0.3 * 90 = 80)", function()
    assert.are.near(80, fanout.weighted_score(results, weights), 1e-9)
    assert.are.near(80, fanout.weighted_score(results), 1e-9)   -- equal weights: (80+70+90)/3
    assert.are.near(73.75, fanout.weighted_score(
      {a = {score = 70}, b = {score = 85}}, {a = 3, b = 1}), 1e-9)
  end)

  it("drops a failed critic's weight and renormalises the others", function()
    local partial = {technical = results.technical, style = err("timeout"),
                     completeness = results.completeness}
    -- (0.4 * 80 + 0.3 * 90) / 0.7
    assert.are.near(59 / 0.7, fanout.weighted_score(partial, weights), 1e-9)
    assert.is_nil(fanout.weighted_score({a = err("server"), b = err("timeout")}))
    assert.is_nil(fanout.weighted_score({}))
    assert.are.equal(0, fanout.weighted_score({a = {score = 0}}, {a = 1}))
  end)

  it("rounds halves away from zero", function()
    assert.are.equal(83, fanout.round(82.5))
    assert.are.equal(82, fanout.round(82.49))
    assert.are.equal(-1, fanout.round(-0.5))
    assert.are.equal("integer", math.type(fanout.round(80.0)))
  end)

  it("approves only when every critic approved and none failed", function()
    assert.is_true(fanout.all_approve({a = {approved = true}, b = {b_approved = true}}))
    assert.is_false(fanout.all_approve({a = {approved = true}, b = {approved = false}}))
    assert.is_false(fanout.all_approve({a = {approved = true}, b = err("server")}))
    assert.is_false(fanout.all_approve({a = {approved = "yes"}}))   -- only true is true
    assert.is_false(fanout.all_approve({}))                         -- nobody approved
  end)

  it("orders feedback by priority, naming only critics that did not approve", function()
    assert.are.equal("Technical: a claim is wrong\nCompleteness: no call to action\nStyle: too long",
      fanout.prioritized_feedback(results, priority))
    local some = {technical = {technical_approved = true, technical_feedback = "fine"},
                  style = results.style, completeness = results.completeness}
    assert.are.equal("Missing: no call to action\nStyle: too long",
      fanout.prioritized_feedback(some, priority, {completeness = "Missing"}))
    -- critics missing from the priority list come after, by name (ties broken by name)
    assert.are.equal("Technical: a claim is wrong\nBrevity: cut it\nTone: warmer",
      fanout.prioritized_feedback({technical = results.technical,
        tone = {approved = false, feedback = "warmer"},
        brevity = {approved = false, feedback = "cut it"}}, {"technical"}))
    assert.are.equal("All criteria passed!", fanout.prioritized_feedback(
      {a = {approved = true}, b = {approved = true}}))
  end)

  it("lists failed critics in the feedback with their error", function()
    assert.are.equal("Technical: the critic failed (timeout happened)\nStyle: too long",
      fanout.prioritized_feedback({technical = err("timeout"), style = results.style},
        priority))
  end)

  it("raises at once on misuse, naming the argument", function()
    assert.has_error(function() fanout.weighted_score("x") end,
      "bad argument #1 to 'weighted_score' (table of results expected, got string)")
    assert.has_error(function() fanout.weighted_score({}, 3) end,
      "bad argument #2 to 'weighted_score' (table of weights expected, got number)")
    assert.has_error(function() fanout.all_approve(nil) end,
      "bad argument #1 to 'all_approve' (table of results expected, got nil)")
    assert.has_error(function() fanout.Panel{critics = {{"a", 42}}} end,
      "tide.fanout.Panel: critics[1] must be {name, predictor or function}")
    assert.has_error(function() fanout.Panel{critics = {a = function() end}} end)
    assert.has_error(function() fanout.Panel{critics = {}, on_failure = "ignore"} end,
      "tide.fanout.Panel: on_failure must be \"drop\" or \"fail\", got ignore")
  end)
end)

describe("fanout.Panel with function critics", function()
  after_each(assert_clean)

  local function critic(score, approved, feedback)
    return function() tide.sleep(0); return {score = score, approved = approved, feedback = feedback} end
  end

  it("runs the critics and aggregates by function", function()
    local panel = fanout.Panel{
      critics = {{"a", critic(90, true, "ok")}, {"b", critic(61, false, "weak")}},
      weights = {a = 0.5, b = 0.5},
    }
    local r = panel{content = "x"}
    assert.are.equal(76, r.overall_score)       -- 75.5 rounds up
    assert.is_false(r.approved)
    assert.are.equal("B: weak", r.combined_feedback)
    assert.are.equal(90, r.critics.a.score)
    assert.are.same({}, r.errors)
    assert.is_number(r.timings.parallel)
    assert.is_number(r.timings.sum)
    assert.is_number(r.timings.critics.a)
  end)

  it("keeps the others when a critic raises a Lua error (drop), and never approves", function()
    local panel = fanout.Panel{critics = {
      {"a", critic(90, true, "ok")},
      {"b", function() error("boom") end},
    }}
    local r = panel{}
    assert.are.equal(90, r.overall_score)
    assert.is_false(r.approved)
    assert.are.equal("lua", r.errors.b.kind)
    assert.matches("boom", r.errors.b.message)
    assert.is_nil(r.critics.b)
    assert.matches("^B: the critic failed", r.combined_feedback)
  end)

  it("raises a panel error when every critic failed", function()
    local panel = fanout.Panel{critics = {{"a", function() error(err("server"), 0) end},
                                          {"b", function() error(err("timeout"), 0) end}}}
    local ok, e = pcall(panel, {})
    assert.is_false(ok)
    assert.are.equal("panel", e.kind)
    assert.are.equal("all 2 critics failed (a: server happened; b: timeout happened)", e.message)
    assert.are.equal("timeout", e.errors.b.kind)
  end)

  it("an empty panel approves nothing", function()
    local r = fanout.Panel{critics = {}}{}
    assert.is_false(r.approved)
    assert.is_nil(r.overall_score)
    assert.are.equal("No critics ran.", r.combined_feedback)
  end)

  it("aggregates with a custom function, or not at all", function()
    local critics = {{"a", critic(50, true)}, {"b", critic(70, true)}}
    local best = fanout.Panel{critics = critics, aggregate = function(results)
      return {best = math.max(results.a.score, results.b.score), approved = true}
    end}{}
    assert.are.equal(70, best.best)
    assert.is_true(best.approved)
    local only = fanout.Panel{critics = critics, aggregate = false}{}
    assert.is_nil(only.overall_score)
    assert.is_nil(only.approved)
    assert.are.equal(50, only.critics.a.score)
  end)

  it("a custom aggregator cannot approve over a critic that did not", function()
    local r = fanout.Panel{critics = {{"a", critic(50, false)}},
      aggregate = function() return {approved = true} end}{}
    assert.is_false(r.approved)
  end)

  it("takes callable tables as critics and aggregators, and hands them the call's options", function()
    local seen = {}
    local function callable(score)
      return setmetatable({}, {__call = function(_, inputs, opts)
        seen[#seen + 1] = opts and opts.tag
        return {score = score, approved = true, feedback = inputs.content}
      end})
    end
    local agg = setmetatable({}, {__call = function(_, results) return {n = results.a.score} end})
    local panel = fanout.Panel{critics = {{"a", callable(10)}, {"b", callable(20)}}, aggregate = agg}
    local r = panel({content = "x"}, {tag = "opts"})
    assert.are.equal(10, r.n)
    assert.are.same({"opts", "opts"}, seen)
    local review = fanout.Perspectives{critic = callable(5)}
    assert.are.equal(5, review{content = "x", perspectives = {"p"}}.overall_score)
  end)

  it("blames the caller's line for a misused panel, even through tide.critics.panel", function()
    local ok, e = pcall(function() local p = tide.critics.panel{on_failure = "ignore"}; return p end)
    assert.is_false(ok)
    assert.matches("^[^:]*fanout_spec%.lua:%d+: tide%.fanout%.Panel: on_failure must be", e)
    ok, e = pcall(function() local p = tide.critics.panel(5); return p end)
    assert.matches("^[^:]*fanout_spec%.lua:%d+: bad argument #1 to 'panel' %(table expected, got number%)", e)
    local panel = fanout.Panel{critics = {}}
    ok, e = pcall(function() local r = panel({}, "fast"); return r end)
    assert.matches("^[^:]*fanout_spec%.lua:%d+: bad argument #2 to 'panel' %(table expected, got string%)", e)
    ok, e = pcall(function() local r = fanout.weighted_score({a = {score = 1}}, {a = -1}); return r end)
    assert.matches("^[^:]*fanout_spec%.lua:%d+: bad argument #2 to 'weighted_score' %(the weight of 'a'", e)
    local review = fanout.Perspectives{critic = function() return {} end}
    ok, e = pcall(function() local r = review{content = "x", perspectives = {1}}; return r end)
    assert.matches("^[^:]*fanout_spec%.lua:%d+: perspectives: perspectives%[1%] must be a string", e)
  end)

  it("passes a predictor only the inputs its signature names", function()
    local seen
    local lm = tide.DummyLM(function(messages)
      seen = messages[#messages].content
      return "[[ ## score ## ]]\n70\n\n[[ ## approved ## ]]\nTrue\n\n[[ ## completed ## ]]"
    end)
    local p = tide.Predict("content -> score: int, approved: bool", {lm = lm})
    local r = fanout.Panel{critics = {{"p", p}}}{content = "draft", requirements = "ignored"}
    assert.are.equal(70, r.overall_score)
    assert.is_true(r.approved)
    assert.is_nil(seen:find("ignored", 1, true))
  end)
end)

describe("fanout over mockllm", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function lm(scenario)
    local headers = scenario and {["X-Mock-Scenario"] = scenario} or nil
    return tide.LM("openai/mock", {api_key = "k", base_url = server.url .. "/v1",
                                   cache = false, num_retries = 0, headers = headers})
  end

  local inputs = {content = "Ledgerly closes your books in 3 days.", context = "B2B SaaS",
                  requirements = "a call to action"}

  it("runs the founding example's three critics at once and aggregates them", function()
    local panel = tide.critics.panel{lm = lm("latency=150")}
    local r = panel(inputs)
    local t = r.critics.technical.technical_score
    local s = r.critics.style.style_score
    local c = r.critics.completeness.completeness_score
    assert.are.equal("integer", math.type(t))
    assert.are.equal(fanout.round(0.4 * t + 0.3 * s + 0.3 * c), r.overall_score)
    assert.are.equal(r.critics.technical.technical_approved and r.critics.style.style_approved
      and r.critics.completeness.completeness_approved, r.approved)
    assert.is_true(server:stats().peak_in_flight >= 3)
  end)

  it("drops a failing critic (a 500 from the server) and renormalises", function()
    local panel = tide.critics.panel{lm = lm()}
    panel.critics[2][2]:set_lm(lm("status=500"))            -- style
    local r = panel(inputs)
    assert.are.equal("server", r.errors.style.kind)
    assert.is_nil(r.critics.style)
    local t = r.critics.technical.technical_score
    local c = r.critics.completeness.completeness_score
    assert.are.equal(fanout.round((0.4 * t + 0.3 * c) / 0.7), r.overall_score)
    assert.is_false(r.approved)
    assert.matches("Style: the critic failed", r.combined_feedback)
  end)

  it("with on_failure = \"fail\" raises the critic's error and cancels the others", function()
    local panel = tide.critics.panel{lm = lm("latency=5000"), on_failure = "fail"}
    -- technical fails once the slow critics' requests have reached the server
    panel.critics[1][2]:set_lm(lm("status=401;latency=500"))
    local ok, e = pcall(panel, inputs)
    assert.is_false(ok)
    assert.are.equal("auth", e.kind)
    local s = server:wait_for(function(st) return st.in_flight == 0 end)
    assert.are.equal(2, s.aborted)                           -- the two slow critics
  end)

  it("aggregates with the LM aggregator, and a failed critic still blocks approval", function()
    local panel = tide.critics.panel{lm = lm(), aggregate = "lm"}
    local r = panel(inputs)
    assert.are.equal("integer", math.type(r.overall_score))
    assert.is_string(r.combined_feedback)
    assert.is_boolean(r.approved)
    assert.are.equal(4, server:stats().requests)
    panel.critics[3][2]:set_lm(lm("status=503"))            -- completeness
    local r2 = panel(inputs)
    assert.is_false(r2.approved)
    assert.are.equal("server", r2.errors.completeness.kind)
    assert.are.equal("integer", math.type(r2.aggregator.overall_score))
  end)

  it("panel(inputs, {lm = other}) sends every critic and the LM aggregator to that LM", function()
    local panel = tide.critics.panel{aggregate = "lm"}   -- no LM of its own
    local other = tide.LM("openai/other-model", {api_key = "k", base_url = server.url .. "/v1",
      cache = false, num_retries = 0})
    local r = panel(inputs, {lm = other, config = {temperature = 0}})
    assert.are.equal("integer", math.type(r.overall_score))
    local log = server:get_json("/__log").requests
    assert.are.equal(4, #log)
    for _, e in ipairs(log) do assert.are.equal("other-model", e.model) end
    -- and a Perspectives review the same way
    server:reset()
    local review = fanout.Perspectives{critic = tide.Predict("content, perspective -> score: int")}
    local rr = review({content = "draft", perspectives = {"legal", "tone"}}, {lm = other})
    assert.are.equal(2, #server:get_json("/__log").requests)
    assert.are.equal("integer", math.type(rr.critics.legal.score))
  end)

  it("ten panels gathered put thirty critics in flight at once", function()
    local panel = tide.critics.panel{lm = lm("latency=300")}
    local drafts = {}
    for i = 1, 10 do drafts[i] = "draft number " .. i end
    local rs = tide.map(drafts, function(d)
      return panel{content = d, context = "B2B", requirements = "a call to action"}
    end)
    assert.are.equal(10, #rs)
    for _, r in ipairs(rs) do assert.are.equal("integer", math.type(r.overall_score)) end
    local s = server:stats()
    assert.are.equal(30, s.requests)
    assert.is_true(s.peak_in_flight >= 30, "peak in flight " .. s.peak_in_flight)
  end)

  it("fans out over 50 perspectives with at most 10 in flight", function()
    local critic = tide.Predict("content, perspective -> score: int, feedback, approved: bool",
      {lm = lm("latency=50")})
    local review = fanout.Perspectives{critic = critic, limit = 10}
    local list = {}
    for i = 1, 50 do list[i] = "perspective " .. i end
    local r = review{content = "draft", perspectives = list}
    local n = 0
    for _ in pairs(r.critics) do n = n + 1 end
    assert.are.equal(50, n)
    local s = server:stats()
    assert.are.equal(50, s.requests)
    assert.is_true(s.peak_in_flight <= 10, "peak in flight " .. s.peak_in_flight)
    assert.is_true(s.peak_in_flight >= 2, "peak in flight " .. s.peak_in_flight)
    assert.is_number(r.overall_score)
    -- the list varies per call
    server:reset()
    local r2 = review{content = "draft", perspectives = {"legal", "tone"}}
    assert.is_not_nil(r2.critics.legal)
    assert.is_not_nil(r2.critics.tone)
    assert.are.equal(2, server:stats().requests)
  end)

  it("walks its predictors and set_lm reaches them all", function()
    local panel = tide.critics.panel{lm = lm(), aggregate = "lm"}
    local names = {}
    for i, np in ipairs(panel:named_predictors()) do names[i] = np[1] end
    assert.are.same({"technical", "style", "completeness", "aggregator"}, names)
    local other = lm()
    panel:set_lm(other)
    for _, np in ipairs(panel:named_predictors()) do assert.are.equal(other, np[2].lm) end
  end)
end)

describe("the panel scripts through the tide binary", function()
  local TIDE = os.getenv("TIDE_BIN") or "build/tide"
  local server, cache_dir
  setup(function()
    server = mockllm.start()
    cache_dir = os.tmpname()
    os.remove(cache_dir)
  end)
  teardown(function()
    server:stop()
    os.execute("rm -rf '" .. cache_dir .. "'")
  end)

  local function run(env, args)
    local p = io.popen(string.format("env -u TIDE_MODEL %s %s %s 2>&1; echo \"rc=$?\"",
      env, TIDE, args))
    local out = p:read("a")
    p:close()
    return out, tonumber(out:match("rc=(%d+)%s*$"))
  end

  -- as `make demo` runs a script: against the mock server, with a cache of its own
  local function run_offline(args)
    return run("TIDE_CACHE_DIR=" .. cache_dir .. " MOCKLLM_URL=" .. server.url, args)
  end

  it("scripts/critics.lua runs the founding example against mockllm", function()
    local out, rc = run_offline("scripts/critics.lua")
    assert.are.equal(0, rc, out)
    assert.matches("replies come from the local mock server", out)
    assert.matches("== function aggregation", out)
    assert.matches("== LM aggregation", out)
    assert.matches("overall score%s+%d+", out)
    assert.matches("parallel section [%d.]+ s", out)
  end)

  it("scripts/perspectives.lua fans out over the perspectives it is given", function()
    local out, rc = run_offline("scripts/perspectives.lua security legal 'brand voice'")
    assert.are.equal(0, rc, out)
    assert.matches("security%s+%d+", out)
    assert.matches("brand voice%s+%d+", out)
    assert.matches("3 perspectives, at most 8 at once", out)
  end)

  -- (faults are the fault catalogue's business: this keeps the script itself working)
  it("scripts/soak.lua (make soak) runs, reports as it goes and sums up #slow", function()
    local out, rc = run_offline("scripts/soak.lua --seconds 1 --report-every 0.2 --panels 20 " ..
      "--fault-rate 0")
    assert.are.equal(0, rc, out)
    assert.matches("%d+ s: %d+ calls, %d+ panels, RSS %d+ KiB, Lua heap %d+ KiB", out)
    assert.matches("faults injected: 0, survived: 0", out)
    assert.matches("panels failed: 0", out)
    assert.matches("Lua heap after a full collection: %d+ KiB after warm%-up, %d+ KiB at the end", out)
  end)

  it("scripts/fanout_only.lua prints each critic's result", function()
    local out, rc = run_offline("scripts/fanout_only.lua")
    assert.are.equal(0, rc, out)
    assert.matches("technical\tPrediction{", out)
    assert.matches("completeness\tPrediction{", out)
  end)

  it("without a model or a mock server, a script says how to run", function()
    local out, rc = run("-u MOCKLLM_URL", "scripts/critics.lua")
    assert.are.equal(2, rc)
    assert.matches("no model: pass %-%-model", out)
    assert.matches("make demo", out)
    out, rc = run("-u MOCKLLM_URL -u OPENAI_API_KEY", "scripts/critics.lua --model openai/gpt-4o-mini")
    assert.are.equal(2, rc)
    assert.matches("OPENAI_API_KEY", out)
  end)
end)
