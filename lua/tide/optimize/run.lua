--- What every optimizer's compile shares: its metric, its budget, its error count,
-- its progress, its log, and the parallel run of a program over examples.
--
--   local run = run_mod.new("BootstrapFewShot", opts)    -- opts: the optimizer's
--   local r = run:evaluate(program, valset, "candidate 2/8")  -- {mean, rows}
--   local row = run:example(program, example, index, "trainset")
--
-- A row is {pred, score, feedback, trace, error}.  The program runs under a trace
-- (tide.predict records each predictor's {predictor, inputs, prediction}), and the
-- metric is called as metric(example, prediction, trace).  A metric that raises,
-- returns nil or a non-number, or a program that fails, is an error naming the
-- metric (or program) and the example's index; errors count against max_errors,
-- past which the compile stops with that error.  Every metric call counts against
-- max_metric_calls and the LM cost of the runs against max_cost: an optimizer asks
-- run:affords(n) before spending n more calls and stops its search when it cannot.
local cjson = require "cjson"
local core = require "tide.core"
local check = require "tide.check"
local settings = require "tide.settings"
local as_examples = require("tide.eval.examples").as_examples
local progress = require "tide.eval.progress"
local display_progress = require "tide.eval.display_progress"
local score_of = require("tide.metrics").score_of

local M = {}

local Run = {}
Run.__index = Run

local POSITIVE_INT = {integer = true, min = 1}

--- Checks the options every optimizer shares (metric, budget, progress).
function M.check_common(fname, opts, metric_required)
  if metric_required or opts.metric ~= nil then
    if not check.callable(opts.metric) then
      check.fail(fname, "opts.metric", "a function(example, prediction, trace) expected, got " ..
        type(opts.metric))
    end
  end
  check.number(fname, "opts.max_errors", opts.max_errors, POSITIVE_INT, true)
  check.number(fname, "opts.max_metric_calls", opts.max_metric_calls, POSITIVE_INT, true)
  check.number(fname, "opts.max_cost", opts.max_cost, {min = 0}, true)
  check.number(fname, "opts.concurrency", opts.concurrency, POSITIVE_INT, true)
  check.number(fname, "opts.seed", opts.seed, {integer = true}, true)
  local bad_display = display_progress.problem(opts.display_progress)
  if bad_display then check.fail(fname, "opts.display_progress", bad_display) end
end

--- v when it is nil or an LM (an optimizer's prompt_model, reflection_lm, ...); else
-- raises, naming the option.
function M.check_lm(fname, arg, v)
  if v ~= nil and (type(v) ~= "table" or type(v.call) ~= "function") then
    check.fail(fname, arg, "an LM (tide.LM) expected, got " .. type(v))
  end
  return v
end

--- A name for the metric in errors: its own (opts.metric_name), else where it was defined.
local function metric_name(opts)
  if type(opts.metric_name) == "string" then return opts.metric_name end
  local fn = opts.metric
  if type(fn) == "function" then
    local info = debug.getinfo(fn, "S")
    if info and info.short_src and info.linedefined and info.linedefined > 0 then
      return string.format("(%s:%d)", info.short_src, info.linedefined)
    end
  end
  return "(" .. tostring(fn) .. ")"
end

function M.new(name, opts)
  local self = setmetatable({
    name = name,
    metric = opts.metric,
    metric_label = metric_name(opts),
    metric_threshold = opts.metric_threshold,
    max_errors = opts.max_errors or 10,
    max_metric_calls = opts.max_metric_calls,
    max_cost = opts.max_cost,
    concurrency = opts.concurrency or 16,
    display = opts.display_progress,
    output = opts.output,
    errors = 0,
    metric_calls = 0,
    other_calls = 0,   -- calls an optimizer counts against max_metric_calls too (GEPA's reflections)
    usage = {input = 0, output = 0, total = 0, calls = 0, cache_hits = 0, cost = 0},
    log = {optimizer = name, candidates = {}},
  }, Run)
  return self
end

--- The examples as Examples with declared inputs (a plain table: every field an
-- input), checked before any LM call: a list given must hold one; nil is let
-- through (as nil) unless required.
function M.examples(fname, what, list, required)
  if type(list) ~= "table" then
    if not required and list == nil then return nil end
    check.fail(fname, "opts." .. what, "a list of examples expected, got " .. type(list))
  end
  if list[1] == nil then
    check.fail(fname, "opts." .. what, "the " .. what .. " is empty: give at least one example " ..
      "(tide.Example{...}:with_inputs(...))")
  end
  return as_examples(list, what, function(message) check.fail(fname, "opts." .. what, message) end)
end

--- A program's predictors must have an LM, and a lone predictor's inputs must be
-- in every example: checked before any LM call, with the fix.
function M.check_program(fname, program, lists)
  if type(program) ~= "table" or type(program.named_predictors) ~= "function" then
    check.fail(fname, 1, "a program (tide.Predict, tide.ChainOfThought or a tide.Module) " ..
      "expected, got " .. type(program))
  end
  local nps = program:named_predictors()
  if #nps == 0 then check.fail(fname, 1, "the program has no predictors to optimize") end
  for _, np in ipairs(nps) do
    if np[2].lm == nil and settings.get("lm") == nil then
      check.fail(fname, 1, string.format("predictor '%s' has no LM: tide.configure{lm = ...} " ..
        "or program:set_lm(lm) before compile", np[1]))
    end
  end
  if getmetatable(program) ~= getmetatable(nps[1][2]) then return end   -- a module: its own inputs
  local sig = program.signature
  for what, list in pairs(lists) do
    for i, ex in ipairs(list) do
      for _, f in ipairs(sig.inputs) do
        if ex[f.name] == nil and not f.optional then
          check.fail(fname, "opts." .. what, string.format(
            "%s[%d] lacks the input '%s' that %s needs", what, i, f.name, tostring(sig)))
        end
      end
    end
  end
end

--- A progress bar (tide.Evaluate's) over `total` items, labelled.
function Run:bar(total, label)
  local output = self.output   -- else progress's default, standard error
  return progress.new{total = total, mode = display_progress.mode(self.display), label = label,
    write = output and function(s) output:write(s) end}
end

--- Whether n more metric calls fit the budget (calls and cost).
function Run:affords(n)
  if self.max_metric_calls and self.metric_calls + self.other_calls + n > self.max_metric_calls then
    return false
  end
  if self.max_cost and self.usage.cost >= self.max_cost then return false end
  return true
end

--- An error of this compile: counted, raised once past max_errors.
function Run:count_error(err)
  self.errors = self.errors + 1
  if self.errors >= self.max_errors then
    error(core.error{kind = "max_errors", message = string.format(
      "%s stopped after %d errors (max_errors = %d); the last: %s", self.name, self.errors,
      self.max_errors, tostring(type(err) == "table" and err.message or err))}, 0)
  end
end

--- An error's message: a tide error's `message`, else the value as text.
local function message_of(e)
  if type(e) == "table" and e.message then return tostring(e.message) end
  return tostring(e)
end
M.message_of = message_of   -- tide optimize reports errors the same way

--- The score of one metric answer, or nil and why not.
local function score(self, ex, pred, trace)
  local ok, v = pcall(self.metric, ex, pred, trace)
  if not ok then return nil, "raised: " .. message_of(v) end
  local s, feedback = score_of(v)
  if s == nil then
    return nil, "returned " .. (v == nil and "nil" or tostring(v)) ..
      " (a number, a boolean or {score = number, feedback = text} expected)"
  end
  return s, feedback
end

--- Runs program on one example (index `index` of the list called `what`) under a
-- trace and scores it; returns the row.  Failures are counted (see the top).
function Run:example(program, ex, index, what, metric_wanted)
  local trace = {}
  local ok, pred = settings.with({compile_trace = trace, usage_sink = self.usage}, pcall, program, ex:inputs())
  if not ok and (core.is_error(pred, "cancelled") or core.is_error(pred, "max_errors")) then
    error(pred, 0)
  end
  local row = {index = index, trace = trace, pred = ok and pred or nil}
  if not ok then
    row.error = core.error{kind = "program", message = string.format(
      "%s: the program failed on %s[%d]: %s", self.name, what, index, message_of(pred))}
  elseif metric_wanted ~= false then
    self.metric_calls = self.metric_calls + 1
    local s, extra = score(self, ex, pred, trace)
    if s == nil then
      row.error = core.error{kind = "metric", message = string.format(
        "%s: the metric %s %s on %s[%d]", self.name, self.metric_label, extra, what, index)}
    else
      row.score, row.feedback = s, extra
    end
  end
  if row.error then
    self.log.errors = self.log.errors or {}
    table.insert(self.log.errors, row.error.message)
    self:count_error(row.error)
  end
  return row
end

--- Runs program over examples in parallel (at most `concurrency` at once; the
-- LM's gate bounds the requests under that) with a progress bar; rows in the
-- examples' order.  → {mean, sum, rows, scores} (mean and sum taken in that order)
function Run:evaluate(program, examples, label, what)
  local bar = self:bar(#examples, label)
  local done, sum, errs = 0, 0, 0
  local rows = core.map(examples, function(ex, i)
    local row = self:example(program, ex, i, what or "valset")
    done = done + 1
    sum = sum + (row.score or 0)
    if row.error then errs = errs + 1 end
    bar:update{done = done, errors = errs, mean = sum / done}
    return row
  end, {limit = self.concurrency})
  bar:finish{done = done, errors = errs, mean = done > 0 and sum / done or nil}
  local scores, total = {}, 0
  for i, row in ipairs(rows) do
    scores[i] = row.score or 0
    total = total + scores[i]
  end
  return {mean = #rows > 0 and total / #rows or 0, sum = total, rows = rows, scores = scores}
end

--- Records a candidate in the log: {label, score, ...}.
function Run:record(entry)
  local list = self.log.candidates
  entry.index = #list + 1
  list[#list + 1] = entry
  return entry
end

--- What the log says of the run as a whole, once the search is over.
function Run:finish(chosen)
  self.log.chosen = chosen
  self.log.metric_calls = self.metric_calls
  self.log.lm_calls = self.usage.calls
  self.log.cost = self.usage.cost
  self.log.errors_count = self.errors
  return self.log
end

--- Runs search() (which returns the program it settled on); a cancelled compile
-- (Ctrl-C) raises its error with err.result = {program = best(), log}, the best
-- program so far, so the caller keeps it.
function Run:guard(search, best)
  local ok, res = pcall(search)
  if ok then return res end
  if type(res) == "table" and core.is_error(res, "cancelled") then
    res.result = {program = best(), log = self:finish(nil)}
  end
  error(res, 0)
end

--- opt:save_log(path): the optimizer's last log (opt.log) as JSON.  Every optimizer
-- class takes this as its method.
function M.save_log(opt, path)
  check.type("save_log", 1, path, "string")
  if opt.log == nil then check.misuse("save_log: nothing to save: call compile first") end
  local f, err = io.open(path, "w")
  if not f then error(core.error{kind = "io", message = "save_log: cannot open " .. err, path = path}, 0) end
  f:write(cjson.encode(opt.log), "\n")
  f:close()
end

--- DSPy's auto settings → MIPROv2's number of candidates (GEPA's auto budget is
-- what MIPROv2 would spend with them).
M.AUTO_CANDIDATES = {light = 6, medium = 12, heavy = 18}

--- Checks an optimizer's opts.auto: nil, "light", "medium" or "heavy".
function M.check_auto(fname, v)
  if v ~= nil and not M.AUTO_CANDIDATES[v] then
    check.fail(fname, "opts.auto", "'light', 'medium' or 'heavy' expected, got " .. tostring(v))
  end
end

--- DSPy's MIPROv2 trial count for n candidates and v variables (GEPA's auto budget too).
function M.trials_for(n, variables)
  return math.floor(math.max(2 * variables * math.log(n, 2), 1.5 * n))
end

--- A demo made of a traced call: its inputs and its outputs, marked augmented
-- (DSPy's flag: a demo the optimizer produced, kept through save and load).
function M.demo_of(inputs, pred)
  local d = {}
  for k, v in pairs(inputs) do
    if type(k) == "string" then d[k] = v end
  end
  for k, v in pairs(pred) do
    if type(k) == "string" and k ~= "completions" then d[k] = v end
  end
  d.augmented = true
  return d
end

return M
