-- tide.Predict with tools: the tool loop against mockllm over real sockets, in the
-- three wire formats.  mockllm's tool_turns= scenario scripts each turn's calls;
-- a turn's calls run side by side (tools that record their start and end show
-- the overlap by order; tools that call the LM themselves show it as requests in
-- flight at the server), and what goes wrong with a call is a result the model
-- reads while the loop goes on.
local tide = require "tide"
local mockllm = require "support.mockllm"
local lm_server = require "support.lm_server"
local assert_clean = require "support.clean"

local PROVIDERS = lm_server.PROVIDERS

local encode = mockllm.encode   -- a scenario value for the header

local function turns(...)
  return "tool_turns=" .. encode(table.concat({...}, "|"))
end

describe("tide.Predict with tools", function()
  local server = mockllm.serve()

  local function lm_for(p, scenario) return lm_server.lm_for(server, p, scenario) end

  -- tools that note when they start and end, and wait a little in between
  local function recording_tools(events)
    local function tool(name, args, answer)
      return tide.Tool{name = name, desc = "The " .. name .. " of a city.", args = args,
        fn = function(a)
          events[#events + 1] = "start " .. name
          tide.sleep(0.02)
          events[#events + 1] = "end " .. name
          return answer(a)
        end}
    end
    return tool("weather", {city = "str"}, function(a) return "sunny in " .. a.city end),
           tool("clock", {zone = "one of: UTC, CET"}, function(a) return "12:00 " .. a.zone end)
  end

  for _, p in ipairs(PROVIDERS) do
    describe(p.name, function()
      it("runs a turn's two calls side by side and feeds both results back", function()
        local events = {}
        local weather, clock = recording_tools(events)
        local lm = lm_for(p, turns('weather({"city":"Oslo"})+clock({"zone":"CET"})'))
        local agent = tide.Predict("question -> answer", {tools = {weather, clock}})
        local r = agent({question = "Weather and time in Oslo?"}, {lm = lm})
        assert.matches("^Mock answer", r.answer)
        -- both started before either ended
        assert.are.same({"start weather", "start clock"}, {events[1], events[2]})
        assert.are.equal(2, #r.tool_calls)
        local w, c = r.tool_calls[1], r.tool_calls[2]
        assert.are.same({"weather", {city = "Oslo"}, "sunny in Oslo", 1},
          {w.name, w.args, w.result, w.turn})
        assert.are.same({"clock", {zone = "CET"}, "12:00 CET", 1}, {c.name, c.args, c.result, c.turn})
        assert.is_nil(w.error)
        assert.is_true(w.seconds >= 0.02 and w.finished >= w.started)
        assert.is_true(c.started < w.finished and w.started < c.finished)
        -- the second request carried the calls and both results, in order
        assert.are.equal(2, server:stats().requests)
        local sent = lm.history[2].messages
        local n = #sent
        assert.are.same({"assistant", "tool", "tool"}, {sent[n - 2].role, sent[n - 1].role, sent[n].role})
        assert.are.same({w.id, "sunny in Oslo"}, {sent[n - 1].tool_call_id, sent[n - 1].content})
        assert.are.same({c.id, "12:00 CET"}, {sent[n].tool_call_id, sent[n].content})
        assert.are.equal(2, #lm.history[1].messages)   -- the first request as it was sent: system, user
      end)

      it("streams a scripted turn's calls (mockllm's tool_turns= in a stream)", function()
        local weather, clock = recording_tools({})
        local lm = lm_for(p, turns('clock({"zone":"UTC"})+weather({"city":"Oslo"})', 'clock({"zone":"CET"})'))
        local messages = {{role = "user", content = "Time and weather?"},
                          {role = "assistant", content = "Let me see."}}   -- the model spoke once
        local pieces, final = lm:stream{messages = messages, tools = {weather, clock}}
        for _ in pieces do end
        assert.are.equal("tool_calls", final.finish_reason)
        assert.are.same({{"clock", {zone = "CET"}}}, {{final.tool_calls[1].name, final.tool_calls[1].args}})
      end)

      it("goes on turn after turn until the model answers", function()
        local weather, clock = recording_tools({})
        local lm = lm_for(p, turns('weather({"city":"Lima"})', 'clock({"zone":"UTC"})'))
        local agent = tide.Predict("question -> answer, confident: bool", {tools = {weather, clock}})
        local r = agent({question = "Weather in Lima, then the time?"}, {lm = lm})
        assert.is_boolean(r.confident)
        assert.are.same({{"weather", 1}, {"clock", 2}},
          {{r.tool_calls[1].name, r.tool_calls[1].turn}, {r.tool_calls[2].name, r.tool_calls[2].turn}})
        assert.are.equal(3, server:stats().requests)
      end)

      it("turns an invented name, bad arguments, a raising and a hanging tool into results", function()
        local weather = recording_tools({})
        local boom = tide.Tool{name = "boom", desc = "Fails.", args = {},
          fn = function() error("the upstream is down") end}
        local slow = tide.Tool{name = "slow", desc = "Hangs.", args = {},
          fn = function() tide.sleep(30) end}
        local lm = lm_for(p, turns('nope({})+weather({})+boom({})+slow({})'))
        local agent = tide.Predict("question -> answer",
          {tools = {weather, boom, slow}, timeout = {slow = 0.05}})
        local r = agent({question = "Try everything"}, {lm = lm})
        assert.matches("^Mock answer", r.answer)
        local got = {}
        for i, c in ipairs(r.tool_calls) do got[i] = {c.name, c.error and c.error.kind} end
        assert.are.same({{"nope", "bad_request"}, {"weather", "bad_request"}, {"boom", "lua"},
                         {"slow", "timeout"}}, got)
        assert.matches('no tool named "nope"; the tools are: boom, slow, weather', r.tool_calls[1].result)
        assert.matches("missing argument 'city'", r.tool_calls[2].result)
        assert.matches("the upstream is down", r.tool_calls[3].result)
        assert.matches("tool slow timed out after 0.05 seconds", r.tool_calls[4].result)
        -- the model read all four
        local sent = lm.history[2].messages
        assert.are.equal(r.tool_calls[4].result, sent[#sent].content)
      end)

      it("tells the model when a call's arguments are malformed, and goes on", function()
        local weather = recording_tools({})
        local lm = lm_for(p, turns('weather!({"city":"Oslo"})', 'weather({"city":"Rome"})'))
        local agent = tide.Predict("question -> answer", {tools = {weather}})
        local r = agent({question = "Weather?"}, {lm = lm})
        assert.matches("^Mock answer", r.answer)
        assert.are.equal(2, #r.tool_calls)
        if p.name == "openai" then   -- arguments that are not JSON: a parse error, the model told
          assert.are.equal("parse", r.tool_calls[1].error.kind)
          assert.matches("not a JSON object", lm.history[2].messages[#lm.history[2].messages].content)
        else                          -- an object without the schema's properties
          assert.are.equal("bad_request", r.tool_calls[1].error.kind)
          assert.matches("missing argument 'city'", r.tool_calls[1].result)
        end
        assert.are.same({"sunny in Rome", 2}, {r.tool_calls[2].result, r.tool_calls[2].turn})
      end)

      it("raises max_iters with the conversation and the calls when the model never answers", function()
        local weather = recording_tools({})
        local lm = lm_for(p, turns('weather({"city":"A"})', 'weather({"city":"B"})',
                                   'weather({"city":"C"})'))
        local agent = tide.Predict("question -> answer", {tools = {weather}, max_iters = 2})
        local ok, err = pcall(agent, {question = "Loop"}, {lm = lm})
        assert.is_false(ok)
        assert.are.equal("max_iters", err.kind)
        assert.matches("after max_iters = 2", err.message)
        assert.are.same({"sunny in A", "sunny in B"}, {err.tool_calls[1].result, err.tool_calls[2].result})
        assert.are.equal("tool", err.trajectory[#err.trajectory].role)
        assert.are.equal(3, server:stats().requests)
      end)
    end)
  end

  it("keeps at most `limit` calls running", function()
    local events = {}
    local weather, clock = recording_tools(events)
    local lm = lm_for(PROVIDERS[1], turns('weather({"city":"Oslo"})+clock({"zone":"CET"})'))
    local agent = tide.Predict("question -> answer", {tools = {weather, clock}, limit = 1})
    agent({question = "One at a time"}, {lm = lm})
    assert.are.same({"start weather", "end weather", "start clock", "end clock"}, events)
  end)

  it("runs tools that call the LM at the same time (the server sees them in flight)", function()
    local inner = tide.LM("openai/gpt-4o-mini", {api_key = "sk-spec", base_url = server.url .. "/v1",
      cache = false, headers = {["X-Mock-Scenario"] = "latency=200"}})
    local function asking(name)
      return tide.Tool{name = name, desc = "Asks the model.", args = {q = "str"},
        fn = function(a) return inner:call(a.q).text end}
    end
    local lm = lm_for(PROVIDERS[1], turns('ask_a({"q":"one"})+ask_b({"q":"two"})'))
    local agent = tide.Predict("question -> answer", {tools = {asking("ask_a"), asking("ask_b")}})
    local r = agent({question = "Ask twice"}, {lm = lm})
    assert.are.same({"Mock reply to: one", "Mock reply to: two"},
      {r.tool_calls[1].result, r.tool_calls[2].result})
    local s = server:stats()
    assert.are.same({4, 2}, {s.requests, s.peak_in_flight})
  end)

  it("forces tool_choice on the first turn only", function()
    local weather, clock = recording_tools({})
    local lm = lm_for(PROVIDERS[1])   -- mockllm calls the forced tool, then answers after its result
    local agent = tide.Predict("question -> answer", {tools = {weather, clock}, tool_choice = "clock"})
    local r = agent({question = "Time?"}, {lm = lm})
    assert.are.same({"clock", 1}, {r.tool_calls[1].name, #r.tool_calls})
    assert.are.equal(2, server:stats().requests)
  end)

  it("works in a ChainOfThought and leaves a plain Predict's result as it was", function()
    local weather = recording_tools({})
    local lm = lm_for(PROVIDERS[1], turns('weather({"city":"Oslo"})'))
    local cot = tide.ChainOfThought("question -> answer", {tools = {weather}})
    local r = cot({question = "Weather?"}, {lm = lm})
    assert.is_string(r.reasoning)
    assert.are.equal(1, #r.tool_calls)
    local plain = tide.Predict("question -> answer")({question = "Hi"}, {lm = lm})
    assert.is_nil(rawget(plain, "tool_calls"))
  end)

  it("raises misuse at the caller's line for bad tool options", function()
    local weather = recording_tools({})
    local cases = {
      {{tools = {}}, "bad argument 'opts.tools' to 'Predict' %(a non%-empty list of tide.Tools expected%)"},
      {{tools = {weather, "x"}}, "opts.tools%[2%].*a tide.Tool expected, got string"},
      {{tools = {weather, weather}}, 'two tools named "weather"'},
      {{tools = {weather}, max_iters = 0}, "opts.max_iters"},
      {{tools = {weather}, limit = 1.5}, "opts.limit"},
      {{tools = {weather}, timeout = {other = 1}}, '"other" is not one of the tools'},
      {{tools = {weather}, timeout = -1}, "opts.timeout"},
      {{tools = {weather}, tool_choice = "clock"}, "opts.tool_choice"},
      {{max_iters = 3}, "bad argument 'opts.max_iters' to 'Predict' %(it needs opts.tools%)"},
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(tide.Predict, "question -> answer", case[1])
      assert.is_false(ok)
      assert.matches("predict_tools_spec.lua:%d+: .*" .. case[2], err)
    end
  end)
end)

describe("mockllm's agent scripts", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  local function refusal(scenario)
    local r = tide.request{url = server.url .. "/v1/chat/completions", method = "POST",
      headers = {["Content-Type"] = "application/json", Authorization = "Bearer sk-spec",
                 ["X-Mock-Scenario"] = scenario},
      body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'}
    return r.status, r.body
  end

  it("refuses a bad tool_turns, react or context value, naming it", function()
    local status, body = refusal("tool_turns=" .. encode('weather({"city":"Oslo"})|clock('))
    assert.are.equal(400, status)
    assert.matches("tool_calls: no ')' after 'clock'", body, 1, true)
    status, body = refusal("react=" .. encode('a({})+b({})'))
    assert.are.equal(400, status)
    assert.matches("react wants one NAME(JSON_ARGS) per step, step 1 has 2", body, 1, true)
    status, body = refusal("context=0")
    assert.are.equal(400, status)
    assert.matches("bad token count for 'context'", body, 1, true)
  end)
end)

describe("scripts/agent.lua", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  it("runs offline against mockllm: a Predict with tools, then a ReAct", function()
    local cache_dir = os.tmpname()
    os.remove(cache_dir)
    local p = io.popen(string.format("env -u TIDE_MODEL TIDE_CACHE_DIR=%s MOCKLLM_URL=%s %s " ..
      "scripts/agent.lua 2>&1; echo \"rc=$?\"", cache_dir, server.url, os.getenv("TIDE_BIN") or "build/tide"))
    local out = p:read("a")
    p:close()
    os.execute("rm -rf " .. cache_dir)
    assert.matches("rc=0%s*$", out)
    assert.matches('turn 1  weather  {[^\n]*"Oslo"[^\n]*-> Oslo: 4 C, sleet', out)
    assert.matches('turn 1  weather  {[^\n]*"Lima"[^\n]*-> Lima: 19 C, overcast', out)
    assert.matches("step 1  weather [^\n]*-> Lima: 19 C, overcast", out)
    assert.matches("step 2  finish {} %-> Completed%.", out)
    assert.matches("usage: %d+ tokens in 6 calls", out)
    assert.are.equal(6, server:stats().requests)
  end)
end)

describe("tide.DummyLM tool calls", function()
  after_each(assert_clean)

  it("scripts a tool loop without a server", function()
    local seen = {}
    local weather = tide.Tool{name = "weather", args = {city = "str"},
      fn = function(a) seen[#seen + 1] = a.city; return "sunny in " .. a.city end}
    local lm = tide.DummyLM{
      {tool_calls = {{name = "weather", args = {city = "Oslo"}}, {name = "weather", args = {city = "Lima"}}}},
      "[[ ## answer ## ]]\nBoth sunny\n\n[[ ## completed ## ]]",
    }
    local r = tide.Predict("question -> answer", {tools = {weather}})({question = "?"}, {lm = lm})
    assert.are.equal("Both sunny", r.answer)
    table.sort(seen)
    assert.are.same({"Lima", "Oslo"}, seen)
    assert.are.same({"call_dummy_1", "tool_calls"}, {lm.history[1].tool_calls[1].id, lm.history[1].finish_reason})
    local sent = lm.history[2].messages
    assert.are.same({"tool", "call_dummy_2", "sunny in Lima"},
      {sent[#sent].role, sent[#sent].tool_call_id, sent[#sent].content})
  end)

  it("refuses a malformed scripted call with a typed error", function()
    local lm = tide.DummyLM{{tool_calls = {{args = {}}}}}
    local ok, err = pcall(lm.call, lm, "hi")
    assert.is_false(ok)
    assert.are.equal("bad_request", err.kind)
    assert.matches("tool_calls%[1%] must be {name = string", err.message)
  end)
end)
