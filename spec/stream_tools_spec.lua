-- predictor:stream for a predictor with tools, against mockllm's scripted agent
-- turns (tool_turns=) in the three wire formats and both adapters: each model
-- turn streams, a turn's calls show as tool_call events before they run and
-- tool_result events as each finishes (in parallel: the first call waits for
-- the second to finish, so its result comes second), the answering turn streams
-- its fields, and the prediction's tool_calls are the plain call's.
local tide = require "tide"
local mockllm = require "support.mockllm"
local lm_server = require "support.lm_server"

local PROVIDERS = lm_server.PROVIDERS
local ADAPTERS = {{"chat", tide.adapters.chat}, {"json", tide.adapters.json}}

local function turns(...)
  return "tool_turns=" .. mockllm.encode(table.concat({...}, "|"))
end

-- weather waits until clock has finished: both run at once, and clock's result comes first
local function tools()
  local clock_done = false
  local weather = tide.Tool{name = "weather", desc = "The weather of a city.", args = {city = "str"},
    fn = function(a)
      for _ = 1, 2000 do   -- run one after the other, clock would never be done
        if clock_done then return "sunny in " .. a.city end
        tide.sleep(0.001)
      end
      return "clock never ran"
    end}
  local clock = tide.Tool{name = "clock", desc = "The time in a zone.", args = {zone = "str"},
    fn = function(a)
      tide.sleep(0.001)
      clock_done = true
      return "12:00 " .. a.zone
    end}
  return weather, clock
end

