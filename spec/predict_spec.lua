local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local function reply(fields)
  local out = {}
  for _, kv in ipairs(fields) do
    out[#out + 1] = string.format("[[ ## %s ## ]]\n%s\n", kv[1], kv[2])
  end
  out[#out + 1] = "[[ ## completed ## ]]"
  return table.concat(out, "\n")
end

describe("Predict with a DummyLM", function()
  after_each(assert_clean)

  it("formats, calls, parses and coerces by type", function()
    local lm = tide.DummyLM{reply{{"score", "85"}, {"feedback", "Tighten the intro."},
                                  {"approved", "True"}}}
    local critic = tide.Predict("content, context -> score: int, feedback, approved: bool")
    local r = critic{content = "a draft", context = "B2B SaaS outreach", lm = lm}
    assert.are.equal(85, r.score)
    assert.are.equal("integer", math.type(r.score))
    assert.are.equal("Tighten the intro.", r.feedback)
    assert.is_true(r.approved)
    local sent = lm.history[1].messages
    assert.are.equal("system", sent[1].role)
    assert.matches("%[%[ ## content ## %]%]\na draft", sent[#sent].content)
  end)

  it("uses the configured LM, and tide.context overrides it per task", function()
    local a = tide.DummyLM(function() return reply{{"answer", "from A"}} end)
    local b = tide.DummyLM(function() return reply{{"answer", "from B"}} end)
    tide.configure{lm = a}
    local qa = tide.Predict("question -> answer")
    local x, y = tide.gather(
      function() return qa{question = "q"}.answer end,
      function() return tide.context({lm = b}, function() return qa{question = "q"}.answer end) end)
    assert.are.same({"from A", "from B"}, {x, y})
    tide.configure{lm = false}
  end)

  it("unsets a configured LM with lm = false, globally or for one task", function()
    local a = tide.DummyLM(function() return reply{{"answer", "from A"}} end)
    local qa = tide.Predict("question -> answer")
    tide.configure{lm = a}
    assert.are.equal("from A", qa{question = "q"}.answer)
    -- a task under lm = false has none, though one is configured
    local ok, err = tide.context({lm = false}, function() return pcall(qa, {question = "q"}) end)
    assert.is_false(ok)
    assert.matches("tide%.Predict: no LM", err)
    assert.are.equal(a, tide.settings.lm)
    tide.configure{lm = false}
    assert.is_nil(tide.settings.lm)
    assert.has_error(function() qa{question = "q"} end,
      "tide.Predict: no LM: pass lm = ..., or tide.configure{lm = ...}")
    -- and the adapter goes back to chat
    tide.configure{adapter = tide.adapters.json}
    assert.are.equal(tide.adapters.json, tide.settings.adapter)
    tide.configure{adapter = false}
    assert.is_nil(tide.settings.adapter)
    assert.are.equal("from A", qa({question = "q"}, {lm = a}).answer)
    assert.matches("%[%[ ## answer ## %]%]", a.history[#a.history].messages[1].content)
  end)

  it("ChainOfThought adds a reasoning output first", function()
    local lm = tide.DummyLM{reply{{"reasoning", "2.5 times 4 is 10."}, {"answer", "10.0"}}}
    local qa = tide.ChainOfThought("question -> answer: float", {lm = lm})
    local r = qa{question = "What is 2.5 * 4?"}
    assert.are.equal("2.5 times 4 is 10.", r.reasoning)
    assert.are.equal(10.0, r.answer)
    assert.are.same({"reasoning", "answer"}, qa.signature:output_names())
  end)

  it("takes the options apart: p(inputs, {lm, config, demos, adapter})", function()
    local seen
    local lm = tide.DummyLM(function(messages, req)
      seen = {messages = messages, temperature = req.temperature, n = req.n}
      return reply{{"answer", "Paris"}}
    end)
    local qa = tide.Predict("question -> answer")
    local r = qa({question = "Capital of France?"}, {lm = lm, config = {temperature = 0.2},
      demos = {{question = "Capital of Italy?", answer = "Rome"}}})
    assert.are.equal("Paris", r.answer)
    assert.are.equal(0.2, seen.temperature)
    -- the demo went in as a user/assistant pair before the question
    assert.are.equal(4, #seen.messages)
    assert.matches("Capital of Italy%?", seen.messages[2].content)
    assert.matches("Rome", seen.messages[3].content)
    -- an input named like an option stays an input in this form: nothing is taken out
    local echo = tide.Predict("lm, question -> answer")
    local sent
    local lm2 = tide.DummyLM(function(messages) sent = messages[#messages].content; return reply{{"answer", "ok"}} end)
    assert.are.equal("ok", echo({lm = "a model name", question = "q"}, {lm = lm2}).answer)
    assert.matches("%[%[ ## lm ## %]%]\na model name", sent)
    -- the adapter per call: a JSON reply read by the JSON adapter
    local json_lm = tide.DummyLM{'{"answer": "from json"}'}
    assert.are.equal("from json", qa({question = "q"}, {lm = json_lm, adapter = tide.adapters.json}).answer)
    assert.matches("JSON", json_lm.history[1].messages[1].content)
  end)

  it("takes DSPy's one-table form and p(inputs, opts) alike, ChainOfThought too", function()
    local lm = tide.DummyLM(function() return reply{{"reasoning", "r"}, {"answer", "4"}} end)
    local cot = tide.ChainOfThought("question -> answer: int")
    local a = cot{question = "2+2?", lm = lm, config = {temperature = 0}}
    local b = cot({question = "2+2?"}, {lm = lm, config = {temperature = 0}})
    assert.are.same({a.reasoning, a.answer}, {b.reasoning, b.answer})
    assert.are.equal(4, b.answer)
    assert.are.equal(2, #lm.history)
    -- per-call parse options override the predictor's
    local bad = tide.DummyLM{"garbage", "more garbage"}
    local ok, err = pcall(tide.Predict("question -> answer", {lm = bad}), {question = "q"},
      {fallback = false, parse_retries = 1})
    assert.is_false(ok)
    assert.are.equal("parse", err.kind)
    assert.are.equal(2, #bad.history)   -- asked again once, no JSON fallback
    assert.matches("could not be parsed", bad.history[2].messages[#bad.history[2].messages].content)
  end)

  it("passes a module's call options on to forward", function()
    local lm = tide.DummyLM(function() return reply{{"answer", "via opts"}} end)
    local QA = tide.Module{
      init = function(self) self.qa = tide.Predict("question -> answer") end,
      forward = function(self, inputs, opts) return self.qa(inputs, opts) end,
    }
    assert.are.equal("via opts", QA()({question = "q"}, {lm = lm}).answer)
  end)

  it("falls back to the JSON adapter once when the chat reply does not parse", function()
    local lm = tide.DummyLM{"no markers at all", '{"answer": "from json"}'}
    local r = tide.Predict("question -> answer", {lm = lm}){question = "q"}
    assert.are.equal("from json", r.answer)
    assert.are.equal(2, #lm.history)
  end)

  it("raises a typed parse error with the raw reply and the fields found and missing", function()
    local lm = tide.DummyLM{reply{{"score", "85"}}, "still nothing"}
    local ok, err = pcall(tide.Predict("x -> score: int, feedback", {lm = lm}), {x = "1"})
    assert.is_false(ok)
    assert.are.equal("parse", err.kind)
    assert.is_string(err.raw)
  end)

  it("parse_retries feeds the error back to the model", function()
    local lm = tide.DummyLM{"garbage", reply{{"answer", "fixed"}}}
    local p = tide.Predict("question -> answer", {lm = lm, parse_retries = 1})
    assert.are.equal("fixed", p{question = "q"}.answer)
    assert.are.equal(2, #lm.history)
    local last = lm.history[2].messages
    assert.matches("could not be parsed", last[#last].content)
  end)

  it("retries with the chosen adapter before it falls back to JSON", function()
    local lm = tide.DummyLM{"garbage", "more garbage", '{"answer": "via json"}'}
    local p = tide.Predict("question -> answer", {lm = lm, parse_retries = 1})
    assert.are.equal("via json", p{question = "q"}.answer)
    assert.are.equal(3, #lm.history)
    assert.matches("%[%[ ## answer ## %]%]", lm.history[2].messages[1].content)
    assert.matches("JSON", lm.history[3].messages[1].content)
  end)

  it("raises at once when an input is missing or no LM is set", function()
    local p = tide.Predict("question, context -> answer", {lm = tide.DummyLM{"x"}})
    assert.has_error(function() p{question = "only one"} end)
    tide.settings.lm = nil
    assert.has_error(function() tide.Predict("q -> a"){q = "x"} end,
      "tide.Predict: no LM: pass lm = ..., or tide.configure{lm = ...}")
  end)
end)

describe("Predict's misuse, blamed on the caller's line", function()
  after_each(assert_clean)

  it("names a misspelt input beside the missing one", function()
    local p = tide.Predict("question, context -> answer", {lm = tide.DummyLM{"x"}})
    local ok, err = pcall(function()
      local r = p{qestion = "What is 2 + 2?", context = "arithmetic", lm = tide.DummyLM{"y"}}
      return r
    end)
    assert.is_false(ok)
    assert.matches("predict_spec%.lua:%d+: tide%.Predict: missing input 'question' %(got 'qestion'%) " ..
      "for question, context %-> answer", err)
    -- several unknown keys: the closest to the missing name first
    ok, err = pcall(function() local r = p{zzz = 1, questoin = "q", context = "c"}; return r end)
    assert.is_false(ok)
    assert.matches("missing input 'question' %(got 'questoin', 'zzz'%)", err)
    -- nothing unknown: the message stays short
    ok, err = pcall(function() local r = p{context = "c"}; return r end)
    assert.is_false(ok)
    assert.matches("missing input 'question' for", err)
  end)

  it("blames the caller for a call without a table, without an LM, or a bad signature", function()
    local p = tide.Predict("q -> a")
    local ok, err = pcall(function() local r = p("text"); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: tide%.Predict: call with a table of inputs, got string", err)
    tide.settings.lm = nil
    ok, err = pcall(function() local r = p{q = "x"}; return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: tide%.Predict: no LM", err)
    ok, err = pcall(function() local r = tide.Predict(42); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: bad argument #1 to 'Predict' %(signature or string", err)
  end)

  it("tide.run() inside a task blames the caller's line", function()
    local ok, err = tide.spawn(function()
      return pcall(function() local r = tide.run(); return r end)
    end):wait()
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: tide%.run: called inside a task", err)
    assert.matches("task:wait%(%)", err)
  end)

  it("names a bad call option, blamed on the caller's line", function()
    local p = tide.Predict("q -> a", {lm = tide.DummyLM{"x"}})
    local ok, err = pcall(function() local r = p({q = "x"}, {temprature = 0}); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: bad argument #2 to 'predictor' %(unknown option " ..
      "'temprature'; the options are adapter, callbacks, config, demos, fallback, lm, parse_retries%)", err)
    ok, err = pcall(function() local r = p({q = "x"}, "fast"); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: bad argument #2 to 'predictor' %(table expected, got string%)", err)
    ok, err = pcall(function() local r = p({q = "x"}, {config = 0.2}); return r end)
    assert.is_false(ok)
    assert.matches("bad argument 'opts.config' to 'predictor' %(table expected, got number%)", err)
    ok, err = pcall(function() local r = p({q = "x"}, {adapter = {}}); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: bad argument 'opts.adapter' to 'predictor' %(an adapter", err)
    ok, err = pcall(function() local r = tide.Predict("q -> a", {parse_retries = -1}); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: bad argument 'opts.parse_retries' to 'Predict'", err)
  end)

  it("tide.configure and tide.context blame the caller's line", function()
    local ok, err = pcall(function() local r = tide.configure{lm = "openai/x"}; return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: tide%.configure: lm must be a tide%.LM, or false to unset it", err)
    ok, err = pcall(function() local r = tide.context({}, 5); return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*predict_spec%.lua:%d+: bad argument #2 to 'context' %(function expected, got number%)", err)
  end)
end)

describe("Module", function()
  after_each(assert_clean)

  it("composes predictors, walks them by name, and set_lm reaches all", function()
    local Panel = tide.Module{
      init = function(self)
        self.technical = tide.Predict("content -> score: int")
        self.style = tide.Predict("content -> score: int")
        self.extra = {tide.Predict("content -> note")}
      end,
      forward = function(self, args)
        local t, s = tide.gather(
          function() return self.technical{content = args.content}.score end,
          function() return self.style{content = args.content}.score end)
        return tide.Prediction{total = t + s}
      end,
    }
    local panel = Panel()
    local names = {}
    for _, np in ipairs(panel:named_predictors()) do names[#names + 1] = np[1] end
    assert.are.same({"extra[0]", "style", "technical"}, names)   -- lists from 0, as DSPy names them
    panel:set_lm(tide.DummyLM(function() return reply{{"score", "40"}} end))
    assert.are.equal(80, panel{content = "draft"}.total)
  end)
end)

describe("Example and Prediction", function()
  it("Example keeps fields as plain values, with inputs and labels", function()
    local ex = tide.Example{question = "2+2?", answer = "4"}:with_inputs("question")
    assert.are.equal("2+2?", ex.question)
    assert.are.same({question = "2+2?"}, setmetatable(ex:inputs(), nil))
    assert.are.same({answer = "4"}, setmetatable(ex:labels(), nil))
    assert.matches('Example{answer = "4", question = "2%+2%?"}', tostring(ex))
  end)
end)

describe("Predict end to end over mockllm", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  for _, p in ipairs({
    {"openai/gpt-4o-mini", function(s) return s.url .. "/v1" end},
    {"anthropic/claude-3-5-haiku", function(s) return s.url end},
    {"gemini/gemini-2.5-flash", function(s) return s.url end},
  }) do
    it("gets typed fields from " .. p[1], function()
      local lm = tide.LM(p[1], {api_key = "k", base_url = p[2](server), cache = false})
      local critic = tide.Predict("content, context -> technical_score: int, technical_feedback, technical_approved: bool",
        {lm = lm})
      local r = critic{content = "Our product saves 10 hours a week.", context = "B2B SaaS outreach"}
      assert.are.equal("integer", math.type(r.technical_score))
      assert.is_string(r.technical_feedback)
      assert.is_boolean(r.technical_approved)
    end)
  end

  it("sends p(inputs, {lm = other}) to the other LM, and p{..., lm = other} too", function()
    server:reset()
    local function lm_named(model)
      return tide.LM("openai/" .. model, {api_key = "k", base_url = server.url .. "/v1", cache = false})
    end
    local qa = tide.Predict("question -> answer", {lm = lm_named("own-model")})
    assert.is_string(qa({question = "q1"}, {lm = lm_named("model-b")}).answer)
    assert.is_string(qa{question = "q2", lm = lm_named("model-c")}.answer)
    assert.is_string(qa{question = "q3"}.answer)
    local models = {}
    for i, e in ipairs(server:get_json("/__log").requests) do models[i] = e.model end
    assert.are.same({"model-b", "model-c", "own-model"}, models)
  end)
end)
