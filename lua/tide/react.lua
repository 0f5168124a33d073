--- tide.ReAct: DSPy's ReAct agent — reason, pick a tool, read its observation,
-- again, then extract the signature's outputs from the trajectory.
--
--   local react = tide.ReAct("question -> answer", {tools = {weather}, max_iters = 8})
--   local r = react{question = "Is it warmer in Oslo or Lima?"}
--   r.answer, r.reasoning, r.trajectory.tool_name_0, r.trajectory.observation_0
--
-- The prompts are DSPy 3.x's for the same signature and tools: a `react`
-- predictor whose instructions list the tools (and `finish`) as DSPy's Tool
-- prints them, with the inputs and a `trajectory` in and next_thought,
-- next_tool_name (a Literal of the tool names and finish), next_tool_args out;
-- then an `extract` ChainOfThought over the inputs and the trajectory.  The
-- trajectory is DSPy's dict: thought_i, tool_name_i, tool_args_i, observation_i
-- from 0, written into the prompt as the chat adapter writes fields.  When a
-- step's prompt does not fit the model's context, the oldest step is dropped and
-- the call made again, at most three times, as DSPy does; a step the model's
-- reply does not name a tool in ends the trajectory, and the outputs are
-- extracted from what was gathered.  Tools run one per step (a step names one),
-- each as a task, with the per-tool `timeout` of tide.Predict's tool loop.
local cjson = require "cjson"
local core = require "tide.core"
local check = require "tide.check"
local module = require "tide.module"
local predict = require "tide.predict"
local prediction = require "tide.prediction"
local common = require "tide.adapters.common"
local pyjson = require "tide.adapters.pyjson"
local loop = require "tide.tools.loop"
local Signature = require "tide.signature"

local M = {}

M.DEFAULT_MAX_ITERS = 20   -- DSPy's
local TURNS = {integer = true, min = 1}
local FINISHED = "Completed."   -- what DSPy's finish tool returns
local TRUNCATION_TRIES = 3

-- ---- the instructions: the tools as DSPy's Tool prints them --------------------------

-- JSON Schema keys whose value is a list even when empty.
local LIST_KEYS = {required = true, enum = true, anyOf = true, oneOf = true, allOf = true,
                   prefixItems = true, type = true}

local schema_repr

-- repr() of a JSON Schema value as pydantic makes it: keys sorted (pydantic
-- sorts a schema's keys, but not the names under `properties`, which a Lua table
-- has no order for: they are sorted too).
local function value_repr(v, key)
  if type(v) == "string" then return pyjson.str_repr(v) end
  if type(v) ~= "table" then return pyjson.str(v) end   -- numbers, booleans, null
  if next(v) == nil then return LIST_KEYS[key] and "[]" or "{}" end
  if getmetatable(v) == nil and pyjson.is_list(v) then
    local items = {}
    for i, item in ipairs(v) do items[i] = value_repr(item) end
    return "[" .. table.concat(items, ", ") .. "]"
  end
  return schema_repr(v)
end

schema_repr = function(t)
  if getmetatable(t) ~= nil and t.map then t = t.map end   -- pyjson.ordered (the schema of Any)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local items = {}
  for i, k in ipairs(keys) do items[i] = pyjson.str_repr(k) .. ": " .. value_repr(t[k], k) end
  return "{" .. table.concat(items, ", ") .. "}"
end

--- "name, whose description is <desc>...</desc>. It takes arguments {...}." as DSPy's
-- Tool.__str__ writes it; the arguments are the schema's properties.
local function tool_text(name, desc, properties)
  local d = "."
  if desc ~= nil and desc ~= "" then
    d = ", whose description is <desc>" .. desc:gsub("\n", "  ") .. "</desc>."
  end
  return name .. d .. " It takes arguments " .. schema_repr(properties or {}) .. "."
end

--- A tool's arguments as DSPy's Tool holds them: each argument's JSON schema, an
-- Optional one as pydantic writes it for `x: Optional[T] = None`.
local function tool_args(t)
  if not t.fields then return t.schema.properties or {} end   -- a JSON Schema tool
  local out = {}
  for _, f in ipairs(t.fields) do
    local s = common.schema(f.type)
    if f.type.nullable then s = {anyOf = {s, {type = "null"}}, default = cjson.null} end
    out[f.name] = s
  end
  return out
end

