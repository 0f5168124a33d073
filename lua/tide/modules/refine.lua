--- tide.Refine(module, {N, reward_fn, threshold, fail_count}): the module run up to N
-- times in turn, each failed attempt's advice handed to the next.
--
--   local refined = tide.Refine(qa, {N = 3, reward_fn = one_word, threshold = 1})
--
-- DSPy's semantics: each attempt runs a copy of the module at its own rollout_id and
-- temperature 1.0; an attempt whose reward reaches the threshold ends the run; after
-- one that does not (but the last), an LM call with DSPy's OfferFeedback signature
-- reads the program's code, its modules, the trajectory of every predictor's inputs
-- and outputs and the reward, and writes advice per predictor; the next attempt's
-- predictors each get their advice as an extra input, `hint_`.  The best prediction
-- is returned.  The attempts run one after another: each needs the advice of the last.
local core = require "tide.core"
local Module = require "tide.module"
local Signature = require "tide.signature"
local settings = require "tide.settings"
local chat = require "tide.adapters.chat"
local common = require "tide.adapters.common"
local pyjson = require "tide.adapters.pyjson"
local predict = require "tide.predict"
local attempt = require "tide.modules.attempt"

local FNAME = "Refine"

-- DSPy's OfferFeedback signature: its instructions and fields, so the advice call's
-- prompt is the one DSPy sends.
local OFFER_FEEDBACK = Signature.new({
  inputs = {
    {name = "program_code", type = "str", desc = "The code of the program that we are analyzing"},
    {name = "modules_defn", type = "str",
     desc = "The definition of each module in the program, including its I/O"},
    {name = "program_inputs", type = "str", desc = "The inputs to the program that we are analyzing"},
    {name = "program_trajectory", type = "str",
     desc = "The trajectory of the program's execution, showing each module's I/O"},
    {name = "program_outputs", type = "str", desc = "The outputs of the program that we are analyzing"},
    {name = "reward_code", type = "str", desc = "The code of the reward function that we are analyzing"},
    {name = "target_threshold", type = "float", desc = "The target threshold for the reward function"},
    {name = "reward_value", type = "float", desc = "The reward value assigned to the program's outputs"},
    {name = "module_names", type = "list[str]",
     desc = "The names of the modules in the program, for which we seek advice"},
  },
  outputs = {
    {name = "discussion", type = "str", desc = "Discussing blame of where each module went wrong, if it did"},
    {name = "advice", type = "dict[str, str]", desc =
      "For each module, describe very concretely, in this order: the specific scenarios in which it " ..
      "has made mistakes in the past and what each mistake was, followed by what it should do " ..
      "differently in that kind of scenario in the future. If the module is not to blame, write N/A."},
  },
}, table.concat({
  "In the discussion, assign blame to each module that contributed to the final reward being below " ..
    "the threshold, if",
  "any. Then, prescribe concrete advice of how the module should act on its future input when we " ..
    "retry the process, if",
  "it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.",
  "The module will not see its own history, so it needs to rely on entirely concrete and actionable " ..
    "advice from you",
  "to avoid the same mistake on the same or similar inputs.",
}, "\n"))

local HINT = {type = "str", desc = "A hint to the module from an earlier run"}

-- ---- what the advice call is shown --------------------------------------------------------

