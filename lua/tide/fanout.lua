--- Fan-out / fan-in: critics on the same input in parallel, then one verdict.
--
--   local panel = tide.fanout.Panel{
--     critics = {{"technical", technical}, {"style", style}, {"completeness", completeness}},
--     weights = {technical = 0.4, style = 0.3, completeness = 0.3},
--     priority = {"technical", "completeness", "style"},
--   }
--   local r = panel({content = draft, context = "B2B SaaS", requirements = "..."}, {lm = lm})
--   print(r.overall_score, r.approved, r.combined_feedback, r.timings.speedup)
--
-- A critic is a predictor (tide.Predict, a Module: it gets the inputs its signature
-- names) or a function(inputs, opts) returning a table; the call's opts (lm,
-- config, ...: a predictor's call options) reach every critic.  Its score, feedback and approval are
-- read from `score` / `<name>_score`, `feedback` / `<name>_feedback` and `approved` /
-- `<name>_approved`, so the helpers below work on any critic results.
--
-- A failed critic: with on_failure = "drop" (the default) its weight is dropped and the
-- others renormalised, its error is kept in r.errors[name], and the panel does not
-- approve; with on_failure = "fail" the first failure cancels the other critics and
-- is raised.  A panel whose critics all fail raises a `panel` error either way.
local core = require "tide.core"
local prediction = require "tide.prediction"
local Signature = require "tide.signature"
local check = require "tide.check"
local callbacks = require "tide.callbacks"

local M = {}

-- ---- reading critic results ------------------------------------------------------

--- field(result, name, what) → result[what] or result[name .. "_" .. what].
local function field(result, name, what)
  if type(result) ~= "table" then return nil end
  local v = result[what]
  if v == nil and name then v = result[name .. "_" .. what] end
  return v
end

local function failed(result)
  return result == nil or core.is_error(result)
end

