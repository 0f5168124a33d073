-- tide.ReAct against mockllm over real sockets: the prompts are DSPy 3.x's ReAct
-- prompts for the same signature and tools (the expected texts below are written
-- from DSPy's dspy/predict/react.py, its Tool.__str__ and its ChatAdapter), the
-- steps run as mockllm's react= scenario scripts them, then the extract step;
-- bad steps become observations, and a prompt past the context window drops the
-- oldest step as DSPy does.
local tide = require "tide"
local mockllm = require "support.mockllm"
local lm_server = require "support.lm_server"

local PROVIDERS = lm_server.PROVIDERS

local encode = mockllm.encode   -- a scenario value for the header

local function steps(...)
  return "react=" .. encode(table.concat({...}, "|"))
end

-- DSPy's instructions for "question -> answer" and the tools below (in DSPy:
-- def weather(city: str, unit: Literal["C", "F"], days: Optional[int] = None) with
-- that docstring, and clock()), as its ChatAdapter indents them in the system message.
local INSTRUCTIONS = [==[
Given the fields `question`, produce the fields `answer`.

You are an Agent. In each episode, you will be given the fields `question` as input. And you can see your past trajectory so far.
Your goal is to use one or more of the supplied tools to collect any necessary information for producing `answer`.

To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.
After each tool call, you receive a resulting observation, which gets appended to your trajectory.

When writing next_thought, you may reason about the current situation and plan for future steps.
When selecting the next_tool_name and its next_tool_args, the tool must be one of:

(1) weather, whose description is <desc>Current weather in a city.  Celsius or Fahrenheit.</desc>. It takes arguments {'city': {'type': 'string'}, 'days': {'anyOf': [{'type': 'integer'}, {'type': 'null'}], 'default': None}, 'unit': {'enum': ['C', 'F'], 'type': 'string'}}.
(2) clock. It takes arguments {}.
(3) finish, whose description is <desc>Marks the task as complete. That is, signals that all information for producing the outputs, i.e. `answer`, are now available to be extracted.</desc>. It takes arguments {}.
When providing `next_tool_args`, the value inside the field must be in JSON format]==]

-- "$" marks a line's trailing space (DSPy writes one after an empty description)
local function spaced(text)
  return (text:gsub("%$\n", " \n"))
end

local function indented(text)
  return (text:gsub("\n", "\n        "))
end

