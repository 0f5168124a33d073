--- `tide eval`: an evaluation from the command line, resumable and shardable.
--
--   tide eval PROGRAM.lua --data drafts.jsonl --out results.jsonl [--concurrency 32]
--   tide eval PROGRAM.lua --data drafts.jsonl --out part-2.jsonl --shard 2/4
--   tide eval --merge results.jsonl part-*.jsonl [--report report.html]
--
-- PROGRAM.lua returns the program and the metric (`return program, metric`), or a
-- table {program = , metric = , inputs = {...}, failure_score = , max_errors = }.  It
-- is called with one argument, {model = "provider/model" | nil, lm = tide.LM | nil};
-- when --model or TIDE_MODEL names a model (or the command runs under
-- scripts/with_mockllm), that LM is already configured.  Otherwise PROGRAM.lua must
-- bring its own (tide.configure{lm = ...}, or a tide.LM it makes as it loads), or
-- the run does not start: every example would fail the same way.
-- main returns the exit status: 0 done, 1 failed (every example failed, or the run
-- stopped early: --max-errors, or the server gone for --wait-for-server seconds),
-- 2 bad usage (no LM among them), 130 cancelled (Ctrl-C); an
-- interrupted run is resumed by running it again.
local tide = require "tide"
local core = require "tide.core"
local command_line = require "tide.eval.command_line"
local evaluate = require "tide.eval.evaluate"
local dataset = require "tide.eval.dataset"
local results = require "tide.eval.results"
local report = require "tide.eval.report"
local html = require "tide.eval.html"

local M = {}

M.usage = [[
usage: tide eval PROGRAM.lua --data FILE --out FILE [options]
       tide eval --merge OUT IN... [--report FILE.html]

PROGRAM.lua returns the program and the metric: `return program, metric`, or a table
{program = ..., metric = ..., inputs = {"field", ...}}.

Required:
  --data FILE         the dataset: .jsonl (one JSON object a line) or .csv (header row)
  --out FILE          per-example results, .jsonl or .csv, written as examples finish;
                      when FILE exists the run resumes: its finished rows are kept
Options:
  --format F          the dataset's format, jsonl or csv, when its name does not say
  --inputs A,B        the dataset's input fields (default: the program's `inputs`,
                      else every field)
  --concurrency N     examples running at once (default 16)
  --model M           the LM, e.g. openai/gpt-4o-mini (default: $TIDE_MODEL)
  --shard K/N         run only the K-th of N slices of the dataset (K from 1)
  --redis URL         share the LM cache and rate limits with the other shards
                      through Redis: redis://[[user]:password@]host[:port][/db]
                      (default: $TIDE_REDIS_URL; docs/redis.md)
  --max-errors N      stop after N examples failed
  --failure-score X   the score of a failed example (default 0)
  --overwrite         start over instead of resuming --out
  --progress MODE     bar, lines or none (default: bar on a terminal, else lines)
  --interval S        seconds between progress lines (default 10)
  --wait-for-server S when the server stops answering (connections refused), hold
                      the run up to S seconds for it to come back (default 30; 0:
                      do not wait); then stop, keeping the finished rows
  --rows N            also print the first N rows at the end
  --load FILE.json    load the program's saved state first (program:load: demos and
                      instructions, e.g. what tide optimize --out wrote)
  --report FILE.html  also write the HTML report: summary, plots, failures, rows
  --merge OUT IN...   combine the results of shards into OUT (.jsonl or .csv, not one
                      of the INs), in dataset order
  -h, --help          this text

The LM: --model, else $TIDE_MODEL, else the mock server at $MOCKLLM_URL (set by
scripts/with_mockllm), else the one PROGRAM.lua configures; with none, tide eval
does not start.  Keys come from the provider's variable (OPENAI_API_KEY,
ANTHROPIC_API_KEY, GEMINI_API_KEY, ...); answers are cached in $TIDE_CACHE_DIR.

Exit status: 0 done, 1 every example failed or the run stopped early (the server
went away, --max-errors; or it could not run), 2 a usage error, 130 cancelled
(Ctrl-C); run the same command to resume.
]]

