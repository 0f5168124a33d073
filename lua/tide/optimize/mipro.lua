--- tide.MIPROv2{metric, auto = "light" | "medium" | "heavy", num_candidates, num_trials,
-- prompt_model, task_model, seed = 9, minibatch = true, minibatch_size = 35,
-- minibatch_full_eval_steps = 5, init_temperature = 0.5, max_errors, max_metric_calls,
-- max_cost, ...}: DSPy's MIPROv2, instructions and demos optimized together.
--
--   local opt = tide.MIPROv2{metric = metric, auto = "light", seed = 7}
--   local compiled = opt:compile(program, {trainset = train, valset = val,
--                                          max_bootstrapped_demos = 4, max_labeled_demos = 4})
--
-- 1. Demo sets: num_candidates per predictor, made as the random search makes its
--    candidates (zero-shot, labeled, bootstrapped in order, shuffled bootstraps).
-- 2. Instructions: num_candidates per predictor, its own first, the others
--    written by the grounded proposer (tide/optimize/proposer.lua) on the prompt
--    model, each grounded on one demo set with a random tip, all at once.
-- 3. The search: the program as given is evaluated on the whole valset; then
--    num_trials trials each pick an instruction and a demo set per predictor with
--    a seeded TPE sampler (tide/optimize/tpe.lua: Optuna's categorical TPE, which
--    DSPy uses) and score it on a minibatch of the valset, every example at once;
--    every minibatch_full_eval_steps trials (and at the end) the combination with
--    the best mean minibatch score so far is evaluated on the whole valset.  The
--    best whole-valset score wins.  minibatch = false scores every trial on the
--    whole valset.
-- auto sets num_candidates (6, 12, 18), caps the valset (100, 300, 1000
-- examples) and sets num_trials as DSPy does: max(2·v·log2(n), 1.5·n) with v the
-- number of variables.  Without auto, num_candidates and num_trials are required.
-- With no valset, the last 80% of the trainset is the valset, as in DSPy.
local check = require "tide.check"
local settings = require "tide.settings"
local rng = require "tide.optimize.rng"
local tpe = require "tide.optimize.tpe"
local proposer = require "tide.optimize.proposer"
local random_search = require "tide.optimize.random_search"
local program_copy = require("tide.optimize.program").copy
local run_mod = require "tide.optimize.run"

local M = {}

local MIPRO = {}
MIPRO.__index = MIPRO
MIPRO.save_log = run_mod.save_log
MIPRO.__name = "tide.MIPROv2"

local NAME = "MIPROv2"
-- the valset an auto setting keeps at most (its candidates: run_mod.AUTO_CANDIDATES)
local AUTO_VALSET = {light = 100, medium = 300, heavy = 1000}
local POSITIVE = {integer = true, min = 1}
local COUNT = {integer = true, min = 0}

function M.new(opts)
  opts = check.type(NAME, 1, opts, "table")
  run_mod.check_common(NAME, opts, true)
  run_mod.check_auto(NAME, opts.auto)
  check.number(NAME, "opts.num_candidates", opts.num_candidates, {integer = true, min = 2}, true)
  check.number(NAME, "opts.num_trials", opts.num_trials, POSITIVE, true)
  if opts.auto and (opts.num_candidates or opts.num_trials) then
    check.fail(NAME, "opts.auto", "auto sets num_candidates and num_trials: give auto, or both of them")
  end
  if not opts.auto and not (opts.num_candidates and opts.num_trials) then
    check.fail(NAME, "opts.auto", "give auto = 'light' | 'medium' | 'heavy', or num_candidates and num_trials")
  end
  check.number(NAME, "opts.minibatch_size", opts.minibatch_size, POSITIVE, true)
  check.number(NAME, "opts.minibatch_full_eval_steps", opts.minibatch_full_eval_steps, POSITIVE, true)
  check.number(NAME, "opts.init_temperature", opts.init_temperature, {min = 0, max = 2}, true)
  check.number(NAME, "opts.metric_threshold", opts.metric_threshold, {}, true)
  if opts.minibatch ~= nil and type(opts.minibatch) ~= "boolean" then
    check.fail(NAME, "opts.minibatch", "a boolean expected, got " .. type(opts.minibatch))
  end
  return setmetatable({opts = opts,
    prompt_model = run_mod.check_lm(NAME, "opts.prompt_model", opts.prompt_model),
    task_model = run_mod.check_lm(NAME, "opts.task_model", opts.task_model),
    seed = opts.seed or 9, minibatch = opts.minibatch ~= false,
    minibatch_size = opts.minibatch_size or 35,
    full_eval_steps = opts.minibatch_full_eval_steps or 5,
    temperature = opts.init_temperature or 0.5}, MIPRO)
