--- `tide optimize`: compile a program from the command line and save it in DSPy's
-- JSON state format.
--
--   tide optimize PROGRAM.lua --optimizer bootstrap --train train.jsonl --val val.jsonl \
--     --out compiled.json [--model openai/gpt-4o-mini] [--budget 200] [--seed 7]
--   tide eval PROGRAM.lua --load compiled.json --data dev.jsonl --out results.jsonl
--
-- PROGRAM.lua is the one `tide eval` takes (it returns the program and the metric,
-- or {program =, metric =, inputs =}).  The LM comes as for tide eval: --model,
-- TIDE_MODEL, the mock server under scripts/with_mockllm, or PROGRAM.lua's own.
-- main returns the exit status: 0 done, 1 failed, 2 bad usage, 130 cancelled
-- (Ctrl-C: the best program so far is written to --out; the same command again
-- resumes through the LM cache).
local tide = require "tide"
local command_line = require "tide.eval.command_line"
local run_mod = require "tide.optimize.run"

local M = {}

--- The optimizers by their --optimizer name: the constructor and how the budget
-- (a number of metric calls) and the datasets reach it.
local OPTIMIZERS = {
  labeled = {make = function(o) return tide.LabeledFewShot{seed = o.seed} end, metric = false},
  bootstrap = {make = function(o) return tide.BootstrapFewShot(o) end},
  random = {make = function(o) return tide.BootstrapFewShotWithRandomSearch(o) end},
  gepa = {make = function(o)
    if not o.max_metric_calls then o.auto = "light" end
    return tide.GEPA(o)
  end},
  mipro = {make = function(o)
    o.auto = "light"
    return tide.MIPROv2(o)
  end},
}

