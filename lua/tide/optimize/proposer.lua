--- MIPROv2's grounded instruction proposer: new instructions for a predictor,
-- written by the prompt model from what it is told of the task — a summary of
-- the dataset, an outline of the program and of the predictor's role in it, a
-- few demos, and a tip — as DSPy's GroundedProposer does.  The proposer's own
-- signature names its output `proposed_instruction`, as DSPy's does.
--
--   local p = proposer.new{lm = prompt_model, trainset = train, program = program, rng = r}
--   local list = p:propose(predictor_index, demo_sets, n)   -- n instructions
--
-- The calls: two for the dataset summary (observations on up to 10 examples, then
-- their summary), one describing the program, then per proposal one describing
-- the predictor and one writing the instruction.  Proposals run at once.
local core = require "tide.core"
local predict = require "tide.predict"
local state = require "tide.state"

local M = {}

-- The tips, as DSPy's proposer draws them (one per proposal; "none" gives no tip).
M.TIPS = {
  {"none", ""},
  {"creative", "Don't be afraid to be creative when creating the new instruction!"},
  {"simple", "Keep the instruction clear and concise."},
  {"description", "Make sure your instruction is very informative and descriptive."},
  {"high_stakes", "The instruction should include a high stakes scenario in which the LM must solve the task!"},
  {"persona", 'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")'},
}

local OBSERVE = "Read the examples below, all drawn from one dataset, and note what most of them " ..
  "have in common: what they are about, their form, and how their outputs follow from their inputs."
local SUMMARIZE = "Condense these observations about a dataset into a summary of a few sentences " ..
  "that tells someone what the task is."
local DESCRIBE_PROGRAM = "Below is the outline of a program that solves a task with calls to a " ..
  "language model, and an example of it at work. Describe the task the program appears to solve " ..
  "and how it goes about it."
local DESCRIBE_MODULE = "Below is the outline of a program that solves a task with calls to a " ..
  "language model. Describe the part the named module plays in the program."
local PROPOSE = "Learn about a task we solve with calls to a language model from the information " ..
  "below, then write a new instruction that will prompt the language model to solve it better."

local Proposer = {}
Proposer.__index = Proposer

local function ask(self, sig, instructions, inputs, config)
  local p = predict.new(sig, {instructions = instructions, lm = self.lm, config = config})
  return p(inputs)
end

--- "Name: value" lines for the fields of an example, in the signature's order.
local function example_string(sig, ex)
  local lines = {}
  for _, list in ipairs{sig.inputs, sig.outputs} do
    for _, f in ipairs(list) do
      local v = ex[f.name]
      if v ~= nil then lines[#lines + 1] = state.infer_prefix(f.name) .. " " .. tostring(v) end
    end
  end
  return table.concat(lines, "\n")
end

local function field_string(ex)
  local keys = {}
  for k in pairs(ex) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local lines = {}
  for _, k in ipairs(keys) do lines[#lines + 1] = state.infer_prefix(k) .. " " .. tostring(ex[k]) end
  return table.concat(lines, "\n")
end

--- The text of a Lua function, read from its file (nil when it has none).
local function source_of(fn)
  local info = debug.getinfo(fn, "S")
  if not info or info.source:sub(1, 1) ~= "@" or info.linedefined <= 0 then return nil end
  local f = io.open(info.source:sub(2))
  if not f then return nil end
  local lines, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if n >= info.linedefined then lines[#lines + 1] = line end
    if n >= info.lastlinedefined then break end
  end
  f:close()
  return table.concat(lines, "\n")
end

local function predictor_line(name, p)
  return string.format("%s = tide.%s(\"%s\")", name, p.inner_name and "ChainOfThought" or "Predict",
    tostring(p.signature))
end

--- An outline of the program: its predictors, and its forward function's text.
function M.program_code(program)
  local lines = {}
  for _, np in ipairs(program:named_predictors()) do lines[#lines + 1] = predictor_line(np[1], np[2]) end
  local forward = not predict.is_predict(program) and type(program.forward) == "function" and
    source_of(program.forward)
  if forward then lines[#lines + 1] = forward end
  return table.concat(lines, "\n")
end

--- proposer.new{lm, trainset, program, rng, temperature = 1.0}: summarises the
-- dataset and describes the program (LM calls, made now).
function M.new(opts)
  local self = setmetatable({lm = opts.lm, rng = opts.rng, program = opts.program,
    temperature = opts.temperature or 1.0}, Proposer)
  self.code = M.program_code(opts.program)
  local shown = {}
  for i = 1, math.min(10, #opts.trainset) do shown[i] = field_string(opts.trainset[i]) end
  local examples = table.concat(shown, "\n\n")
  local observations = ask(self, "examples -> observations", OBSERVE, {examples = examples}).observations
  self.summary = ask(self, "observations -> summary", SUMMARIZE, {observations = observations}).summary
  self.description = ask(self, "program_code, program_example -> program_description", DESCRIBE_PROGRAM,
    {program_code = self.code, program_example = examples}).program_description
  return self
end

--- The augmented demos of a demo set (up to 3), as text.
local function task_demos(sig, demos)
  local out = {}
  for _, d in ipairs(demos or {}) do
    if d.augmented then out[#out + 1] = example_string(sig, d) end
    if #out >= 3 then break end
  end
  return table.concat(out, "\n\n")
end

--- One instruction for predictor (name, p), grounded on `demos`, with `tip`;
-- `k` tells its sample apart from the others' (rollout_id).
function Proposer:propose_one(name, p, demos, tip, k)
  local config = {temperature = self.temperature, rollout_id = k}
  local example = task_demos(p.signature, demos)
  local module = predictor_line(name, p)
  local role = ask(self, "program_code, program_example, program_description, module -> module_description",
    DESCRIBE_MODULE, {program_code = self.code, program_example = example,
      program_description = self.description, module = module}, config).module_description
  local inputs = {dataset_description = self.summary, program_code = self.code,
    program_description = self.description, module = module, module_description = role,
    task_demos = example, basic_instruction = p.signature.instructions}
  local sig = "dataset_description, program_code, program_description, module, module_description, " ..
    "task_demos, basic_instruction"
  if tip ~= "" then
    inputs.tip = tip
    sig = sig .. ", tip"
  end
  local text = ask(self, sig .. " -> proposed_instruction", PROPOSE, inputs, config).proposed_instruction
  return (tostring(text):gsub("^%s*[Pp]roposed [Ii]nstruction:%s*", ""))
end

--- n instructions for the predictor (name, p): its own first, then n - 1
-- proposals, the i-th grounded on demo_sets[i % #demo_sets + 1], made at once.
function Proposer:propose(name, p, demo_sets, n, limit)
  local jobs = {}
  for i = 1, n - 1 do
    local tip = self.rng:choice(M.TIPS)
    jobs[i] = {demos = demo_sets[(i % #demo_sets) + 1], tip = tip[2], tip_name = tip[1]}
  end
  local texts = core.map(jobs, function(job, i)
    return self:propose_one(name, p, job.demos, job.tip, i)
  end, {limit = limit})
  local out = {{instruction = p.signature.instructions, tip = "original"}}
  for i, text in ipairs(texts) do out[#out + 1] = {instruction = text, tip = jobs[i].tip_name} end
  return out
end

return M