local say, usage_error, fail = command_line.messages("eval")

local VALUED = {data = true, out = true, format = true, inputs = true, concurrency = true, model = true,
  shard = true, redis = true, ["max-errors"] = true, ["failure-score"] = true, progress = true,
  interval = true, rows = true, ["wait-for-server"] = true, report = true, load = true}
local FLAGS = {overwrite = true, help = true, merge = true}

-- ---- merge -----------------------------------------------------------------------

--- The absolute form of a path with "." and ".." resolved (by its text: symbolic links
-- are not followed), to tell two spellings of one file apart.
local function real_path(path)
  if path:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD")
    if cwd and cwd:sub(1, 1) == "/" then path = cwd .. "/" .. path end
  end
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return "/" .. table.concat(parts, "/")
end

--- Why OUT and INs cannot be merged, or nil.
local function merge_problem(out, inputs)
  if not results.format_of(out) then
    return string.format("--merge OUT must end in .jsonl or .csv, got '%s'", out)
  end
  -- the same file however it is reached: by its spelling, or (when OUT exists)
  -- by device and inode, which sees through symlinks and hard links
  local real_out, out_id = real_path(out), core.file_id(out)
  for _, path in ipairs(inputs) do
    if real_path(path) == real_out or (out_id ~= nil and core.file_id(path) == out_id) then
      return string.format("--merge would overwrite its input %s: write OUT to a new file", path)
    end
  end
  return nil
end