--- The names of a results map, in priority order then by name.
local function ordered_names(results, priority)
  local names, seen = {}, {}
  for _, name in ipairs(priority or {}) do
    if results[name] ~= nil and not seen[name] then
      names[#names + 1] = name
      seen[name] = true
    end
  end
  local rest = {}
  for name in pairs(results) do
    if not seen[name] then rest[#rest + 1] = name end
  end
  table.sort(rest)
  for _, name in ipairs(rest) do names[#names + 1] = name end
  return names
end

-- ---- aggregation helpers -------------------------------------------------------

local function results_arg(fname, results)
  if type(results) ~= "table" then
    check.fail(fname, 1, "table of results expected, got " .. type(results))
  end
end

--- weighted_score(results, weights) → the weighted mean of the critics' scores, the
-- weights of failed critics dropped and the rest renormalised; nil when no critic
-- has a score.  Without weights every critic counts the same; a critic missing from
-- `weights` counts 0.
function M.weighted_score(results, weights)
  results_arg("weighted_score", results)
  if weights ~= nil and type(weights) ~= "table" then
    check.fail("weighted_score", 2, "table of weights expected, got " .. type(weights))
  end
  local sum, total = 0, 0
  for name, result in pairs(results) do
    local score = not failed(result) and field(result, name, "score")
    if type(score) == "number" then
      local w = weights and (weights[name] or 0) or 1
      if type(w) ~= "number" or w < 0 then
        check.fail("weighted_score", 2, string.format("the weight of '%s' must be a number >= 0", name))
      end
      sum = sum + score * w
      total = total + w
    end
  end
  if total == 0 then return nil end
  return sum / total
end

--- all_approve(results) → true only when there is at least one critic, none failed
-- and every one approved.
function M.all_approve(results)
  results_arg("all_approve", results)
  local any = false
  for name, result in pairs(results) do
    if failed(result) or field(result, name, "approved") ~= true then return false end
    any = true
  end
  return any
end

local function label_of(name, labels)
  if labels and labels[name] then return labels[name] end
  return name:sub(1, 1):upper() .. name:sub(2):gsub("_", " ")
end

--- prioritized_feedback(results, priority, labels) → the feedback of the critics that
-- did not approve (or failed), one "Label: feedback" line each, in priority order
-- (critics not listed come after, by name); "All criteria passed!" when none.
function M.prioritized_feedback(results, priority, labels)
  results_arg("prioritized_feedback", results)
  local lines = {}
  for _, name in ipairs(ordered_names(results, priority)) do
    local result = results[name]
    if failed(result) then
      lines[#lines + 1] = string.format("%s: the critic failed (%s)", label_of(name, labels),
        tostring(result and result.message or result))
    elseif field(result, name, "approved") ~= true then
      lines[#lines + 1] = string.format("%s: %s", label_of(name, labels),
        tostring(field(result, name, "feedback") or "(no feedback)"))
    end
  end
  if #lines == 0 then return "All criteria passed!" end
  return table.concat(lines, "\n")
end

--- round(x) → the nearest integer, halves away from zero.
local function round(x)
  if x >= 0 then return math.floor(x + 0.5) end
  return -math.floor(-x + 0.5)
end
M.round = round

-- ---- running critics -------------------------------------------------------------

--- Whether every key of inputs is one of the signature's input fields.
local function only_fields_of(sig, inputs)
  for k in pairs(inputs) do
    if not Signature.is_input(sig, k) then return false end
  end
  return true
end

-- The inputs a critic receives: for a predictor, the ones its signature names;
-- for a function, all of them.
local function inputs_for(critic, inputs, extra)
  local sig = type(critic) == "table" and critic.signature
  if extra == nil and sig and sig.inputs and only_fields_of(sig, inputs) then
    return inputs   -- already what the critic takes: no copy for each waiting call
  end
  local out = {}
  if sig and sig.inputs then
    for _, f in ipairs(sig.inputs) do out[f.name] = inputs[f.name] end
  else
    for k, v in pairs(inputs) do out[k] = v end
  end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

--- run(members, inputs, opts) → results (name → result or error object), errors
-- (name → error), timings.  members: a list of {name, critic, extra inputs}.
-- opts.limit caps the critics running at once; opts.fail = true makes the first
-- failure cancel the rest and raise; opts.call is each critic's second argument
-- (a predictor's options: lm, config, ...).
local function run(members, inputs, opts)
  local elapsed, call_opts = {}, opts.call
  -- one closure for the whole panel (tide.map hands it each member), not one per critic
  local function job(m)
    local name, critic = m[1], m[2]
    local t0 = core.now()
    local ok, res = pcall(critic, inputs_for(critic, inputs, m[3]), call_opts)
    elapsed[name] = core.now() - t0
    if not ok then error(res, 0) end
    if type(res) ~= "table" then
      error(core.error{kind = "panel", message = string.format(
        "critic '%s' returned %s, not a table of fields", name, type(res))}, 0)
    end
    return res
  end
  local t0 = core.now()
  local out = core.map(members, job, {limit = opts.limit, return_exceptions = not opts.fail})
  local wall = core.now() - t0
  local results, errors, sum = {}, {}, 0
  for i, m in ipairs(members) do
    local name, res = m[1], out[i]
    results[name] = res
    if core.is_error(res) then errors[name] = res end
    sum = sum + (elapsed[name] or 0)
  end
  local timings = {parallel = wall, sum = sum, speedup = wall > 0 and sum / wall or nil,
                   critics = elapsed}
  return results, errors, timings
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function all_failed_error(errors, total)
  local parts = {}
  for _, name in ipairs(ordered_names(errors)) do
    parts[#parts + 1] = name .. ": " .. tostring(errors[name].message or errors[name])
  end
  return core.error{kind = "panel", errors = errors, message = string.format(
    "all %d critics failed (%s)", total, table.concat(parts, "; "))}
end

-- ---- Panel -------------------------------------------------------------------------

local Panel = {}
Panel.__index = Panel
Panel.__name = "tide.fanout.Panel"

local POLICIES = {drop = true, fail = true}

local function check_critics(critics)
  if type(critics) ~= "table" then
    check.misuse("tide.fanout.Panel: critics must be a list of {name, critic} pairs")
  end
  local list, seen = {}, {}
  for i, pair in ipairs(critics) do
    if type(pair) ~= "table" or type(pair[1]) ~= "string" or not check.callable(pair[2]) then
      check.misuse(string.format(
        "tide.fanout.Panel: critics[%d] must be {name, predictor or function}", i))
    end
    if seen[pair[1]] then
      check.misuse(string.format("tide.fanout.Panel: two critics are named '%s'", pair[1]))
    end
    seen[pair[1]] = true
    list[i] = {pair[1], pair[2]}
  end
  if next(critics) ~= nil and #list == 0 then
    check.misuse("tide.fanout.Panel: critics must be a list of {name, critic} pairs, not a " ..
      "map (the list keeps their order)")
  end
  return list
end

--- tide.fanout.Panel{critics = {{name, critic}, ...}, weights, priority, labels,
-- aggregate = "function" (default) | false (fan-out only) | a predictor (LM
-- aggregation) | function(results, inputs, panel) → fields, on_failure = "drop" |
-- "fail", limit}
function M.Panel(opts)
  check.type("Panel", 1, opts, "table")
  local on_failure = opts.on_failure or "drop"
  if not POLICIES[on_failure] then
    check.misuse("tide.fanout.Panel: on_failure must be \"drop\" or \"fail\", got " ..
      tostring(on_failure))
  end
  local aggregate = opts.aggregate
  if aggregate == nil then aggregate = "function" end
  if not (aggregate == "function" or aggregate == false or check.callable(aggregate)) then
    check.misuse("tide.fanout.Panel: aggregate must be \"function\", false, a predictor or a function")
  end
  if opts.weights ~= nil and type(opts.weights) ~= "table" then
    check.misuse("tide.fanout.Panel: weights must be a table of name = weight")
  end
  if opts.limit ~= nil and (math.type(opts.limit) ~= "integer" or opts.limit < 1) then
    check.misuse("tide.fanout.Panel: limit must be a positive integer")
  end
  return setmetatable({
    critics = check_critics(opts.critics),
    weights = opts.weights,
    priority = opts.priority,
    labels = opts.labels,
    aggregate = aggregate,
    on_failure = on_failure,
    limit = opts.limit,
  }, Panel)
end

-- The nine-value (or 3×k) inputs of an LM aggregator: every critic's fields, a
-- failed critic's as "unavailable" with its error as feedback.
local function aggregator_inputs(self, results, inputs)
  local args = {}
  for k, v in pairs(inputs) do args[k] = v end
  for _, c in ipairs(self.critics) do
    local name, res = c[1], results[c[1]]
    if core.is_error(res) then
      args[name .. "_score"] = "unavailable (the critic failed)"
      args[name .. "_feedback"] = "the critic failed: " .. tostring(res.message or res)
      args[name .. "_approved"] = false
    else
      for k, v in pairs(res) do
        if type(k) == "string" and k ~= "completions" then
          if k == "score" or k == "feedback" or k == "approved" then k = name .. "_" .. k end
          args[k] = v
        end
      end
    end
  end
  return args
end

--- The panel's verdict from the critics' results.
local function verdict(self, results, errors, inputs, call_opts)
  local fields = {}
  if self.aggregate == "function" then
    local score = M.weighted_score(results, self.weights)
    fields.overall_score = score and round(score)
    fields.approved = M.all_approve(results)
    fields.combined_feedback = M.prioritized_feedback(results, self.priority, self.labels)
  elseif self.aggregate ~= false then
    local agg = self.aggregate
    local out
    if type(agg) == "table" and agg.signature then
      out = agg(aggregator_inputs(self, results, inputs), call_opts)
    else
      out = agg(results, inputs, self)
    end
    if type(out) ~= "table" then
      error(core.error{kind = "panel", message = "the aggregator returned " .. type(out) ..
        ", not a table of fields"}, 0)
    end
    for k, v in pairs(out) do
      if type(k) == "string" and k ~= "completions" then fields[k] = v end
    end
    fields.aggregator = out
    -- The panel's invariant, whatever the aggregator said: no approval over a
    -- critic that failed or did not approve.
    if fields.approved ~= nil then
      fields.approved = fields.approved == true and M.all_approve(results)
    end
  end
  if next(errors) ~= nil and fields.approved ~= nil then fields.approved = false end
  return fields
end

--- Runs members (a list of {name, critic, extra}) and makes the Prediction;
-- call_opts go to every critic and to an LM aggregator.
local function judge(self, members, inputs, call_opts)
  local results, errors, timings = run(members, inputs,
    {limit = self.limit, fail = self.on_failure == "fail", call = call_opts})
  if #members > 0 and count(errors) == #members then
    error(all_failed_error(errors, #members), 0)
  end
  local ok_results = {}
  for name, res in pairs(results) do
    if not core.is_error(res) then ok_results[name] = res end
  end
  local fields
  if #members == 0 then
    fields = {approved = false, combined_feedback = "No critics ran."}
  else
    fields = verdict(self, results, errors, inputs, call_opts)
  end
  fields.critics = ok_results
  fields.errors = errors
  fields.timings = timings
  return prediction.prediction(fields)
end

--- panel(inputs [, opts]) → Prediction{overall_score, approved, combined_feedback,
-- critics, errors, timings}.  opts (lm, config, ...) go to every critic, as a
-- predictor's call options, and to an LM aggregator.
function Panel:__call(inputs, opts)
  if type(inputs) ~= "table" then
    check.fail("panel", 1, "table of inputs expected, got " .. type(inputs))
  end
  check.type("panel", 2, opts, "table", true)
  if callbacks.on then   -- the one test a call pays when no callback is configured
    local heard = callbacks.list()
    if heard then
      return callbacks.scope(heard, "module", "Panel", self, inputs, judge, self, self.critics, inputs, opts)
    end
  end
  return judge(self, self.critics, inputs, opts)
end

--- The predictors inside (for Module-style walking and set_lm).
function Panel:named_predictors()
  local out = {}
  for _, c in ipairs(self.critics) do
    if type(c[2]) == "table" and c[2].named_predictors then
      for _, np in ipairs(c[2]:named_predictors()) do
        out[#out + 1] = {np[1] == "self" and c[1] or (c[1] .. "." .. np[1]), np[2]}
      end
    end
  end
  local agg = self.aggregate
  if type(agg) == "table" and agg.named_predictors then
    for _, np in ipairs(agg:named_predictors()) do
      out[#out + 1] = {np[1] == "self" and "aggregator" or ("aggregator." .. np[1]), np[2]}
    end
  end
  return out
end

function Panel:set_lm(lm)
  for _, np in ipairs(self:named_predictors()) do np[2]:set_lm(lm) end
end

-- ---- dynamic fan-out over perspectives -------------------------------------------------

local Perspectives = {}
Perspectives.__index = Perspectives
Perspectives.__name = "tide.fanout.Perspectives"

--- tide.fanout.Perspectives{critic = predictor with a `perspective` input (or a
-- function), limit, weights, priority, aggregate, on_failure, input = "perspective"}:
-- one critic run once per perspective of each call's list.
--   review{content = draft, perspectives = {"security", "legal", "tone"}}
function M.Perspectives(opts)
  check.type("Perspectives", 1, opts, "table")
  if not check.callable(opts.critic) then
    check.misuse("tide.fanout.Perspectives: critic must be a predictor or a function")
  end
  local panel = M.Panel{critics = {}, weights = opts.weights, priority = opts.priority,
    labels = opts.labels, aggregate = opts.aggregate, on_failure = opts.on_failure,
    limit = opts.limit}
  return setmetatable({panel = panel, critic = opts.critic,
                       input = opts.input or "perspective"}, Perspectives)
end

--- perspectives(inputs [, opts]): opts go to each critic run, as in a Panel.
function Perspectives:__call(inputs, opts)
  if type(inputs) ~= "table" then
    check.fail("perspectives", 1, "table of inputs expected, got " .. type(inputs))
  end
  check.type("perspectives", 2, opts, "table", true)
  local list = inputs.perspectives
  if type(list) ~= "table" then
    check.misuse("perspectives: the call needs perspectives = {\"name\", ...}")
  end
  local members, seen = {}, {}
  for i, p in ipairs(list) do
    if type(p) ~= "string" then
      check.misuse(string.format("perspectives: perspectives[%d] must be a string", i))
    end
    if not seen[p] then
      seen[p] = true
      members[#members + 1] = {p, self.critic, {[self.input] = p}}
    end
  end
  if callbacks.on then
    local heard = callbacks.list()
    if heard then
      return callbacks.scope(heard, "module", "Perspectives", self, inputs, judge, self.panel, members, inputs, opts)
    end
  end
  return judge(self.panel, members, inputs, opts)
end

function Perspectives:named_predictors()
  if type(self.critic) == "table" and self.critic.named_predictors then
    return {{"critic", self.critic}}
  end
  return {}
end

function Perspectives:set_lm(lm)
  for _, np in ipairs(self:named_predictors()) do np[2]:set_lm(lm) end
end

return M