local REACT_SYSTEM = spaced[==[
Your input fields are:
1. `question` (str):$
2. `trajectory` (str):
Your output fields are:
1. `next_thought` (str):$
2. `next_tool_name` (Literal['weather', 'clock', 'finish']):$
3. `next_tool_args` (dict[str, Any]):
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## question ## ]]
{question}

[[ ## trajectory ## ]]
{trajectory}

[[ ## next_thought ## ]]
{next_thought}

[[ ## next_tool_name ## ]]
{next_tool_name}        # note: the value you produce must exactly match (no extra characters) one of: weather; clock; finish

[[ ## next_tool_args ## ]]
{next_tool_args}        # note: the value you produce must adhere to the JSON schema: {"type": "object", "additionalProperties": true}

[[ ## completed ## ]]
In adhering to this structure, your objective is:$
        ]==] .. indented(INSTRUCTIONS)

local REACT_REQUIREMENTS = "Respond with the corresponding output fields, starting with the field " ..
  "`[[ ## next_thought ## ]]`, then `[[ ## next_tool_name ## ]]` (must be formatted as a valid " ..
  "Python Literal['weather', 'clock', 'finish']), then `[[ ## next_tool_args ## ]]` (must be " ..
  "formatted as a valid Python dict[str, Any]), and then ending with the marker for `[[ ## completed ## ]]`."

local FIRST_USER = "[[ ## question ## ]]\nWarmer in Oslo or Lima?\n\n[[ ## trajectory ## ]]\n\n\n" ..
  REACT_REQUIREMENTS

local TRAJECTORY_1 = [==[
[[ ## thought_0 ## ]]
Step 1: I call weather.

[[ ## tool_name_0 ## ]]
weather

[[ ## tool_args_0 ## ]]
{"city": "Oslo", "unit": "C"}

[[ ## observation_0 ## ]]
12 C in Oslo]==]

local EXTRACT_SYSTEM = spaced[==[
Your input fields are:
1. `question` (str):$
2. `trajectory` (str):
Your output fields are:
1. `reasoning` (str):$
2. `answer` (str):
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## question ## ]]
{question}

[[ ## trajectory ## ]]
{trajectory}

[[ ## reasoning ## ]]
{reasoning}

[[ ## answer ## ]]
{answer}

[[ ## completed ## ]]
In adhering to this structure, your objective is:$
        Given the fields `question`, produce the fields `answer`.]==]

describe("tide.ReAct", function()
  local server = mockllm.serve()

  local function lm_for(p, scenario) return lm_server.lm_for(server, p, scenario) end

  local weather = tide.Tool{name = "weather", desc = "Current weather in a city.\nCelsius or Fahrenheit.",
    args = {city = "str", unit = "one of: C, F", days = "Optional[int]"},
    fn = function(a)
      if a.city == "Nowhere" then error("no such city") end
      return (a.unit == "C" and "12 C in " or "70 F in ") .. a.city
    end}
  local clock = tide.Tool{name = "clock", fn = function() return "12:00" end}

  it("sends DSPy's ReAct and extract prompts, step by step", function()
    local lm = lm_for(PROVIDERS[1], steps('weather({"city":"Oslo","unit":"C"})', 'finish({})'))
    local react = tide.ReAct("question -> answer", {tools = {weather, clock}, lm = lm})
    local r = react{question = "Warmer in Oslo or Lima?"}
    assert.are.equal(3, #lm.history)   -- two steps, then the extract
    local first = lm.history[1].messages
    assert.are.equal(2, #first)
    assert.are.equal(REACT_SYSTEM, first[1].content)
    assert.are.equal(FIRST_USER, first[2].content)
    local second = lm.history[2].messages
    assert.are.equal("[[ ## question ## ]]\nWarmer in Oslo or Lima?\n\n[[ ## trajectory ## ]]\n" ..
      TRAJECTORY_1 .. "\n\n" .. REACT_REQUIREMENTS, second[2].content)
    local extract = lm.history[3].messages
    assert.are.equal(EXTRACT_SYSTEM, extract[1].content)
    assert.are.equal("[[ ## question ## ]]\nWarmer in Oslo or Lima?\n\n[[ ## trajectory ## ]]\n" ..
      TRAJECTORY_1 .. "\n\n[[ ## thought_1 ## ]]\nStep 2: I call finish.\n\n[[ ## tool_name_1 ## ]]\n" ..
      "finish\n\n[[ ## tool_args_1 ## ]]\n{}\n\n[[ ## observation_1 ## ]]\nCompleted.\n\n" ..
      "Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, " ..
      "then `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.",
      extract[2].content)
    -- the prediction: the extract's outputs and DSPy's trajectory dict
    assert.matches("^Mock answer", r.answer)
    assert.is_string(r.reasoning)
    assert.are.same({
      thought_0 = "Step 1: I call weather.", tool_name_0 = "weather",
      tool_args_0 = {city = "Oslo", unit = "C"}, observation_0 = "12 C in Oslo",
      thought_1 = "Step 2: I call finish.", tool_name_1 = "finish", tool_args_1 = {},
      observation_1 = "Completed.",
    }, r.trajectory)
  end)

  for _, p in ipairs(PROVIDERS) do
    it("finishes in DSPy's format over " .. p.name, function()
      local lm = lm_for(p, steps('weather({"city":"Oslo","unit":"C"})', 'weather({"city":"Lima","unit":"F"})',
                                 'finish({})'))
      local r = tide.ReAct("question -> answer", {tools = {weather}})({question = "Warmer?"}, {lm = lm})
      assert.are.same({"12 C in Oslo", "70 F in Lima", "Completed."},
        {r.trajectory.observation_0, r.trajectory.observation_1, r.trajectory.observation_2})
      assert.matches("^Mock answer", r.answer)
      assert.are.equal(4, server:stats().requests)
    end)
  end

  it("stops at max_iters and extracts what it has", function()
    local lm = lm_for(PROVIDERS[1], steps('clock({})', 'clock({})', 'clock({})', 'clock({})'))
    local react = tide.ReAct("question -> answer", {tools = {clock}, max_iters = 5})
    local r = react{question = "Time?", lm = lm, max_iters = 2}   -- DSPy's one-table form
    assert.are.same({"clock", "clock"}, {r.trajectory.tool_name_0, r.trajectory.tool_name_1})
    assert.is_nil(r.trajectory.thought_2)
    assert.are.equal(3, server:stats().requests)
  end)

  it("makes bad arguments and a raising tool observations, and goes on", function()
    local lm = lm_for(PROVIDERS[2], steps('weather({"city":"Oslo"})', 'weather({"city":"Nowhere","unit":"F"})',
                                          'finish({})'))
    local r = tide.ReAct("question -> answer", {tools = {weather}})({question = "?"}, {lm = lm})
    assert.matches("Error: tool weather was called with bad arguments: missing argument 'unit'",
      r.trajectory.observation_0)
    assert.matches("Error: tool weather failed: .*no such city", r.trajectory.observation_1)
    assert.are.equal("Completed.", r.trajectory.observation_2)
  end)

  it("ends the trajectory when the model names no tool it has, as DSPy does", function()
    local lm = lm_for(PROVIDERS[1], steps('clock({})', 'search({"q":"x"})'))
    local r = tide.ReAct("question -> answer", {tools = {clock}})({question = "?"}, {lm = lm})
    assert.are.equal("12:00", r.trajectory.observation_0)
    assert.is_nil(r.trajectory.tool_name_1)
    assert.matches("^Mock answer", r.answer)
  end)

  it("drops the oldest steps when the prompt passes the context window", function()
    -- each observation is ~2000 tokens; a prompt holding three of them does not fit
    local big = tide.Tool{name = "big", desc = "A long page.", args = {}, fn = function()
      return string.rep("word ", 1600)
    end}
    local lm = lm_for(PROVIDERS[1], steps('big({})', 'big({})', 'big({})', 'big({})', 'finish({})') ..
      ";context=6000")
    local r = tide.ReAct("question -> answer", {tools = {big}})({question = "Read"}, {lm = lm})
    local t = r.trajectory
    assert.is_nil(t.thought_0)
    assert.is_nil(t.observation_1)
    assert.are.same({"big", "big", "finish"}, {t.tool_name_2, t.tool_name_3, t.tool_name_4})
    assert.matches("^Mock answer", r.answer)
    -- 5 steps, 2 of them refused once, then the extract
    assert.are.equal(8, server:stats().requests)
  end)

  it("raises context_window when even one step does not fit", function()
    local lm = lm_for(PROVIDERS[3], steps('clock({})') .. ";context=10")
    local ok, err = pcall(tide.ReAct("question -> answer", {tools = {clock}}), {question = "?"}, {lm = lm})
    assert.is_false(ok)
    assert.are.equal("context_window", err.kind)
    assert.matches("cannot be truncated", err.message)
  end)

  it("names its predictors as DSPy does and takes set_lm", function()
    local react = tide.ReAct("question -> answer", {tools = {clock}})
    local names = {}
    for i, np in ipairs(react:named_predictors()) do names[i] = np[1] end
    table.sort(names)
    assert.are.same({"extract.predict", "react"}, names)
    local lm = lm_for(PROVIDERS[1], steps('finish({})'))
    react:set_lm(lm)
    assert.matches("^Mock answer", react{question = "?"}.answer)
  end)

  it("raises misuse at the caller's line", function()
    local finish = tide.Tool{name = "finish", fn = function() end}
    local cases = {
      {function() tide.ReAct("question -> answer") end, "bad argument #2 to 'ReAct'"},
      {function() tide.ReAct("question -> answer", {tools = {}}) end, "opts.tools"},
      {function() tide.ReAct("question -> answer", {tools = {finish}}) end, 'may not be named "finish"'},
      {function() tide.ReAct("question -> answer", {tools = {clock}, max_iters = 0}) end, "opts.max_iters"},
      {function() tide.ReAct("question -> answer", {tools = {clock}})({question = "?"}, {max_iters = -1}) end,
        "max_iters"},
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.matches("react_spec.lua:%d+: .*" .. case[2]:gsub("[%.%-%[%]%(%)]", "%%%0"), err)
    end
  end)
end)
