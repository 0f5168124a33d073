--- tide.BootstrapFewShot{metric, metric_threshold, teacher, max_bootstrapped_demos = 4,
-- max_labeled_demos = 16, max_rounds = 1, max_errors = 10, ...}: DSPy's bootstrap.
--
--   local opt = tide.BootstrapFewShot{metric = tide.metrics.exact_match}
--   local compiled = opt:compile(program, {trainset = train})
--
-- The teacher (the program itself unless given; one without demos first gets
-- max_labeled_demos of the trainset, as DSPy's LabeledFewShot would give it) runs
-- on every training example, all at once (tide.map, at most `concurrency`; the
-- LM's gate bounds the requests), leaving the example out of its own demos.  The
-- results are then taken in trainset order: where the metric passes (score >=
-- metric_threshold when given, else above 0), each predictor's traced call becomes
-- a demo — its inputs and outputs, intermediate fields such as `reasoning`
-- included, marked `augmented` — until max_bootstrapped_demos examples passed.
-- A round past the first asks the examples that did not pass again, at
-- temperature 1 with another rollout_id.  Each predictor then gets its augmented
-- demos followed by a seeded sample of the examples not bootstrapped, up to
-- max_labeled_demos in all.  compile returns a new program; opt.log says what ran.
local core = require "tide.core"
local check = require "tide.check"
local rng = require "tide.optimize.rng"
local labeled = require "tide.optimize.labeled"
local program_copy = require("tide.optimize.program").copy
local run_mod = require "tide.optimize.run"

local M = {}

local Bootstrap = {}
Bootstrap.__index = Bootstrap
Bootstrap.save_log = run_mod.save_log
Bootstrap.__name = "tide.BootstrapFewShot"

local COUNT = {integer = true, min = 0}
local POSITIVE = {integer = true, min = 1}

--- The bootstrap's own options, checked for optimizer `fname`.
function M.check_params(fname, opts)
  check.number(fname, "opts.metric_threshold", opts.metric_threshold, {}, true)
  check.number(fname, "opts.max_bootstrapped_demos", opts.max_bootstrapped_demos, COUNT, true)
  check.number(fname, "opts.max_labeled_demos", opts.max_labeled_demos, COUNT, true)
  check.number(fname, "opts.max_rounds", opts.max_rounds, POSITIVE, true)
  local t = opts.teacher
  if t ~= nil and (type(t) ~= "table" or type(t.named_predictors) ~= "function") then
    check.fail(fname, "opts.teacher", "a program expected, got " .. type(t))
  end
  return {
    metric_threshold = opts.metric_threshold,
    max_bootstrapped_demos = opts.max_bootstrapped_demos or 4,
    max_labeled_demos = opts.max_labeled_demos or 16,
    max_rounds = opts.max_rounds or 1,
    teacher = t,
  }
end

function M.new(opts)
  opts = check.type("BootstrapFewShot", 1, opts, "table")
  run_mod.check_common("BootstrapFewShot", opts, true)
  local self = setmetatable({opts = opts, params = M.check_params("BootstrapFewShot", opts)}, Bootstrap)
  return self
end

--- zero_shot(program) → a copy of program whose predictors have no demos.
local function zero_shot(program)
  local p = program_copy(program)
  for _, np in ipairs(p:named_predictors()) do np[2].demos = {} end
  return p
end
M.zero_shot = zero_shot

local function has_demos(program)
  for _, np in ipairs(program:named_predictors()) do
    if #np[2].demos > 0 then return true end
  end
  return false
end

local function names_of(program)
  local names, list = {}, {}
  for i, np in ipairs(program:named_predictors()) do
    names[np[2]] = np[1]
    list[i] = np[1]
  end
  return names, table.concat(list, ", ")
end

--- The teacher as it runs on example `ex`: without ex among its demos, and past
-- the first round at temperature 1 with the round as rollout_id (another sample).
local function teacher_for(teacher, ex, round)
  local t = program_copy(teacher)
  for _, np in ipairs(t:named_predictors()) do
    local kept = {}
    for _, d in ipairs(np[2].demos) do
      if d ~= ex then kept[#kept + 1] = d end
    end
    np[2].demos = kept
    if round > 0 then
      np[2].config.temperature = 1.0
      np[2].config.rollout_id = round
    end
  end
  return t
end

local function passes(params, row)
  if row.score == nil then return false end
  if params.metric_threshold then return row.score >= params.metric_threshold end
  return row.score > 0
end

--- bootstrap(run, params, student, trainset) → a new program with bootstrapped
-- demos; shared with the random search and MIPROv2.  trainset: checked Examples.
function M.bootstrap(run, params, student, trainset, seed)
  local compiled = zero_shot(student)
  local teacher = params.teacher and program_copy(params.teacher) or zero_shot(student)
  local _, teacher_names = names_of(teacher)
  local _, student_names = names_of(compiled)
  if teacher_names ~= student_names then
    check.fail("compile", "opts.teacher", string.format(
      "the teacher's predictors (%s) are not the program's (%s)", teacher_names, student_names))
  end
  if not has_demos(teacher) and params.max_labeled_demos > 0 then
    teacher = labeled.new{k = params.max_labeled_demos, seed = 0}:compile(teacher, {trainset = trainset})
  end
  local by_name, bootstrapped, count = {}, {}, 0
  local want = params.max_bootstrapped_demos
  local pending = {}
  for i = 1, #trainset do pending[i] = i end
  for round = 0, params.max_rounds - 1 do
    if count >= want or #pending == 0 then break end
    local n = #pending
    while n > 0 and not run:affords(n) do n = n - 1 end
    if n == 0 then break end
    local wave = table.move(pending, 1, n, 1, {})
    local bar = run:bar(#wave, round == 0 and "bootstrap" or ("bootstrap round " .. (round + 1)))
    local done, passed = 0, 0
    local rows = core.map(wave, function(i)
      local t = teacher_for(teacher, trainset[i], round)
      local row = run:example(t, trainset[i], i, "trainset")
      row.names = names_of(t)
      done = done + 1
      if passes(params, row) then passed = passed + 1 end
      bar:update{done = done, errors = run.errors, mean = passed / done}
      return row
    end, {limit = run.concurrency})
    bar:finish{done = done, errors = run.errors, mean = done > 0 and passed / done or nil}
    for k, i in ipairs(wave) do   -- trainset order, whatever order they finished in
      if count >= want then break end
      local row = rows[k]
      local ok = passes(params, row)
      run.log.bootstrap = run.log.bootstrap or {}
      table.insert(run.log.bootstrap, {round = round + 1, example = i, score = row.score, passed = ok})
      if ok then
        bootstrapped[i] = true
        count = count + 1
        for _, step in ipairs(row.trace) do
          local name = row.names[step[1]]
          if name then
            by_name[name] = by_name[name] or {}
            table.insert(by_name[name], run_mod.demo_of(step[2], step[3]))
          end
        end
      end
    end
    local left = {}
    for _, i in ipairs(pending) do
      if not bootstrapped[i] then left[#left + 1] = i end
    end
    pending = left
  end
  local raw = {}
  for i, ex in ipairs(trainset) do
    if not bootstrapped[i] then raw[#raw + 1] = ex end
  end
  local r = rng.new(seed or 0)
  for _, np in ipairs(compiled:named_predictors()) do
    local demos = table.move(by_name[np[1]] or {}, 1, want, 1, {})   -- the augmented first
    local labeled_n = math.max(0, math.min(params.max_labeled_demos - #demos, #raw))
    for _, ex in ipairs(r:sample(raw, labeled_n)) do demos[#demos + 1] = ex end
    np[2].demos = demos
  end
  return compiled, count
end

--- opt:compile(program, {trainset = examples, teacher = program?}) → a new program.
function Bootstrap:compile(program, opts)
  check.type("compile", 2, opts, "table")
  local trainset = run_mod.examples("compile", "trainset", opts.trainset, true)
  run_mod.check_program("compile", program, {trainset = trainset})
  local params = self.params
  if opts.teacher ~= nil then
    params = M.check_params("compile", {teacher = opts.teacher, metric_threshold = params.metric_threshold,
      max_bootstrapped_demos = params.max_bootstrapped_demos,
      max_labeled_demos = params.max_labeled_demos, max_rounds = params.max_rounds})
  end
  local run = run_mod.new("BootstrapFewShot", self.opts)
  -- a cancelled bootstrap has no program yet: its error's result holds only the log
  local compiled = run:guard(function()
    return (M.bootstrap(run, params, program, trainset, self.opts.seed))
  end, function() return nil end)
  self.log = run:finish(nil)
  return compiled
end

return M