--- The source text of a Lua function, read from its file when it has one.
local function source_of(fn)
  if type(fn) ~= "function" then return nil end
  local info = debug.getinfo(fn, "S")
  if info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return nil end
  local file = io.open(info.source:sub(2), "r")
  if not file then return nil end
  local lines, n = {}, 0
  for line in file:lines() do
    n = n + 1
    if n >= info.linedefined then lines[#lines + 1] = line end
    if n >= info.lastlinedefined then break end
  end
  file:close()
  return #lines > 0 and table.concat(lines, "\n") or nil
end

--- The program's code, as DSPy shows its class's source: a module's init and forward,
-- a predictor's description.
local function program_code(module)
  local class = getmetatable(module)
  local parts = {}
  for _, name in ipairs({"init", "forward"}) do
    local text = class and rawget(class, name) and source_of(rawget(class, name))
    if text then parts[#parts + 1] = text end
  end
  if #parts == 0 then return tostring(module) end
  return table.concat(parts, "\n\n")
end

--- DSPy's description of each predictor: its fields and instructions, tab-indented.
local function modules_defn(module)
  local sep = string.rep("-", 80)
  local out = {sep}
  local function indented(text)
    return (("\n\t\t" .. text:gsub("\n", "\n\t\t")):gsub("^\n+", ""):gsub("\n+$", ""))
  end
  for _, np in ipairs(module:named_predictors()) do
    local sig = np[2].signature
    local fields = common.field_description(sig)
    local inputs = fields:match("^Your input fields are:\n(.-)\nYour output fields are:\n")
    local outputs = fields:match("\nYour output fields are:\n(.*)$")
    out[#out + 1] = "Module " .. np[1]
    out[#out + 1] = "\tInput Fields:"
    out[#out + 1] = indented(inputs)
    out[#out + 1] = "\tOutput Fields:"
    out[#out + 1] = indented(outputs)
    out[#out + 1] = "\tOriginal Instructions: " .. (sig.instructions or ""):gsub("\n", "\n\t\t")
    out[#out + 1] = sep
  end
  return table.concat(out, "\n")
end

local function dumps(v)
  if type(v) == "string" then return v end
  return pyjson.dumps(v, {indent = 2})
end

--- The fields of a prediction (or inputs), as a plain table.
local function fields_of(t)
  local out = {}
  for k, v in pairs(t) do
    if k ~= "completions" then out[k] = v end
  end
  return out
end

-- ---- an attempt with hints and a trace -------------------------------------------------------

--- Gives each predictor of the copy an adapter that records (name, inputs, outputs)
-- in trace and, when advice is given, adds the predictor's hint as the `hint_` input.
local function instrument(copy, trace, advice)
  for _, np in ipairs(copy:named_predictors()) do
    local name, p = np[1], np[2]
    local inner = p.adapter or settings.get("adapter") or chat
    local hinted = {}   -- signature → the same with hint_
    p.adapter = {call = function(lm, sig, inputs, opts)
      if advice then
        hinted[sig] = hinted[sig] or sig:append("hint_", HINT, "input")
        local with_hint = fields_of(inputs)
        local hint = advice[name]
        with_hint.hint_ = type(hint) == "string" and hint or "N/A"
        sig, inputs = hinted[sig], with_hint
      end
      local outputs = inner.call(lm, sig, inputs, opts)
      local shown = fields_of(inputs)
      shown.hint_ = nil
      trace[#trace + 1] = {module_name = name, inputs = shown, outputs = fields_of(outputs[1])}
      return outputs
    end}
  end
end

--- The advice for the next attempt: a predictor per module name, from OfferFeedback.
local function offer_feedback(self, copy, inputs, trace, outputs, reward)
  local names = {}
  for i, np in ipairs(copy:named_predictors()) do names[i] = np[1] end
  local advise = predict.new(OFFER_FEEDBACK)
  local r = advise{
    program_code = self.module_code,
    modules_defn = modules_defn(copy),
    program_inputs = dumps(fields_of(inputs)),
    program_trajectory = dumps(trace),
    program_outputs = dumps(fields_of(outputs)),
    reward_code = self.reward_code,
    target_threshold = self.threshold or 0,
    reward_value = reward,
    module_names = names,
  }
  return type(r.advice) == "table" and r.advice or {}
end

local Refine = Module.new{
  init = function(self, module, opts)
    for k, v in pairs(attempt.options(FNAME, module, opts)) do self[k] = v end
    self.module_code = program_code(module)
    self.reward_code = source_of(opts.reward_fn) or tostring(opts.reward_fn)
  end,

  forward = function(self, inputs)
    local first = attempt.first_rollout(self.module)
    local best, failures, advice, last_error = nil, 0, nil, nil
    for i = 1, self.N do
      local copy = attempt.copy_at(self.module, first + i - 1)
      local trace = {}
      instrument(copy, trace, advice)
      local ok, err = pcall(function()
        local pred = copy(inputs)
        local reward = attempt.reward(FNAME, self.reward_fn, inputs, pred, i)
        if best == nil or reward > best.reward then best = {prediction = pred, reward = reward} end
        if (self.threshold ~= nil and reward >= self.threshold) or i == self.N then
          return "done"
        end
        advice = offer_feedback(self, copy, inputs, trace, pred, reward)
      end)
      if ok and err == "done" then break end
      if not ok then
        if core.is_error(err, "cancelled") then error(err, 0) end
        failures, last_error = failures + 1, err
        if failures >= self.fail_count then error(err, 0) end
      end
    end
    if best == nil then error(last_error, 0) end   -- every attempt failed, fail_count > N
    return best.prediction
  end,
}

function Refine:__tostring()
  return string.format("tide.Refine(%s, N = %d)", tostring(self.module), self.N)
end

return Refine
