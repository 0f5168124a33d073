--- tide.Evaluate: a program over a dataset, each output scored by a metric.
--
--   local evaluate = tide.Evaluate{devset = devset, metric = metric, concurrency = 32,
--                                  save_as = "results.jsonl"}
--   local r = evaluate(program)          -- or tide.Evaluate{..., program = program}
--   print(r.score, r.done, r.errors, r.usage.total, r.wall_time)
--
-- Each example runs as its own task (program(example:inputs()), then
-- metric(example, prediction)) with at most `concurrency` running; the LM's own gate
-- bounds the requests under that.  A failing example is a row with its error and
-- `failure_score`.  Rows are appended to `save_as` (JSONL or CSV) and flushed as they
-- finish.  The run stops early, keeping every finished row, at `max_errors` failures
-- (the result says stopped = "max_errors") or when the task running it is cancelled
-- (Ctrl-C in the tide binary): then the summary is still printed and the `cancelled`
-- error is raised again, carrying the partial result in `err.result`.
--
-- A server that goes away holds the run (tide/circuit.lua): the LM calls wait up to
-- `wait_for_server` seconds (default 30) for it to answer again, the progress line
-- saying so; if it does not, the run stops like a cancelled one, with the
-- `server_down` error (stopped = "server_down"): no row is written for the examples
-- it cut short, so running it again resumes them.
local cjson = require "cjson"
local core = require "tide.core"
local check = require "tide.check"
local settings = require "tide.settings"
local callbacks = require "tide.callbacks"
local as_examples = require("tide.eval.examples").as_examples
local results = require "tide.eval.results"
local progress = require "tide.eval.progress"
local display_progress = require "tide.eval.display_progress"
local report = require "tide.eval.report"
local circuit = require "tide.circuit"
local score_of = require("tide.metrics").score_of

local M = {}

local Evaluate = {}
Evaluate.__index = Evaluate
Evaluate.__name = "tide.Evaluate"

--- Misuse of an option: raised at the caller's line, naming the option.
local function fail(option, msg)
  check.fail("Evaluate", option, msg)
end

--- "K/N" or {K, N} → K, N (K counts from 1); nil → nil.
local function parse_shard(shard)
  if shard == nil then return nil end
  local k, n
  if type(shard) == "string" then
    k, n = shard:match("^(%d+)/(%d+)$")
    k, n = tonumber(k), tonumber(n)
  elseif type(shard) == "table" then
    k, n = math.tointeger(shard[1]), math.tointeger(shard[2])
  end
  if not k or not n or n < 1 or k < 1 or k > n then
    return nil, "shard must be 'K/N' with 1 <= K <= N (the K-th of N slices), got " ..
      tostring(type(shard) == "table" and table.concat(shard, "/") or shard)
  end
  return k, n
end
M.parse_shard = parse_shard

--- The dataset indices of the K-th of N contiguous slices of `size` rows; the slices'
-- sizes differ by at most one.
function M.shard_range(size, k, n)
  return (k - 1) * size // n + 1, k * size // n
end

local function check_opts(opts)
  check.type("Evaluate", 1, opts, "table")
  if type(opts.devset) ~= "table" then
    fail("devset", "a list of examples expected, got " .. type(opts.devset))
  end
  if not check.callable(opts.metric) then
    fail("metric", "a function(example, prediction) expected, got " .. type(opts.metric))
  end
  if opts.program ~= nil and not check.callable(opts.program) then
    fail("program", "a function(inputs) expected, got " .. type(opts.program))
  end
  check.number("Evaluate", "concurrency", opts.concurrency, {min = 1, integer = true}, true)
  check.number("Evaluate", "max_errors", opts.max_errors, {min = 1, integer = true}, true)
  check.number("Evaluate", "failure_score", opts.failure_score, {}, true)
  local save_as = opts.save_as
  if save_as ~= nil and (type(save_as) ~= "string" or not results.format_of(save_as)) then
    fail("save_as", "a file path ending in .jsonl or .csv expected, got " ..
      (type(save_as) == "string" and string.format("%q", save_as) or type(save_as)))
  end
  if opts.resume and not save_as then fail("resume", "resume needs save_as (the results to resume)") end
  local bad_display = display_progress.problem(opts.display_progress)
  if bad_display then fail("display_progress", bad_display) end
  check.number("Evaluate", "progress_interval", opts.progress_interval, {min = 0}, true)
  check.number("Evaluate", "wait_for_server", opts.wait_for_server, {min = 0, max = 86400}, true)
  local t = opts.display_table
  if t ~= nil and type(t) ~= "boolean" and math.type(t) ~= "integer" then
    fail("display_table", "a boolean or a number of rows to show expected, got " .. type(t))
  end
  local k, err = parse_shard(opts.shard)
  if opts.shard ~= nil and not k then fail("shard", err) end
  -- the HTML report's module (and its plots) is loaded only for a run that asks for one
  if opts.report ~= nil then require("tide.eval.html").check_option(opts.report, fail) end
  if opts.callbacks ~= nil then callbacks.check_list("Evaluate", "callbacks", opts.callbacks) end