-- The events of a stream, each as a short line, and the fields' chunks concatenated.
local function collect(iter, ...)
  local lines, text, last = {}, {}, nil
  for ev in iter, ... do
    if ev.field then
      assert.are_not.equal("", ev.chunk)
      text[ev.field] = (text[ev.field] or "") .. ev.chunk
      if lines[#lines] ~= "field " .. ev.field then lines[#lines + 1] = "field " .. ev.field end
    elseif ev.status then
      lines[#lines + 1] = string.format("%s %d %s", ev.status, ev.turn, ev.name)
      last = last or {}
      last[#last + 1] = ev
    else
      lines[#lines + 1] = "prediction"
      return lines, text, ev.prediction, last
    end
  end
  error("the stream ended without a prediction")
end

describe("predictor:stream with tools", function()
  local server = mockllm.serve()

  local function lm_for(p, scenario) return lm_server.lm_for(server, p, scenario) end

  local SCRIPT = {'weather({"city":"Oslo"})+clock({"zone":"CET"})', 'clock({"zone":"UTC"})'}

  for _, p in ipairs(PROVIDERS) do
    for _, a in ipairs(ADAPTERS) do
      it(p.name .. ", " .. a[1] .. " adapter: status events between streamed turns", function()
        local weather, clock = tools()
        local agent = tide.Predict("question -> answer, confident: bool",
          {tools = {weather, clock}, adapter = a[2]})
        local lm = lm_for(p, turns(SCRIPT[1], SCRIPT[2]))
        local lines, text, pred, status = collect(agent:stream({question = "Oslo?"}, {lm = lm}))
        assert.are.same({
          "tool_call 1 weather", "tool_call 1 clock",        -- as the model asks, in its order
          "tool_result 1 clock", "tool_result 1 weather",    -- as each finishes
          "tool_call 2 clock", "tool_result 2 clock",
          "field answer", "field confident", "prediction"}, lines)
        -- three model turns
        assert.are.equal(3, server:stats().requests)
        -- the chunks of a field concatenate to its text
        assert.matches("^Mock answer", pred.answer)
        assert.are.equal(pred.answer, text.answer)
        assert.are.equal(true, pred.confident)
        assert.matches("^%s*[Tt]rue%s*$", text.confident)
        -- the events carry the calls: args as asked, results as run, ids of the calls
        assert.are.same({city = "Oslo"}, status[1].args)
        assert.are.same({"sunny in Oslo", "12:00 CET"}, {status[4].result, status[3].result})
        assert.is_true(status[4].seconds >= 0)
        assert.are.equal(status[1].id, status[4].id)
        -- the prediction's history is the plain call's (mockllm numbers the ids per request)
        assert.are.same({status[1].id, status[2].id, status[5].id},
          {pred.tool_calls[1].id, pred.tool_calls[2].id, pred.tool_calls[3].id})
        local plain = agent({question = "Oslo?"}, {lm = lm_for(p, turns(SCRIPT[1], SCRIPT[2]))})
        assert.are.equal(3, #pred.tool_calls)
        for i, c in ipairs(plain.tool_calls) do
          local s = pred.tool_calls[i]
          assert.are.same({c.turn, c.name, c.args, c.result, c.error},
            {s.turn, s.name, s.args, s.result, s.error})
        end
        assert.are.equal(plain.answer, pred.answer)
      end)
    end

    it(p.name .. ": raises max_iters as the plain loop does, after the turns' events", function()
      local weather, clock = tools()
      local agent = tide.Predict("question -> answer", {tools = {weather, clock}, max_iters = 1})
      local lm = lm_for(p, turns('clock({"zone":"CET"})', 'clock({"zone":"UTC"})'))
      local seen = {}
      local ok, err = pcall(function()
        for ev in agent:stream({question = "Time?"}, {lm = lm}) do
          seen[#seen + 1] = ev.status or ev.field or "prediction"
        end
      end)
      assert.is_false(ok)
      assert.are.equal("max_iters", err.kind)
      assert.matches("after max_iters = 1", err.message)
      assert.are.equal(1, #err.tool_calls)
      assert.are.same({"tool_call", "tool_result"}, seen)
      assert.are.equal(2, server:stats().requests)
    end)
  end

  it("reports malformed arguments as a result and goes on (openai)", function()
    local weather, clock = tools()
    local agent = tide.Predict("question -> answer", {tools = {weather, clock}})
    local lm = lm_for(PROVIDERS[1], turns('weather!({"city":"Lima"})'))
    local events = {}
    for ev in agent:stream({question = "Lima?"}, {lm = lm}) do events[#events + 1] = ev end
    assert.are.same({"tool_result", "parse", "weather"},
      {events[1].status, events[1].error.kind, events[1].name})
    local pred = events[#events].prediction
    assert.are.equal("parse", pred.tool_calls[1].error.kind)
    assert.matches("^Mock answer", pred.answer)
  end)

  it("leaving the loop while tools run cancels them and the conversation", function()
    local cancelled = false
    local slow = tide.Tool{name = "slow", desc = "Hangs.", args = {},
      fn = function()
        local ok, err = pcall(tide.sleep, 30)
        cancelled = not ok and tide.is_error(err, "cancelled")
        if not ok then error(err, 0) end
      end}
    local agent = tide.Predict("question -> answer", {tools = {slow}})
    local lm = lm_for(PROVIDERS[2], turns('slow({})'))
    local seen = {}
    for ev in agent:stream({question = "Wait"}, {lm = lm}) do
      seen[#seen + 1] = ev.status
      if ev.status == "tool_call" then
        tide.sleep(0.01)   -- the call has started
        break
      end
    end
    assert.are.same({"tool_call"}, seen)
    tide.sleep(0)
    assert.is_true(cancelled)
    assert.are.equal(1, server:stats().requests)
  end)

  it("raises a model's error and refuses n > 1 at once", function()
    local weather = tools()
    local agent = tide.Predict("question -> answer", {tools = {weather}})
    local lm = lm_for(PROVIDERS[1], "status=500")
    local ok, err = pcall(function() for _ in agent:stream({question = "Q"}, {lm = lm}) do end end)
    assert.is_false(ok)
    assert.are.equal("server", err.kind)
    assert.has_error(function()
      agent:stream({question = "Q"}, {lm = lm, config = {n = 2}})
    end, "predictor:stream: one reply streams at a time (config.n is 2)")
  end)
end)
