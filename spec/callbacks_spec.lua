-- Callbacks (tide.callbacks) over real sockets: mockllm answers the LM calls; the
-- callbacks record what they hear, and the specs check the calls' tree (module →
-- LM, across gathered tasks; evaluation → example → module → LM; tools), their
-- inputs, outputs, errors, usage and timing, per-call callbacks, and that a
-- failing callback never breaks the call.
local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local stderr_of = require "support.stderr"

--- A callback that records every event as {event, call}.
local function recorder()
  local rec = {events = {}}
  for _, kind in ipairs{"lm", "module", "tool", "evaluate", "example"} do
    for _, edge in ipairs{"start", "end"} do
      rec["on_" .. kind .. "_" .. edge] = function(self, call)
        self.events[#self.events + 1] = {kind .. "_" .. edge, call}
      end
    end
  end
  return rec
end

--- The calls a recorder saw end, of a kind.
local function ended(rec, kind)
  local out = {}
  for _, e in ipairs(rec.events) do
    if e[1] == kind .. "_end" then out[#out + 1] = e[2] end
  end
  return out
end

describe("callbacks", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(function()
    tide.configure{callbacks = false}
    assert_clean()
  end)

  local function lm(scenario)
    return tide.LM("openai/mock", {api_key = "sk-callback-spec-key", base_url = server.url .. "/v1",
      num_retries = 0, cache = false, headers = scenario and {["X-Mock-Scenario"] = scenario} or nil})
  end

  it("hear an LM call inside a Predict: ids, parent, inputs, outputs, usage and timing", function()
    local rec = recorder()
    tide.configure{callbacks = {rec}}
    local qa = tide.Predict("question -> answer", {lm = lm()})
    local r = qa{question = "What is tide?"}
    assert.is_string(r.answer)
    local order = {}
    for i, e in ipairs(rec.events) do order[i] = e[1] end
    assert.are.same({"module_start", "lm_start", "lm_end", "module_end"}, order)
    local module_call, lm_call = rec.events[1][2], rec.events[2][2]
    assert.are.equal(module_call, rec.events[4][2])   -- the same table at start and end
    assert.are.equal("Predict", module_call.name)
    assert.are.equal(qa, module_call.instance)
    assert.are.equal("What is tide?", module_call.inputs.question)
    assert.are.equal(r, module_call.outputs)
    assert.are.equal(module_call, lm_call.parent)
    assert.is_nil(module_call.parent)
    assert.are_not.equal(module_call.id, lm_call.id)
    assert.are.equal("openai/mock", lm_call.name)
    assert.matches("What is tide%?", lm_call.inputs.messages[#lm_call.inputs.messages].content)
    assert.are.equal("stop", lm_call.outputs.finish_reason)
    local requests = server:stats().requests
    assert.are.equal(1, requests)
    assert.is_true(lm_call.usage.input > 0 and lm_call.usage.output > 0)
    -- the module's usage is its LM calls'
    assert.are.same(lm_call.usage, module_call.usage)
    assert.is_true(lm_call.duration >= 0 and module_call.duration >= lm_call.duration)
    assert.is_true(math.abs(require("tide.callbacks").unix_time(lm_call.started) - os.time()) < 5)
  end)

  it("give each gathered task its parent: a module's predictors in parallel are its children", function()
    local rec = recorder()
    tide.configure{callbacks = {rec}, lm = lm("latency=100")}
    local Pair = tide.Module{
      init = function(self)
        self.a = tide.Predict("question -> answer")
        self.b = tide.ChainOfThought("question -> answer")
      end,
      forward = function(self, args)
        return tide.gather(function() return self.a{question = args.q .. " a"} end,
                           function() return self.b{question = args.q .. " b"} end)
      end,
    }
    local x, y = Pair(){q = "two"}
    assert.is_string(x.answer)
    assert.is_string(y.reasoning)
    -- the two predictors were in flight at once
    assert.are.equal(2, server:stats().peak_in_flight)
    local modules = ended(rec, "module")
    local by_name = {}
    for _, c in ipairs(modules) do by_name[c.name] = c end
    local top = by_name.Module
    assert.is_nil(top.parent)
    assert.are.equal(top, by_name.Predict.parent)
    assert.are.equal(top, by_name.ChainOfThought.parent)
    for _, c in ipairs(ended(rec, "lm")) do
      assert.is_truthy(c.parent == by_name.Predict or c.parent == by_name.ChainOfThought)
    end
    local lms = ended(rec, "lm")
    assert.are.equal(2, #lms)
    assert.are.equal(lms[1].usage.total + lms[2].usage.total, top.usage.total)
  end)

  it("per call: p(inputs, {callbacks = ...}) hears that call and all beneath it, nothing else", function()
    local rec = recorder()
    local qa = tide.Predict("question -> answer", {lm = lm()})
    qa({question = "heard"}, {callbacks = {rec}})
    qa{question = "not heard"}
    lm():call{prompt = "an LM call of its own", callbacks = {rec}}
    local modules, lms = ended(rec, "module"), ended(rec, "lm")
    assert.are.equal(1, #modules)
    assert.are.equal("heard", modules[1].inputs.question)
    assert.are.equal(2, #lms)
    assert.are.equal(modules[1], lms[1].parent)
    assert.is_nil(lms[2].parent)
    -- and through tide.context, for everything a function does
    tide.context({callbacks = {rec}}, function() qa{question = "in context"} end)
    assert.are.equal(2, #ended(rec, "module"))
  end)

  it("hear a failed call with its error, and the error still reaches the caller", function()
    local rec = recorder()
    tide.configure{callbacks = {rec}}
    local qa = tide.Predict("question -> answer", {lm = lm("status=500")})
    local ok, err = pcall(qa, {question = "fails"})
    assert.is_false(ok)
    assert.are.equal("server", err.kind)
    local lm_call, module_call = ended(rec, "lm")[1], ended(rec, "module")[1]
    assert.are.equal(err, lm_call.error)
    assert.is_nil(lm_call.outputs)
    assert.are.equal(err, module_call.error)
    assert.are.equal(0, module_call.usage.total)
  end)

  it("never let a failing callback break the call: reported once on stderr", function()
    local broken = {on_lm_start = function() error("boom in a callback") end,
                    on_lm_end = function(_, call) return call.nothing.here end}
    local rec = recorder()
    tide.configure{callbacks = {broken, rec}}
    local model = lm()
    local out = stderr_of(function()
      for i = 1, 3 do assert.is_string(model("call " .. i)) end
    end)
    local _, starts = out:gsub("on_lm_start failed", "")
    local _, ends = out:gsub("on_lm_end failed", "")
    assert.are.same({1, 1}, {starts, ends})
    assert.matches("boom in a callback", out)
    assert.are.equal(3, #ended(rec, "lm"))   -- the others still heard every call
    assert.are.equal(3, server:stats().requests)
  end)

  it("hear a tool call, and the LM calls inside the tool as its children", function()
    local rec = recorder()
    local inner = lm()
    local lookup = tide.Tool{name = "lookup", desc = "Looks a word up.", args = {word = "str"},
      fn = function(args) return inner("define " .. args.word) end}
    tide.configure{callbacks = {rec}}
    local text, err = lookup{word = "tide"}
    assert.is_nil(err)
    assert.is_string(text)
    local tool_call = ended(rec, "tool")[1]
    assert.are.equal("lookup", tool_call.name)
    assert.are.same({word = "tide"}, tool_call.inputs)
    assert.are.equal(tool_call, ended(rec, "lm")[1].parent)
    assert.are.equal(ended(rec, "lm")[1].usage.total, tool_call.usage.total)
  end)

  it("hear a streamed LM call end once the stream has", function()
    local rec = recorder()
    tide.configure{callbacks = {rec}}
    local pieces = {}
    for piece in lm():stream{prompt = "stream this"} do pieces[#pieces + 1] = piece end
    local calls = ended(rec, "lm")
    assert.are.equal(1, #calls)
    assert.are.equal(table.concat(pieces), calls[1].outputs.text)
    assert.is_true(calls[1].usage.output > 0)
  end)

  it("put a predictor's tool calls and its LM turns under it", function()
    local rec = recorder()
    tide.configure{callbacks = {rec}}
    local script = 'weather({"city":"Oslo"})+weather({"city":"Lima"})'
    local model = lm("tool_turns=" .. script:gsub("[^%w_()]", function(c)
      return string.format("%%%02X", c:byte()) end))
    local weather = tide.Tool{name = "weather", desc = "The weather of a city.", args = {city = "str"},
      fn = function(a) return "sunny in " .. a.city end}
    local agent = tide.Predict("question -> answer", {tools = {weather}, lm = model})
    local r = agent{question = "Weather in Oslo and Lima?"}
    assert.are.equal(2, #r.tool_calls)
    local predict_call = ended(rec, "module")[1]
    local tools = ended(rec, "tool")
    assert.are.equal(2, #tools)
    for _, t in ipairs(tools) do assert.are.equal(predict_call, t.parent) end
    local lms = ended(rec, "lm")
    assert.are.equal(2, #lms)   -- the turn that asked for the tools, the one that answered
    for _, c in ipairs(lms) do assert.are.equal(predict_call, c.parent) end
  end)

  it("hear an evaluation, each example and what runs inside it", function()
    local rec = recorder()
    tide.configure{lm = lm()}
    local critic = tide.Predict("content -> score: int")
    local devset = {}
    for i = 1, 4 do devset[i] = {content = "draft " .. i} end
    local r = tide.Evaluate{devset = devset, metric = function(_, p) return p.score >= 60 end,
      program = critic, concurrency = 2, display_progress = false, display_table = false,
      callbacks = {rec}}
    assert.are.equal(4, r.done)
    local eval_call = ended(rec, "evaluate")[1]
    assert.are.equal(r, eval_call.outputs)
    assert.are.equal(r.score, eval_call.score)
    local examples = ended(rec, "example")
    assert.are.equal(4, #examples)
    local seen = {}
    for _, ex in ipairs(examples) do
      assert.are.equal(eval_call, ex.parent)
      assert.are.equal(1, ex.score)
      seen[ex.index] = true
    end
    assert.are.same({true, true, true, true}, seen)
    for _, m in ipairs(ended(rec, "module")) do assert.are.equal("example", m.parent.kind) end
    local total = 0
    for _, c in ipairs(ended(rec, "lm")) do
      assert.are.equal("module", c.parent.kind)
      total = total + c.usage.total
    end
    assert.are.equal(total, eval_call.usage.total)
    assert.are.equal(r.usage.total, eval_call.usage.total)
  end)

  it("cost nothing when unset: no event once configure{callbacks = false}", function()
    local rec = recorder()
    tide.configure{callbacks = {rec}}
    tide.configure{callbacks = false}
    assert.is_string(lm()("quiet"))
    assert.are.equal(0, #rec.events)
    assert.is_nil(tide.settings.callbacks)
  end)

  it("refuse what is not a callback list, naming the argument and the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(tide.configure, {callbacks = {{on_lm_stat = function() end}}})
    assert.is_false(ok)
    assert.matches("on_lm_stat is not a callback", err)
    assert.matches("callbacks_spec.lua:" .. line, err)
    local ok1, err1 = pcall(tide.configure, {callbacks = 5})
    assert.is_false(ok1)
    assert.matches("bad argument 'callbacks' to 'configure' %(table expected, got number%)", err1)
    local ok2, err2 = pcall(tide.configure, {callbacks = {{on_lm_end = "x"}}})
    assert.is_false(ok2)
    assert.matches("callbacks%[1%]%.on_lm_end must be a function, got string", err2)
    local qa = tide.Predict("question -> answer", {lm = lm()})
    local ok3, err3 = pcall(qa, {question = "q"}, {callbacks = {42}})
    assert.is_false(ok3)
    assert.matches("callbacks%[1%] must be a table", err3)
    assert.are.equal(0, server:stats().requests)
  end)
end)