end

--- The devset as Examples with declared inputs (plain tables: every field an input).
local function examples(devset)
  if devset[1] == nil then fail("devset", "the devset is empty: there is nothing to evaluate") end
  return as_examples(devset, "devset", function(message) fail("devset", message) end)
end

--- tide.Evaluate{devset, metric, program?, concurrency = 16, max_errors, failure_score = 0,
-- display_progress = true | false | "bar" | "lines", progress_interval = 10,
-- display_table = true | false | n, save_as, resume, shard = "K/N", secrets = {strings},
-- wait_for_server = seconds (the LMs' circuit wait; default: each LM's, else 30),
-- output = a file-like {write} for the progress and the table (default stderr, stdout),
-- label = "eval" (the progress lines' prefix), report = path | {path, dataset, model,
-- title} (the HTML report, tide/eval/html.lua; its path in result.report)}
function M.new(opts)
  check_opts(opts)
  local self = setmetatable({}, Evaluate)
  for k, v in pairs(opts) do self[k] = v end
  self.devset = examples(opts.devset)
  if opts.program ~= nil then
    local program = opts.program
    self.program = nil
    return self:run(program)
  end
  return self
end

function Evaluate:__call(program, overrides)
  return self:run(program, overrides)
end

local function new_usage()
  return {input = 0, output = 0, total = 0, calls = 0, cache_hits = 0, cost = 0}
end

--- An LM error's attempts, each {kind, cause, status, delay} with only plain
-- values kept (what a results file can hold).
local function attempt_list(history)
  if type(history) ~= "table" or #history == 0 then return nil end
  local list = {}
  for i, a in ipairs(history) do
    list[i] = {kind = tostring(a.kind), cause = type(a.cause) == "string" and a.cause or nil,
      status = math.type(a.status) == "integer" and a.status or nil,
      delay = type(a.delay) == "number" and math.floor(a.delay * 1000 + 0.5) / 1000 or nil}
  end
  return list
end