local function merge(out, inputs, report_path)
  local rows, size, missing = results.merge(inputs, function(msg) say("%s", msg) end)
  results.rewrite(out, rows)
  local s = evaluate.summarise(rows, 0)
  local result = {score = s.mean, rows = rows, total = size or #rows, done = s.done,
    errors = s.errors, error_kinds = s.error_kinds, resumed = 0, usage = s.usage, cost = s.cost,
    save_as = out}
  io.stdout:write(report.summary(result, 0))
  if report_path then
    html.write(report_path, result, {dataset = "the shards " .. table.concat(inputs, ", ")})
    io.stdout:write(string.format("  %-11s %s\n", "report", report_path))
  end
  if #missing > 0 then
    local shown = {}
    for i = 1, math.min(10, #missing) do shown[i] = tostring(missing[i]) end
    say("%d of %d rows are missing (%s%s): merge every shard", #missing, size,
      table.concat(shown, ", "), #missing > 10 and ", ..." or "")
    return 1
  end
  return 0
end

--- Why --report FILE cannot be the report, or nil.  The name must say HTML, so a
-- slip (--report results.jsonl) never overwrites a results file.
local function report_problem(path)
  if path == nil then return nil end
  local ext = path:lower():match("%.(%w+)$")
  if ext ~= "html" and ext ~= "htm" then
    return string.format("--report FILE must end in .html, got '%s'", path)
  end
  return nil
end

-- ---- a run -------------------------------------------------------------------------

--- The first row's error, for the message of a run in which every example failed.
local function first_error(result)
  for _, row in ipairs(result.rows) do
    if row.error then return row.error.kind .. ": " .. row.error.message end
  end
  return "?"
end

local function run(o)
  local program_path = o.args[1]
  if not program_path then return usage_error("which PROGRAM.lua? (tide eval PROGRAM.lua --data FILE --out FILE)") end
  if #o.args > 1 then return usage_error("unexpected argument '%s'", o.args[2]) end
  if not o.data then return usage_error("--data FILE is required") end
  if not o.out then return usage_error("--out FILE is required") end
  if not results.format_of(o.out) then
    return usage_error("--out FILE must end in .jsonl or .csv, got '%s'", o.out)
  end
  if o.format ~= nil and o.format ~= "jsonl" and o.format ~= "csv" then
    return usage_error("--format must be jsonl or csv, got '%s'", o.format)
  end
  if o.format == nil and not dataset.format_of(o.data) then
    return usage_error("cannot tell the format of %s from its name: pass --format jsonl or --format csv",
      o.data)
  end
  local concurrency, e1 = command_line.integer_option(o, "concurrency", 1)
  local max_errors, e2 = command_line.integer_option(o, "max-errors", 1)
  local rows_shown, e3 = command_line.integer_option(o, "rows", 0)
  if e1 or e2 or e3 then return usage_error("%s", e1 or e2 or e3) end
  if o.shard then
    local k, err = evaluate.parse_shard(o.shard)
    if not k then return usage_error("--%s", err) end
  end
  if o.redis then
    local shared_redis = require "tide.shared.redis"
    local parsed, why_redis = shared_redis.parse(o.redis)
    if not parsed then return usage_error("--redis: %s", why_redis) end
    tide.configure{redis = o.redis}
  end
  local progress_mode = o.progress
  local bad_progress = command_line.progress_problem(progress_mode)
  if bad_progress then return usage_error("%s", bad_progress) end
  local interval = o.interval and tonumber(o.interval)
  if o.interval and (not interval or interval < 0) then return usage_error("--interval must be seconds >= 0") end
  local wait = o["wait-for-server"] and tonumber(o["wait-for-server"])
  if o["wait-for-server"] and not (wait and wait >= 0 and wait <= 86400) then
    return usage_error("--wait-for-server must be seconds from 0 to 86400, got '%s'", o["wait-for-server"])
  end
  local failure_score = o["failure-score"] and tonumber(o["failure-score"])
  if o["failure-score"] and not failure_score then return usage_error("--failure-score must be a number") end
  local bad_report = report_problem(o.report)
  if bad_report then return usage_error("%s", bad_report) end

  local spec, status, why = command_line.load_program("eval", program_path, o.model)
  if not spec then return fail(status, why) end
  if o.load then
    local ok_l, load_err = pcall(function() spec.program:load(o.load) end)
    if not ok_l then say("--load %s: %s", o.load, tostring(load_err)) return 1 end
  end

  local inputs = o.inputs and command_line.field_list(o.inputs) or spec.inputs
  local devset, data_err = command_line.load_examples(o.data, {inputs = inputs, format = o.format},
    ": nothing to evaluate")
  if not devset then say("%s", data_err) return 1 end

  local ok_e, result = pcall(tide.Evaluate, {
    devset = devset,
    metric = spec.metric,
    program = spec.program,
    concurrency = concurrency or spec.concurrency,
    max_errors = max_errors or spec.max_errors,
    failure_score = failure_score or spec.failure_score,
    save_as = o.out,
    resume = not o.overwrite,
    shard = o.shard,
    display_progress = progress_mode == nil or (progress_mode ~= "none" and progress_mode),
    progress_interval = interval,
    display_table = rows_shown or true,
    wait_for_server = wait,
    report = o.report and {path = o.report, dataset = o.data},
  })
  if not ok_e then
    if tide.is_error(result, "cancelled") then
      local r = result.result
      say("cancelled; %d finished rows are in %s: run the same command again to resume",
        r and r.done or 0, o.out)
      return 130
    end
    if tide.is_error(result, "server_down") then
      local r = result.result
      say("%s; %d finished rows are kept in %s; run the same command to resume", result.message,
        r and r.done or 0, o.out)
      return 1
    end
    say("%s", tostring(result))
    return 1
  end
  if result.stopped == "max_errors" then
    say("stopped after %d failed examples (--max-errors %d); the finished rows are in %s",
      result.errors, max_errors or spec.max_errors, o.out)
    return 1
  end
  if result.done > 0 and result.errors == result.done then
    say("every example failed; the first error: %s",
      results.redactor()(first_error(result)))
    return 1
  end
  return 0
end

--- tide eval args... → the exit status.
function M.main(...)
  local o, exit_status = command_line.options("eval", M.usage, VALUED, FLAGS, ...)
  if not o then return exit_status end
  if o.merge then
    if #o.args < 2 then return usage_error("--merge needs OUT and at least one IN file") end
    local ins = {table.unpack(o.args, 2)}
    local problem = merge_problem(o.args[1], ins) or report_problem(o.report)
    if problem then return usage_error("%s", problem) end
    local ok, status = pcall(merge, o.args[1], ins, o.report)
    if not ok then say("%s", tostring(status)) return 1 end
    return status
  end
  return run(o)
end

return M