local function names()
  local list = {}
  for name in pairs(OPTIMIZERS) do list[#list + 1] = name end
  table.sort(list)
  return table.concat(list, "|")
end

M.usage = [[
usage: tide optimize PROGRAM.lua --optimizer NAME --train FILE --out FILE.json [options]

PROGRAM.lua returns the program and the metric, as for tide eval.

Required:
  --optimizer NAME    ]] .. names() .. [[

  --train FILE        the training examples (.jsonl or .csv)
  --out FILE.json     the compiled program, in DSPy's JSON state format
Options:
  --val FILE          the validation examples (default: what the optimizer does
                      without: the trainset, or MIPROv2's split of it)
  --inputs A,B        the datasets' input fields (default: the program's `inputs`,
                      else a lone predictor's signature's inputs)
  --model M           the LM, e.g. openai/gpt-4o-mini (default: $TIDE_MODEL)
  --budget N          at most N metric calls
  --max-cost USD      stop the search once the LM calls cost this much
  --seed N            the optimizer's seed (default: its own): the same seed, the
                      same program
  --log FILE.json     also write the optimizer's log (candidates, scores, chosen)
  --progress MODE     bar, lines or none (default: bar on a terminal, else lines)
  -h, --help          this text

Exit status: 0 done, 1 failed, 2 a usage error, 130 cancelled (Ctrl-C; the best
program so far is written to --out, and the same command resumes from the cache).
]]

local say, usage_error, fail = command_line.messages("optimize")

local VALUED = {optimizer = true, train = true, val = true, out = true, inputs = true, model = true,
  budget = true, ["max-cost"] = true, seed = true, log = true, progress = true}
local FLAGS = {help = true}

--- The input fields: --inputs, else PROGRAM.lua's `inputs`, else a lone
-- predictor's signature's inputs; nil when none of these says.
local function input_names(o, spec)
  if o.inputs then return command_line.field_list(o.inputs) end
  if spec.inputs then return spec.inputs end
  local sig = type(spec.program) == "table" and rawget(spec.program, "signature")
  if type(sig) == "table" and sig.inputs then
    local list = {}
    for i, f in ipairs(sig.inputs) do list[i] = f.name end
    return list
  end
  return nil
end

local function load_examples(path, inputs)
  return command_line.load_examples(path, {inputs = inputs})
end

local message_of = run_mod.message_of

local function write_log(path, log)
  return pcall(run_mod.save_log, {log = log}, path)
end

local function options(o)
  if not o.optimizer then return nil, "--optimizer NAME is required (" .. names() .. ")" end
  if not OPTIMIZERS[o.optimizer] then
    return nil, string.format("--optimizer must be one of %s, got '%s'", names(), o.optimizer)
  end
  if not o.train then return nil, "--train FILE is required" end
  if not o.out then return nil, "--out FILE.json is required" end
  if not o.out:match("%.json$") then return nil, "--out must end in .json, got '" .. o.out .. "'" end
  local budget, bad_budget = command_line.integer_option(o, "budget", 1)
  if bad_budget then return nil, bad_budget end
  local seed, bad_seed = command_line.integer_option(o, "seed")
  if bad_seed then return nil, bad_seed end
  local max_cost = o["max-cost"] and tonumber(o["max-cost"])
  if o["max-cost"] and not (max_cost and max_cost >= 0) then return nil, "--max-cost must be dollars >= 0" end
  local mode = o.progress
  local bad_progress = command_line.progress_problem(mode)
  if bad_progress then return nil, bad_progress end
  return {max_metric_calls = budget, seed = seed, max_cost = max_cost,
    display_progress = mode == nil or mode}
end

local function run(o)
  local program_path = o.args[1]
  if not program_path then return usage_error("which PROGRAM.lua? (tide optimize PROGRAM.lua --optimizer NAME ...)") end
  if #o.args > 1 then return usage_error("unexpected argument '%s'", o.args[2]) end
  local opt_opts, bad = options(o)
  if not opt_opts then return usage_error("%s", bad) end
  local spec, status, why = command_line.load_program("optimize", program_path, o.model)
  if not spec then return fail(status, why) end
  local inputs = input_names(o, spec)
  if not inputs then
    return usage_error("which fields are inputs? pass --inputs A,B or return {inputs = {...}} from %s",
      program_path)
  end
  local train, e1 = load_examples(o.train, inputs)
  if not train then say("%s", e1) return 1 end
  local val
  if o.val then
    local e2
    val, e2 = load_examples(o.val, inputs)
    if not val then say("%s", e2) return 1 end
  end
  local entry = OPTIMIZERS[o.optimizer]
  if entry.metric ~= false then opt_opts.metric = spec.metric end
  local ok, res = pcall(function()
    local opt = entry.make(opt_opts)
    local compiled = opt:compile(spec.program, {trainset = train, valset = val})
    return {program = compiled, log = opt.log}
  end)
  if not ok then
    local partial = type(res) == "table" and res.result
    if tide.is_error(res, "cancelled") then
      if partial and partial.program then
        partial.program:save(o.out)
        say("cancelled; the best program so far is in %s; the same command resumes from the cache", o.out)
      else
        say("cancelled before any candidate was scored; the same command resumes from the cache")
      end
      if partial and partial.log and o.log then write_log(o.log, partial.log) end
      return 130
    end
    say("%s", message_of(res))
    return 1
  end
  res.program:save(o.out)
  if o.log and res.log then
    local wrote, werr = write_log(o.log, res.log)
    if not wrote then say("--log: %s", message_of(werr)) return 1 end
  end
  local chosen = res.log and res.log.chosen
  io.stdout:write(string.format("tide optimize: %s → %s%s\n", o.optimizer, o.out,
    chosen and chosen.score and string.format(" (best score %.4g)", chosen.score) or ""))
  return 0
end

--- tide optimize args... → the exit status.
function M.main(...)
  local o, exit_status = command_line.options("optimize", M.usage, VALUED, FLAGS, ...)
  if not o then return exit_status end
  return run(o)
end

return M