local function field_names(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = "`" .. f.name .. "`" end
  return table.concat(out, ", ")
end

--- The react step's instructions, DSPy's text for these tools.
local function instructions(sig, tools)
  local inputs, outputs = field_names(sig.inputs), field_names(sig.outputs)
  local lines = {}
  if sig.instructions ~= "" then lines[1] = sig.instructions .. "\n" end
  local function add(s) lines[#lines + 1] = s end
  add("You are an Agent. In each episode, you will be given the fields " .. inputs ..
      " as input. And you can see your past trajectory so far.")
  add("Your goal is to use one or more of the supplied tools to collect any necessary " ..
      "information for producing " .. outputs .. ".\n")
  add("To do this, you will interleave next_thought, next_tool_name, and next_tool_args in " ..
      "each turn, and also when finishing the task.")
  add("After each tool call, you receive a resulting observation, which gets appended to " ..
      "your trajectory.\n")
  add("When writing next_thought, you may reason about the current situation and plan for " ..
      "future steps.")
  add("When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n")
  for i, t in ipairs(tools) do
    add("(" .. i .. ") " .. tool_text(t.name, t.desc, tool_args(t)))
  end
  add("(" .. #tools + 1 .. ") " .. tool_text("finish", "Marks the task as complete. That is, " ..
    "signals that all information for producing the outputs, i.e. " .. outputs ..
    ", are now available to be extracted.", {}))
  add("When providing `next_tool_args`, the value inside the field must be in JSON format")
  return table.concat(lines, "\n")
end

-- ---- the signatures --------------------------------------------------------------------

local function react_signature(sig, tools)
  local names = {}
  for i, t in ipairs(tools) do names[i] = t.name end
  names[#names + 1] = "finish"
  local s = sig:with_instructions(instructions(sig, tools))
  for _, f in ipairs(sig.outputs) do s = s:delete(f.name) end
  return s:append("trajectory", "str", "input")
          :append("next_thought", "str")
          :append("next_tool_name", "one of: " .. table.concat(names, ", "))   -- Literal[...]
          :append("next_tool_args", "dict[str, Any]")
end

-- ---- the trajectory --------------------------------------------------------------------

local STEP_KEYS = {"thought", "tool_name", "tool_args", "observation"}
local DICT = Signature.parse_type("dict")   -- tool_args: an empty table is {}

--- A step as the chat adapter writes input fields (DSPy formats the trajectory
-- with format_user_message_content): `[[ ## thought_0 ## ]]` sections, each value
-- as DSPy writes a str field's value.  Made once per step: every later prompt
-- holds it.
local function step_text(step)
  local parts = {}
  for i, key in ipairs(STEP_KEYS) do
    local v = step[key]
    local text = key == "tool_args" and pyjson.dumps(v, {type = DICT}) or pyjson.str(v)
    parts[i] = "[[ ## " .. key .. "_" .. step.idx .. " ## ]]\n" .. text
  end
  return table.concat(parts, "\n\n")
end

local function trajectory_text(steps)
  local parts = {}
  for i, step in ipairs(steps) do parts[i] = step.text end
  return common.trim(table.concat(parts, "\n\n"))
end

--- DSPy's trajectory dict: thought_i, tool_name_i, tool_args_i, observation_i.
local function trajectory_dict(steps)
  local out = {}
  for _, step in ipairs(steps) do
    for _, key in ipairs(STEP_KEYS) do out[key .. "_" .. step.idx] = step[key] end
  end
  return out
end

--- Drops the oldest step (DSPy's truncate_trajectory); a single step cannot be.
local function truncate(steps)
  if #steps <= 1 then
    error(core.error{kind = "context_window", message = "tide.ReAct: the trajectory is too " ..
      "long so the prompt exceeded the context window, but it cannot be truncated because " ..
      "it only has one tool call"}, 0)
  end
  table.remove(steps, 1)
end

--- p(inputs + trajectory, opts), dropping the oldest steps while the prompt does not fit.
local function call_truncating(p, steps, inputs, opts)
  local with = {}
  for k, v in pairs(inputs) do with[k] = v end
  for _ = 1, TRUNCATION_TRIES do
    with.trajectory = trajectory_text(steps)
    local ok, r = pcall(p, with, opts)
    if ok then return r end
    if not core.is_error(r, "context_window") then error(r, 0) end
    truncate(steps)
  end
  error(core.error{kind = "context_window", message = "tide.ReAct: the context window was " ..
    "exceeded even after " .. TRUNCATION_TRIES .. " attempts to truncate the trajectory"}, 0)
end

-- ---- the module ------------------------------------------------------------------------

local ReAct = module.new{
  forward = function(self, args, opts)
    return M.forward(self, args, opts)
  end,
}
ReAct.__name = "tide.ReAct"

function ReAct:__tostring()
  return "tide.ReAct(" .. tostring(self.signature) .. ")"
end

-- What a call may say besides the inputs: the predictors' options and max_iters.
local PASSED = {lm = true, config = true, adapter = true, parse_retries = true, fallback = true,
                callbacks = true}

-- Whether a key of the one-table form is an option rather than an input.
local function is_option(sig, k)
  return (PASSED[k] or k == "max_iters") and not sig:field(k)
end

--- Splits a call into inputs, the options for both predictors, and max_iters.
local function split(self, args, opts)
  check.type("ReAct", 1, args, "table")
  local inputs, pass, sig = args, nil, self.signature
  if opts == nil then
    for k in pairs(args) do
      if is_option(sig, k) then
        opts, inputs = {}, {}
        for key, v in pairs(args) do
          if is_option(sig, key) then opts[key] = v else inputs[key] = v end
        end
        break
      end
    end
  end
  local max_iters = self.max_iters
  if opts ~= nil then
    check.type("ReAct", 2, opts, "table")
    check.number("ReAct", "max_iters", opts.max_iters, TURNS, true)
    max_iters = opts.max_iters or max_iters
    pass = {}
    for k, v in pairs(opts) do
      if k ~= "max_iters" then pass[k] = v end
    end
  end
  return inputs, pass, max_iters
end

--- One step: the model's choice, then the tool's observation (or DSPy's
-- "Completed." for finish).
local function step(self, idx, pred)
  local s = {idx = idx, thought = pred.next_thought, tool_name = pred.next_tool_name,
             tool_args = pred.next_tool_args}
  if s.tool_name == "finish" then
    s.observation = FINISHED
  else
    local tool = self.by_name[s.tool_name]
    s.observation = loop.run_tool(tool, s.tool_args, loop.timeout_of(self.timeout, s.tool_name))
  end
  s.text = step_text(s)
  return s
end

function M.forward(self, args, opts)
  local inputs, pass, max_iters = split(self, args, opts)
  local steps = {}
  for idx = 0, max_iters - 1 do
    local ok, pred = pcall(call_truncating, self.react, steps, inputs, pass)
    if not ok then
      -- DSPy ends the trajectory when the step does not fit or names no valid tool
      if not (core.is_error(pred, "context_window") or core.is_error(pred, "parse")) then
        error(pred, 0)
      end
      break
    end
    local s = step(self, idx, pred)
    steps[#steps + 1] = s
    if s.tool_name == "finish" then break end
  end
  local extract = call_truncating(self.extract, steps, inputs, pass)
  local fields = {}
  for k, v in pairs(extract) do fields[k] = v end
  fields.trajectory = trajectory_dict(steps)
  return prediction.prediction(fields)
end

--- tide.ReAct(signature, {tools, max_iters, timeout, lm, adapter}) → the agent.
function M.new(sig, opts)
  opts = check.type("ReAct", 2, opts, "table")
  local tools, by_name = loop.check_tools("ReAct", opts.tools)
  if by_name.finish then
    check.fail("ReAct", "opts.tools", "a tool may not be named \"finish\": ReAct's own tool")
  end
  check.number("ReAct", "opts.max_iters", opts.max_iters, TURNS, true)
  local timeout = loop.options("ReAct", {tools = tools, timeout = opts.timeout}).timeout
  local base = predict.new(sig, {lm = opts.lm, adapter = opts.adapter})
  local s = base.signature
  local self = setmetatable({
    signature = s,
    max_iters = opts.max_iters or M.DEFAULT_MAX_ITERS,
    tools = tools,
    by_name = by_name,
    timeout = timeout,
    react = predict.new(react_signature(s, tools), {lm = opts.lm, adapter = opts.adapter}),
    extract = predict.chain_of_thought(s:append("trajectory", "str", "input"),
      {lm = opts.lm, adapter = opts.adapter}),
  }, ReAct)
  return self
end

M.ReAct = ReAct
M.instructions = instructions

return M
