--- tide.ProgramOfThought(signature [, {max_iters = 3, budget = 1e6}]): the model writes
-- Lua code that computes the answer, tide runs it in a sandbox, and the model answers
-- from the code's output — DSPy's ProgramOfThought, with Lua in place of Python.
--
--   local pot = tide.ProgramOfThought("question -> answer: float")
--   print(pot{question = "What is 17 * 23 + 4?"}.answer)
--
-- Three ChainOfThought steps as DSPy's: code_generate (the inputs → generated_code),
-- code_regenerate (the inputs, previous_code, error → generated_code) while the code
-- fails, up to max_iters tries, then generate_answer (the inputs,
-- final_generated_code, code_output → the signature's outputs).  The code runs in
-- tide.modules.sandbox: string, table, math and utf8 only, an instruction budget,
-- its answer handed to FINAL(...).  Code that still fails after max_iters tries is a
-- `code` error holding the last code and error.
local core = require "tide.core"
local check = require "tide.check"
local state = require "tide.state"
local Signature = require "tide.signature"
local predict = require "tide.predict"
local sandbox = require "tide.modules.sandbox"

local PoT = {}
PoT.__index = PoT
PoT.__name = "tide.ProgramOfThought"

local CODE = {type = "str", desc = "Lua code that answers the question"}

local function ticks(names)
  local out = {}
  for i, n in ipairs(names) do out[i] = "`" .. n .. "`" end
  return table.concat(out, ", ")
end

--- The signature of one step, with its instructions (DSPy's, for Lua).
local function step_signature(sig, mode)
  local inputs, outputs, prefixes = {}, {}, {}
  for i, f in ipairs(sig.inputs) do inputs[i] = f end
  if mode == "generate" then
    outputs[1] = {name = "generated_code", type = CODE.type, desc = CODE.desc}
    prefixes.generated_code = "Code:"
  elseif mode == "regenerate" then
    inputs[#inputs + 1] = {name = "previous_code", type = "str",
                           desc = "previously-generated Lua code that errored"}
    inputs[#inputs + 1] = {name = "error", type = "str",
                           desc = "error message from previously-generated Lua code"}
    outputs[1] = {name = "generated_code", type = CODE.type, desc = CODE.desc}
    prefixes.previous_code, prefixes.error, prefixes.generated_code = "Previous Code:", "Error:", "Code:"
  else
    inputs[#inputs + 1] = {name = "final_generated_code", type = CODE.type, desc = CODE.desc}
    inputs[#inputs + 1] = {name = "code_output", type = "str",
                           desc = "output of previously-generated Lua code"}
    for i, f in ipairs(sig.outputs) do outputs[i] = f end
    prefixes.final_generated_code, prefixes.code_output = "Code:", "Code Output:"
  end
  local step = Signature.new{inputs = inputs, outputs = outputs}
  local ins, outs = ticks(step:input_names()), ticks(step:output_names())
  local lines
  if mode == "generate" then
    lines = {
      string.format("You will be given %s and you will respond with %s.", ins, outs),
      string.format("Generating executable Lua code that programmatically computes the correct %s.", outs),
      "After you're done with the computation and think you have the answer, make sure to " ..
        "provide your answer by calling the preloaded function `FINAL()`.",
      string.format("You should structure your answer in a table, like {field_a = answer_a, ...}, " ..
        "evaluates to the correct value mapping for %s.", ticks(sig:output_names())),
      "The code runs in a sandbox with Lua 5.4's string, table, math and utf8 libraries only.",
    }
  elseif mode == "regenerate" then
    lines = {
      string.format("You are given %s due to an error in previous code.", ins),
      "Your task is to correct the error and provide the new `generated_code`.",
    }
  else
    lines = {string.format("Given the final code %s, provide the final %s.", ins, outs)}
  end
  step = step:with_instructions(table.concat(lines, "\n"))
  for _, list in ipairs({step.inputs, step.outputs}) do
    for i, f in ipairs(list) do
      if prefixes[f.name] then
        local own = {}
        for k, v in pairs(f) do own[k] = v end   -- fields are shared: give this one its own
        own.prefix = prefixes[f.name]
        list[i] = own
      end
    end
  end
  return step
end

--- The code in a reply: cut at "---" or two blank lines, out of a ```lua (or any)
-- fence; a last line that assigns a variable returns it.  → code, or nil and why.
local function parse_code(text)
  local code = tostring(text or ""):gsub("%-%-%-.*$", ""):gsub("\n\n\n.*$", "")
  local fenced = code:match("```[%w]*[ \n](.-)[ \n]```")
  local block = (fenced or code):gsub("\\n", "\n")
  block = block:match("^%s*(.-)%s*$")
  if block == "" then return nil, "Error: Empty code after parsing." end
  local last = block:match("([^\n]*)$")
  local name = last:match("^%s*local%s+([%a_][%w_]*)%s*=") or last:match("^%s*([%a_][%w_]*)%s*=[^=]")
  if name and not block:find("FINAL%s*%(") then block = block .. "\nreturn " .. name end
  return block
end

local function new(sig, opts)
  opts = check.type("ProgramOfThought", 2, opts, "table", true) or {}
  check.number("ProgramOfThought", "max_iters", opts.max_iters, {integer = true, min = 1}, true)
  check.number("ProgramOfThought", "budget", opts.budget, {integer = true, min = 1}, true)
  local base = type(sig) == "string" and Signature.new(sig) or sig
  if not Signature.is_signature(base) then
    check.fail("ProgramOfThought", 1, "signature or string expected, got " .. type(sig))
  end
  local popts = {lm = opts.lm, adapter = opts.adapter}
  return setmetatable({
    signature = base,
    max_iters = math.tointeger(opts.max_iters or 3),
    budget = opts.budget and math.tointeger(opts.budget),
    code_generate = predict.chain_of_thought(step_signature(base, "generate"), popts),
    code_regenerate = predict.chain_of_thought(step_signature(base, "regenerate"), popts),
    generate_answer = predict.chain_of_thought(step_signature(base, "answer"), popts),
  }, PoT)
end

function PoT:__call(inputs, opts)
  check.type("ProgramOfThought", 1, inputs, "table")
  local args = {}
  for _, f in ipairs(self.signature.inputs) do args[f.name] = inputs[f.name] end
  local code, err = parse_code(self.code_generate(args, opts).generated_code)
  local output
  if code then output, err = sandbox.run(code, {budget = self.budget}) end
  local tries = 1
  while err ~= nil do
    if tries == self.max_iters then
      error(core.error{kind = "code", message = string.format(
        "ProgramOfThought: the generated code still failed after %d tries: %s", tries, err),
        code = code, code_error = err}, 0)
    end
    args.previous_code, args.error = code or "", err
    code, err = parse_code(self.code_regenerate(args, opts).generated_code)
    if code then output, err = sandbox.run(code, {budget = self.budget}) end
    tries = tries + 1
  end
  args.previous_code, args.error = nil, nil
  args.final_generated_code, args.code_output = code, output
  return self.generate_answer(args, opts)
end

function PoT:named_predictors()
  return {{"code_generate.predict", self.code_generate}, {"code_regenerate.predict", self.code_regenerate},
          {"generate_answer.predict", self.generate_answer}}
end

--- :save(path) / :load(path): its predictors' state in DSPy's JSON format.
PoT.save, PoT.load = state.save, state.load

function PoT:set_lm(lm)
  for _, np in ipairs(self:named_predictors()) do np[2]:set_lm(lm) end
end

function PoT:__tostring()
  return "tide.ProgramOfThought(" .. tostring(self.signature) .. ")"
end

PoT.parse_code = parse_code   -- for the spec of its cases
return new
