--- The founding example's critics: technical, style and completeness critics of a
-- draft, and an LM aggregator over their nine values.
--
--   local critics = require "tide.critics"   -- the table tide.critics
--   local panel = critics.panel()                      -- function aggregation
--   local panel_lm = critics.panel{aggregate = "lm"}   -- the aggregator signature
--   local r = panel{content = draft, context = "B2B SaaS outreach", requirements = "..."}
local Signature = require "tide.signature"
local predict = require "tide.predict"
local fanout = require "tide.fanout"
local check = require "tide.check"

local M = {}

local function critic_signature(name, second_input, instructions)
  return Signature.new{
    inputs = {
      {name = "content", desc = "the draft to evaluate"},
      second_input,
    },
    outputs = {
      {name = name .. "_score", type = "int", desc = "0 to 100"},
      {name = name .. "_feedback", desc = "specific, actionable feedback"},
      {name = name .. "_approved", type = "bool", desc = "true if the draft passes on this criterion"},
    },
    instructions = instructions,
  }
end

M.technical = critic_signature("technical",
  {name = "context", desc = "what the draft is for"},
  "Evaluate the content from a TECHNICAL accuracy perspective. Check that facts, " ..
  "figures and claims are correct and can be supported, and that technical terms are " ..
  "used precisely. Approve only if nothing is wrong or misleading.")

M.style = critic_signature("style",
  {name = "context", desc = "what the draft is for"},
  "Evaluate the content's STYLE: clarity, tone, concision and fit for the audience " ..
  "the context describes. Approve only if it reads well and suits that audience.")

M.completeness = critic_signature("completeness",
  {name = "requirements", desc = "what the draft must contain"},
  "Evaluate the content's COMPLETENESS against the requirements. Name every required " ..
  "element that is missing or only partly covered. Approve only if all are covered.")

local function aggregator_inputs()
  local inputs = {}
  for _, name in ipairs{"technical", "style", "completeness"} do
    inputs[#inputs + 1] = {name = name .. "_score", type = "int"}
    inputs[#inputs + 1] = {name = name .. "_feedback"}
    inputs[#inputs + 1] = {name = name .. "_approved", type = "bool"}
  end
  return inputs
end

M.aggregator = Signature.new{
  inputs = aggregator_inputs(),
  outputs = {
    {name = "overall_score", type = "int", desc = "0 to 100"},
    {name = "combined_feedback", desc = "the critics' points, most important first"},
    {name = "approved", type = "bool", desc = "true only if all critics approve"},
  },
  instructions = "Combine three critics' evaluations of one draft into a single verdict. " ..
    "Weigh technical accuracy most, then completeness and style. List the technical " ..
    "issues first, then missing elements, then style. Approve only if every critic approved.",
}

M.weights = {technical = 0.4, style = 0.3, completeness = 0.3}
M.priority = {"technical", "completeness", "style"}
M.labels = {technical = "Technical", completeness = "Missing", style = "Style"}

--- critics.panel{lm, aggregate = "function" | "lm" | false, weights, on_failure,
-- limit} → the founding example's Panel.
function M.panel(opts)
  opts = check.type("panel", 1, opts, "table", true) or {}
  local popts = {lm = opts.lm}
  local aggregate = opts.aggregate
  if aggregate == "lm" then aggregate = predict.new(M.aggregator, popts) end
  return fanout.Panel{
    critics = {
      {"technical", predict.new(M.technical, popts)},
      {"style", predict.new(M.style, popts)},
      {"completeness", predict.new(M.completeness, popts)},
    },
    weights = opts.weights or M.weights,
    priority = M.priority,
    labels = M.labels,
    aggregate = aggregate,
    on_failure = opts.on_failure,
    limit = opts.limit,
  }
end

return M