local function error_row(e)
  if type(e) == "table" then
    -- cause (a transport error's own kind) and status say more in a results file,
    -- and so do the call's attempts: "timeout, then refused x3"
    local cause = type(e.cause) == "string" and e.cause or nil
    local status = math.type(e.status) == "integer" and e.status or nil
    local tries = attempt_list(e.history)
    return {kind = tostring(e.kind or "lua"), message = tostring(e.message or e), cause = cause,
            status = status, attempts = math.type(e.attempts) == "integer" and e.attempts or nil,
            tried = tries}
  end
  return {kind = "lua", message = tostring(e)}
end

--- A metric's answer as a number: booleans count 1 and 0, {score =, feedback =} its score.
local function as_score(v)
  local score = score_of(v)
  if score ~= nil then return score end
  error(core.error{kind = "metric", message = "the metric returned " .. tostring(v) ..
    " (a number, a boolean or {score = number, feedback = text} expected)"}, 0)
end

--- Runs one example as a task whose calls are counted in `usage`; returns the row.
-- circuit_run: what the example's held LM calls tell the run (tide/circuit.lua).
local function run_example(self, program, item, dataset_size, circuit_run, eval_call)
  local ex = item.example
  local usage = new_usage()
  local started = core.now()
  local context = {usage_sink = usage, circuit_wait = self.wait_for_server,
    circuit_default_wait = circuit.WAIT, circuit_run = circuit_run}
  -- under an evaluation the callbacks hear of, each example is a call of its own
  local call = eval_call and callbacks.start(eval_call.callbacks, "example",
    "example " .. item.index, ex, ex:inputs(), eval_call)
  if call then callbacks.under(context, call) end
  -- The task returns its failure rather than raising it: were the run cancelled just
  -- as the example failed, a raised error would be left with nobody to take it.
  local ok, pred, score = settings.with(context, pcall, function()
    local p = program(ex:inputs())
    -- nothing to score: the metric would crash on nil, or score it
    if p == nil or p == cjson.null then
      error(core.error{kind = "program", message = "program returned nil: it must return " ..
        "its outputs (a prediction, a table or a value)"}, 0)
    end
    local ok_m, s = pcall(self.metric, ex, p)
    if not ok_m then
      if core.is_error(s) then error(s, 0) end
      error(core.error{kind = "metric", message = tostring(s)}, 0)
    end
    return p, as_score(s)
  end)
  if call then
    call.index, call.score = item.index, score
    callbacks.finish(call, ok and pred or nil, not ok and pred or nil)
  end
  -- cut short by the run's end, not failed: no row, so a resumed run does it again
  if not ok and (core.is_error(pred, "cancelled") or core.is_error(pred, "server_down")) then
    error(pred, 0)
  end
  local cost = usage.cost
  usage.cost = nil
  local row = {
    index = item.index,
    id = item.id,
    inputs = results.plain(ex:inputs()),
    labels = results.plain(ex:labels()),
    latency = core.now() - started,
    usage = usage,
    cost = cost,
    cached = usage.calls > 0 and usage.cache_hits == usage.calls,
    dataset_size = dataset_size,
  }
  if ok then
    row.outputs = results.plain(pred)
    row.score = score
  else
    row.error = error_row(pred)
    row.score = self.failure_score or 0
  end
  return row
end

--- Rows already in the results file that this run keeps (finished without error, and
-- of this dataset); the others run again.  The file is rewritten to hold just those.
local function resume_rows(self, items)
  local old, dropped = results.read(self.save_as)
  if not old then return {}, {} end
  local by_index = {}
  for _, item in ipairs(items) do by_index[item.index] = item end
  local keep, seen = {}, {}
  for _, row in ipairs(old) do
    local item = by_index[row.index]
    if not item then
      error(string.format("tide.Evaluate: %s holds row %d, which is not in this run's examples: "
        .. "resume with the same dataset and shard, or write to a new file", self.save_as, row.index), 0)
    end
    if row.id ~= item.id then
      error(string.format("tide.Evaluate: %s holds a different example at row %d (another dataset?): "
        .. "write to a new file", self.save_as, row.index), 0)
    end
    if row.error == nil and not seen[row.index] then
      keep[#keep + 1] = row
      seen[row.index] = true
    end
  end
  if #keep ~= #old or dropped > 0 then results.rewrite(self.save_as, keep) end
  return keep, seen
end

local function summarise(rows, failure_score)
  local s = {done = #rows, errors = 0, score_sum = 0, usage = new_usage(), cost = 0,
    error_kinds = {}}
  for _, row in ipairs(rows) do
    s.score_sum = s.score_sum + (row.score or failure_score)
    if row.error then
      s.errors = s.errors + 1
      s.error_kinds[row.error.kind] = (s.error_kinds[row.error.kind] or 0) + 1
    end
    local u = row.usage or {}
    for _, k in ipairs{"input", "output", "total", "calls", "cache_hits"} do
      s.usage[k] = s.usage[k] + (u[k] or 0)
    end
    s.cost = s.cost + (row.cost or 0)
  end
  s.usage.cost = nil
  s.mean = s.done > 0 and s.score_sum / s.done or nil
  return s
end

local run

--- evaluate(program [, overrides]) → the result (see the top of this file).
-- opts.callbacks (or the configured ones) hear of the evaluation and each example.
function Evaluate:run(program, overrides)
  if callbacks.on or self.callbacks or (overrides and overrides.callbacks) then
    local own = overrides and overrides.callbacks or self.callbacks
    local list = callbacks.list(own, "Evaluate")
    if list then
      local call = callbacks.start(list, "evaluate", "Evaluate", self,
        {program = program, devset = self.devset})
      local ok, result = pcall(run, self, program, overrides, call)
      if ok then call.score = result.score end
      callbacks.finish(call, ok and result or nil, not ok and result or nil)
      if not ok then error(result, 0) end
      return result
    end
  end
  return run(self, program, overrides)
end

function run(self, program, overrides, eval_call)
  if not check.callable(program) then
    check.fail("Evaluate", 1, "a program (a function of the inputs) expected, got " .. type(program))
  end
  local opts = self
  if overrides then
    opts = setmetatable({}, {__index = self})
    for k, v in pairs(overrides) do opts[k] = v end
    check_opts(setmetatable({devset = self.devset, metric = self.metric}, {__index = opts}))
  end
  local failure_score = opts.failure_score or 0
  local redact = results.redactor(opts.secrets)
  local size = #self.devset
  local first, last = 1, size
  local shard_k, shard_n = parse_shard(opts.shard)
  if shard_k then first, last = M.shard_range(size, shard_k, shard_n) end
  local items = {}
  for i = first, last do
    local ex = self.devset[i]
    items[#items + 1] = {index = i, example = ex, id = results.example_id(ex)}
  end

  local rows, finished = {}, {}
  if opts.save_as and opts.resume then rows, finished = resume_rows(opts, items) end
  local resumed = #rows
  local pending = {}
  for _, item in ipairs(items) do
    if not finished[item.index] then pending[#pending + 1] = item end
  end

  local output = opts.output
  local function write_table(s)
    if output then output:write(s) else io.stdout:write(s) io.stdout:flush() end
  end
  local totals = summarise(rows, failure_score)
  local bar = progress.new{total = #items, mode = display_progress.mode(opts.display_progress),
    write = output and function(s) output:write(s) end,   -- else standard error
    interval = opts.progress_interval, start_done = resumed, label = opts.label}

  local writer
  if opts.save_as then
    local columns   -- a CSV header names the dataset's fields from the first row on
    if results.format_of(opts.save_as) == "csv" then
      columns = {}
      for _, item in ipairs(items) do
        results.add_columns(columns, item.example:inputs(), item.example:labels())
      end
    end
    writer = results.open(opts.save_as, {append = opts.resume, columns = columns})
  end
  local started = core.now()
  local errors_this_run = 0
  local stop_reason

  local function record(row)
    redact(row)
    rows[#rows + 1] = row
    if writer then writer:write(row) end
    totals.done = totals.done + 1
    totals.score_sum = totals.score_sum + row.score
    if row.error then
      totals.errors = totals.errors + 1
      errors_this_run = errors_this_run + 1
    end
    bar:update{done = totals.done, errors = totals.errors, mean = totals.score_sum / totals.done}
  end

  -- A server given up (tide/circuit.lua) ends the run.  A row that finishes after
  -- it is not kept either: a panel that drops a failed critic would have judged it
  -- without the server, and the resumed run judges it again with it.  Only this
  -- run's calls count: another run in the process may wait for another server.
  local gone
  local held = {}   -- origin → this run's calls held for it
  local circuit_run = {
    held = function(origin, wait)
      held[origin] = (held[origin] or 0) + 1
      bar:set_note(string.format("waiting for server at %s (up to %g s)", origin, wait))
    end,
    released = function(origin)
      held[origin] = held[origin] - 1
      if held[origin] == 0 then held[origin] = nil end
      if next(held) == nil then bar:set_note(nil) end
    end,
    down = function(err) gone = gone or err end,
  }
  local next_item = 0
  local function worker()
    while stop_reason == nil do
      next_item = next_item + 1
      local item = pending[next_item]
      if item == nil then return end
      local row = run_example(opts, program, item, size, circuit_run, eval_call)
      if gone then error(gone, 0) end
      record(row)
      if opts.max_errors and errors_this_run >= opts.max_errors and stop_reason == nil then
        stop_reason = "max_errors"
        -- the rest of the run is cancelled by gather; finished rows are already written
        error(core.error{kind = "max_errors", message = string.format(
          "stopped after %d failed examples (max_errors = %d)", errors_this_run, opts.max_errors)}, 0)
      end
    end
  end

  local workers = {}
  for i = 1, math.min(opts.concurrency or 16, #pending) do workers[i] = worker end
  local ok, err = true, nil
  if #workers > 0 then ok, err = pcall(core.gather, workers) end
  if writer then writer:close() end
  if not ok then
    if core.is_error(err, "max_errors") then
      ok = true
    elseif core.is_error(err, "cancelled") or core.is_error(err, "server_down") then
      stop_reason = err.kind
    else
      stop_reason = "error"
    end
  end
  table.sort(rows, function(a, b) return a.index < b.index end)
  local s = summarise(rows, failure_score)
  local result = {
    score = s.mean,
    rows = rows,
    total = #items,
    dataset_size = size,
    done = s.done,
    errors = s.errors,
    error_kinds = s.error_kinds,
    resumed = resumed,
    stopped = stop_reason,
    complete = stop_reason == nil and s.done == #items,
    usage = s.usage,
    cost = s.cost,
    wall_time = core.now() - started,
    ran = s.done - resumed,
    save_as = opts.save_as,
    shard = shard_k and {shard_k, shard_n} or nil,
  }
  if stop_reason ~= "error" then
    bar:finish{done = s.done, errors = s.errors, mean = s.mean}
    local t = opts.display_table
    if t == nil or t then
      write_table(report.summary(result, math.type(t) == "integer" and t or 0))
    end
    if opts.report then
      local path, report_err = require("tide.eval.html").for_evaluation(opts.report, result, opts.secrets,
        settings.get("lm"))
      -- a report that could not be written fails a run that did not fail already
      if report_err and ok then error(report_err, 0) end
      result.report = path
      if path and (t == nil or t) then write_table(string.format("  %-11s %s\n", "report", path)) end
    end
  end
  if not ok then
    if type(err) == "table" and (stop_reason == "cancelled" or stop_reason == "server_down") then
      err.result = result
    end
    error(err, 0)
  end
  return result
end

M.summarise = summarise
return M