end

--- The compile's datasets: checked, the valset split off the trainset when not given.
local function datasets(self, opts)
  local trainset = run_mod.examples("compile", "trainset", opts.trainset, true)
  local valset = run_mod.examples("compile", "valset", opts.valset, false)
  if valset == nil then
    if #trainset < 2 then
      check.fail("compile", "opts.trainset", "without a valset the trainset needs at least 2 examples " ..
        "(the last 80% become the valset)")
    end
    local size = math.min(1000, math.max(1, math.floor(#trainset * 0.8)))
    local cut = #trainset - size
    valset = table.move(trainset, cut + 1, #trainset, 1, {})
    trainset = table.move(trainset, 1, cut, 1, {})
  end
  if self.minibatch and self.minibatch_size > #valset and self.opts.minibatch_size then
    check.fail("compile", "opts.valset", string.format("the valset (%d examples) is smaller than a " ..
      "minibatch (minibatch_size = %d): give a smaller minibatch_size, or minibatch = false",
      #valset, self.minibatch_size))
  end
  return trainset, valset
end

--- A copy of program with, per predictor, the chosen instruction and demo set.
local function build(program, names, instructions, demo_sets, x, zeroshot)
  local p = program_copy(program)
  for i, np in ipairs(p:named_predictors()) do
    local name = names[i]
    local pred = np[2]
    local per = zeroshot and 1 or 2
    pred.signature = pred.signature:with_instructions(instructions[name][x[(i - 1) * per + 1]].instruction)
    if not zeroshot then
      local demos = demo_sets[name][x[(i - 1) * per + 2]]
      pred.demos = table.move(demos, 1, #demos, 1, {})
    end
  end
  return p
end

--- opt:compile(program, {trainset, valset?, max_bootstrapped_demos = 4,
-- max_labeled_demos = 4}) → the best program found.
function MIPRO:compile(program, opts)
  check.type("compile", 2, opts, "table")
  check.number("compile", "opts.max_bootstrapped_demos", opts.max_bootstrapped_demos, COUNT, true)
  check.number("compile", "opts.max_labeled_demos", opts.max_labeled_demos, COUNT, true)
  local trainset, valset = datasets(self, opts)
  local student = program
  if self.task_model then
    student = program_copy(program)
    for _, np in ipairs(student:named_predictors()) do np[2].lm = self.task_model end
  end
  run_mod.check_program("compile", student, {trainset = trainset, valset = valset})
  local prompt_model = self.prompt_model or self.task_model or student:named_predictors()[1][2].lm or
    settings.get("lm")
  local r = rng.new(self.seed)
  local auto = self.opts.auto
  if auto and #valset > AUTO_VALSET[auto] then valset = r:sample(valset, AUTO_VALSET[auto]) end
  local max_boot, max_labeled = opts.max_bootstrapped_demos or 4, opts.max_labeled_demos or 4
  local zeroshot = max_boot == 0 and max_labeled == 0
  local nps = student:named_predictors()
  local names = {}
  for i, np in ipairs(nps) do names[i] = np[1] end
  local n = self.opts.num_candidates or run_mod.AUTO_CANDIDATES[auto]
  local num_trials = self.opts.num_trials or run_mod.trials_for(n, #nps * (zeroshot and 1 or 2))
  local minibatch_size = math.min(self.minibatch_size, #valset)

  local run = run_mod.new(NAME, self.opts)
  local log = run.log
  log.num_candidates, log.num_trials = n, num_trials
  local best, best_score, best_entry
  local result = run:guard(function()
    -- 1. demo sets, per predictor
    local demo_sets = {}
    for _, name in ipairs(names) do demo_sets[name] = {} end
    if not zeroshot then
      local maker = {seed = self.seed, min_num_samples = 1, params = {metric_threshold = self.opts.metric_threshold,
        max_bootstrapped_demos = max_boot, max_labeled_demos = max_labeled, max_rounds = 1}}
      for k = -3, n - 4 do
        local cand = random_search.candidate(maker, run, student, trainset, k)
        if cand == nil then break end
        for i, np in ipairs(cand:named_predictors()) do table.insert(demo_sets[names[i]], np[2].demos) end
      end
    end
    -- 2. instructions, per predictor (the proposer's LM usage is the compile's)
    local instructions = {}
    settings.with({usage_sink = run.usage}, function()
      local prop = proposer.new{lm = prompt_model, trainset = trainset, program = student, rng = r,
        temperature = self.temperature}
      for i, np in ipairs(nps) do
        local sets = #demo_sets[names[i]] > 0 and demo_sets[names[i]] or {{}}
        instructions[names[i]] = prop:propose(names[i], np[2], sets, n, run.concurrency)
      end
    end)
    log.instructions = instructions
    log.demo_sets = {}
    for _, name in ipairs(names) do log.demo_sets[name] = #demo_sets[name] end

    -- 3. the search
    local function consider(p, score, entry)
      if best_score == nil or score > best_score then best, best_score, best_entry = p, score, entry end
    end
    if not run:affords(#valset) then return program_copy(student) end
    local base = run:evaluate(student, valset, "baseline", "valset")
    consider(program_copy(student), base.mean, run:record{step = "baseline", score = base.mean})
    local sizes = {}
    for _, name in ipairs(names) do
      sizes[#sizes + 1] = #instructions[name]
      if not zeroshot then sizes[#sizes + 1] = #demo_sets[name] end
    end
    local sampler = tpe.new(r, sizes, math.max(2, num_trials // 4))
    local by_key, full_done = {}, {}
    local function full_eval_of_best()
      local key, mean
      for k, v in pairs(by_key) do
        local m = v.sum / v.count
        if not full_done[k] and (mean == nil or m > mean or (m == mean and v.first < by_key[key].first)) then
          key, mean = k, m
        end
      end
      if key == nil or not run:affords(#valset) then return end
      full_done[key] = true
      local p = build(student, names, instructions, demo_sets, by_key[key].x, zeroshot)
      local res = run:evaluate(p, valset, "full evaluation", "valset")
      consider(p, res.mean, run:record{step = "full", choice = by_key[key].x, score = res.mean})
    end
    for t = 1, num_trials do
      local x = sampler:suggest()
      local batch = self.minibatch and r:sample(valset, minibatch_size) or valset
      if not run:affords(#batch) then
        -- out of budget: the best minibatch combination still gets its full evaluation
        if self.minibatch and (t - 1) % self.full_eval_steps ~= 0 then full_eval_of_best() end
        break
      end
      local p = build(student, names, instructions, demo_sets, x, zeroshot)
      local res = run:evaluate(p, batch, string.format("trial %d/%d", t, num_trials),
        self.minibatch and "minibatch" or "valset")
      sampler:tell(x, res.mean)
      local entry = run:record{step = self.minibatch and "minibatch" or "full", trial = t, choice = x,
        score = res.mean}
      if self.minibatch then
        local key = table.concat(x, ",")
        local v = by_key[key] or {sum = 0, count = 0, x = x, first = t}
        v.sum, v.count = v.sum + res.mean, v.count + 1
        by_key[key] = v
        if t % self.full_eval_steps == 0 or t == num_trials then full_eval_of_best() end
      else
        consider(p, res.mean, entry)
      end
    end
    return best
  end, function() return best end)
  self.log = run:finish(best_entry and {index = best_entry.index, score = best_score} or nil)
  return result
end

return M
