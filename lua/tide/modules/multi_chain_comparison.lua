--- tide.MultiChainComparison(signature [, {M, temperature, ...}]): M attempts at a
-- question (ChainOfThought predictions) compared in one call that writes a corrected
-- reasoning and the answer, as DSPy's dspy.MultiChainComparison.
--
--   local cot = tide.ChainOfThought("question -> answer")
--   local attempts = tide.map({1, 2, 3}, function(i)
--     return cot({question = q}, {config = {rollout_id = i, temperature = 1}}) end)
--   local mcc = tide.MultiChainComparison("question -> answer", {M = 3})
--   print(mcc(attempts, {question = q}).answer)
--
-- The signature gains the inputs reasoning_attempt_1..M ("Student Attempt #i:") and a
-- first output `rationale` ("Accurate Reasoning: Thank you everyone. Let's now
-- holistically"); each attempt is shown as DSPy writes it: «I'm trying to <first line
-- of its reasoning> I'm not sure but my prediction is <first line of its answer>».
local check = require "tide.check"
local state = require "tide.state"
local predict = require "tide.predict"
local Signature = require "tide.signature"
local common = require "tide.adapters.common"

local MCC = {}
MCC.__index = MCC
MCC.__name = "tide.MultiChainComparison"

local function first_line(v)
  local s = common.trim(type(v) == "string" and v or tostring(v))
  return common.trim(s:match("^[^\n]*"))
end

local function new(sig, opts)
  opts = check.type("MultiChainComparison", 2, opts, "table", true) or {}
  check.number("MultiChainComparison", "M", opts.M, {integer = true, min = 1}, true)
  check.number("MultiChainComparison", "temperature", opts.temperature, {min = 0}, true)
  local m = math.tointeger(opts.M or 3)
  local base = type(sig) == "string" and Signature.new(sig) or sig
  if not Signature.is_signature(base) then
    check.fail("MultiChainComparison", 1, "signature or string expected, got " .. type(sig))
  end
  local last_key = base.outputs[#base.outputs].name
  local s = base
  for i = 1, m do
    s = s:append("reasoning_attempt_" .. i, {type = "str", desc = "${reasoning attempt}"}, "input")
    s.inputs[#s.inputs].prefix = "Student Attempt #" .. i .. ":"
  end
  s = s:prepend("rationale", {type = "str", desc = "${corrected reasoning}"}, "output")
  s.outputs[1].prefix = "Accurate Reasoning: Thank you everyone. Let's now holistically"
  local config = {temperature = opts.temperature or 0.7}
  for k, v in pairs(opts.config or {}) do config[k] = v end
  local p = predict.new(s, {lm = opts.lm, adapter = opts.adapter, demos = opts.demos,
                            config = config})
  return setmetatable({M = m, last_key = last_key, predict = p}, MCC)
end

--- mcc(completions, inputs [, opts]) → the prediction of the comparison call.
function MCC:__call(completions, inputs, opts)
  check.type("MultiChainComparison", 1, completions, "table")
  check.type("MultiChainComparison", 2, inputs, "table")
  if #completions ~= self.M then
    check.misuse(string.format("tide.MultiChainComparison: %d attempts given, M is %d; pass M = %d " ..
      "when making it", #completions, self.M, #completions))
  end
  local args = {}
  for k, v in pairs(inputs) do args[k] = v end
  for i, c in ipairs(completions) do
    local reasoning = c.rationale or c.reasoning
    if reasoning == nil then
      check.misuse(string.format("tide.MultiChainComparison: attempt %d has no reasoning or rationale " ..
        "(use ChainOfThought predictions)", i))
    end
    args["reasoning_attempt_" .. i] = string.format(
      "«I'm trying to %s I'm not sure but my prediction is %s»",
      first_line(reasoning), first_line(c[self.last_key]))
  end
  return self.predict(args, opts)
end

function MCC:named_predictors()
  return {{"predict", self.predict}}
end

--- :save(path) / :load(path): its predictors' state in DSPy's JSON format.
MCC.save, MCC.load = state.save, state.load

function MCC:set_lm(lm)
  self.predict:set_lm(lm)
end

function MCC:__tostring()
  return "tide.MultiChainComparison(" .. tostring(self.predict.signature) .. ")"
end

return new
