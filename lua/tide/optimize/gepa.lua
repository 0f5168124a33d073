--- tide.GEPA{metric, reflection_lm, auto = "light" | "medium" | "heavy" |
-- max_metric_calls = n | max_full_evals = n, seed = 0, reflection_minibatch_size = 3,
-- candidate_selection_strategy = "pareto" | "current_best", skip_perfect_score = true,
-- use_merge = true, max_merge_invocations = 5, perfect_score = 1, ...}: reflective
-- prompt evolution, as DSPy's GEPA.
--
--   local metric = function(ex, pred) return {score = ..., feedback = "what was wrong"} end
--   local opt = tide.GEPA{metric = metric, reflection_lm = strong_lm, max_metric_calls = 200}
--   local compiled = opt:compile(program, {trainset = train, valset = val})
--
-- A pool of candidates (one instruction per predictor) starts with the program's
-- own, scored on every valset example.  Each iteration picks a candidate from the
-- Pareto front (the candidates best on at least one valset example, drawn in
-- proportion to how many; "current_best" takes the best mean) and one of its
-- predictors (round robin), runs it on a minibatch of the trainset with traces,
-- and shows the reflection LM the predictor's instruction and, per example, its
-- inputs, its outputs and the metric's feedback (a metric returning only a number
-- gives "This trajectory got a score of X.").  The reflection's `new_instruction`
-- replaces the predictor's; the new candidate is kept when it beats its parent on
-- the same minibatch, and is then scored on the whole valset.  Merge (programs of
-- several predictors): two front candidates that changed different predictors of a
-- common ancestor are combined, tried on a few valset examples, and kept when
-- they do no worse than both.  The search runs until the budget: every metric call
-- and every reflection counts against max_metric_calls (so LM calls of a one-
-- predictor program stay under it); max_full_evals n is n·(#trainset + #valset)
-- calls; auto is DSPy's auto budget (6, 12 or 18 candidates).  The best mean
-- valset score wins.
local check = require "tide.check"
local settings = require "tide.settings"
local predict = require "tide.predict"
local rng = require "tide.optimize.rng"
local program_copy = require("tide.optimize.program").copy
local run_mod = require "tide.optimize.run"

local M = {}

local GEPA = {}
GEPA.__index = GEPA
GEPA.save_log = run_mod.save_log
GEPA.__name = "tide.GEPA"

local NAME = "GEPA"
local AUTO = run_mod.AUTO_CANDIDATES
local POSITIVE = {integer = true, min = 1}

local REFLECT = "I gave an assistant the instruction below (current_instruction_doc) for a task. " ..
  "dataset_with_feedback shows task inputs it was given, the responses it generated, and feedback " ..
  "on how each response could be better. Work out from the inputs what the task is and the format " ..
  "of its inputs; read every response with its feedback and collect the facts about the task and " ..
  "any general strategy they reveal. Then write a new, self-contained instruction for the assistant " ..
  "that includes all of that, as it will not see these examples again."

function M.new(opts)
  opts = check.type(NAME, 1, opts, "table")
  run_mod.check_common(NAME, opts, true)
  local given = 0
  for _, k in ipairs{"auto", "max_metric_calls", "max_full_evals"} do
    if opts[k] ~= nil then given = given + 1 end
  end
  if given ~= 1 then
    check.fail(NAME, 1, "give exactly one budget: auto = 'light' | 'medium' | 'heavy', max_metric_calls " ..
      "or max_full_evals")
  end
  run_mod.check_auto(NAME, opts.auto)
  check.number(NAME, "opts.max_full_evals", opts.max_full_evals, POSITIVE, true)
  check.number(NAME, "opts.reflection_minibatch_size", opts.reflection_minibatch_size, POSITIVE, true)
  check.number(NAME, "opts.max_merge_invocations", opts.max_merge_invocations, {integer = true, min = 0}, true)
  check.number(NAME, "opts.perfect_score", opts.perfect_score, {}, true)
  local lm = run_mod.check_lm(NAME, "opts.reflection_lm", opts.reflection_lm)
  local sel = opts.candidate_selection_strategy or "pareto"
  if sel ~= "pareto" and sel ~= "current_best" then
    check.fail(NAME, "opts.candidate_selection_strategy", "'pareto' or 'current_best' expected, got " ..
      tostring(sel))
  end
  return setmetatable({opts = opts, reflection_lm = lm, seed = opts.seed or 0, selection = sel,
    minibatch_size = opts.reflection_minibatch_size or 3,
    skip_perfect = opts.skip_perfect_score ~= false, perfect = opts.perfect_score or 1,
    use_merge = opts.use_merge ~= false, max_merges = opts.max_merge_invocations or 5}, GEPA)
end

--- DSPy's auto budget: the metric calls MIPROv2 would spend with n candidates.
function M.auto_budget(num_preds, n, valset_size)
  local trials = run_mod.trials_for(n, num_preds * 2)
  local minibatch, steps = 35, 5
  local total = valset_size + n * 5 + trials * minibatch
  local fulls = (trials + 1) // steps + 1 + (trials < steps and 1 or 0)
  return total + fulls * valset_size
end

--- The merge of candidates a and b, children of `ancestor`: each predictor's
-- instruction from the one that changed it (the better one's where both did or
-- neither), or nil unless each changed a predictor the other did not.
function M.merge_of(ancestor, a, b, names)
  local merged, from_a, from_b = {}, false, false
  for _, name in ipairs(names) do
    local ia, ib, base = a.instructions[name], b.instructions[name], ancestor.instructions[name]
    if ia ~= base and ib == base then
      merged[name], from_a = ia, true
    elseif ib ~= base and ia == base then
      merged[name], from_b = ib, true
    else
      merged[name] = a.score >= b.score and ia or ib
    end
  end
  return from_a and from_b and merged or nil
end

--- GEPA's markdown for one predictor's examples: inputs, outputs, feedback.
local function render(items)
  local out = {}
  local function section(level, title, value)
    out[#out + 1] = string.rep("#", level) .. " " .. title
    if type(value) == "table" then
      local keys = {}
      for k in pairs(value) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        out[#out + 1] = string.rep("#", level + 1) .. " " .. k
        out[#out + 1] = tostring(value[k])
        out[#out + 1] = ""
      end
    else
      out[#out + 1] = tostring(value)
      out[#out + 1] = ""
    end
  end
  for i, item in ipairs(items) do
    out[#out + 1] = "# Example " .. i
    section(2, "Inputs", item.inputs)
    section(2, "Generated Outputs", item.outputs)
    section(2, "Feedback", item.feedback)
  end
  return table.concat(out, "\n")
end

local function plain(t, skip)
  local out = {}
  for k, v in pairs(t) do
    if type(k) == "string" and k ~= skip then out[k] = tostring(v) end
  end
  return out
end

--- The reflective dataset of the predictor called `name` from minibatch rows: per
-- row, its first traced call (`names` maps the run's predictors to their names).
local function reflective(rows, names, name)
  local items = {}
  for _, row in ipairs(rows) do
    for _, step in ipairs(row.trace or {}) do
      if names[step[1]] == name then
        local feedback = row.feedback
        if feedback == nil then
          feedback = string.format("This trajectory got a score of %s.", tostring(row.score or 0))
        end
        items[#items + 1] = {inputs = plain(step[2]), outputs = plain(step[3], "completions"),
          feedback = tostring(feedback)}
        break
      end
    end
  end
  return items
end

local function instructions_of(program)
  local map, names = {}, {}
  for i, np in ipairs(program:named_predictors()) do
    names[i] = np[1]
    map[np[1]] = np[2].signature.instructions
  end
  return map, names
end

local function build(student, candidate)
  local p = program_copy(student)
  for _, np in ipairs(p:named_predictors()) do
    np[2].signature = np[2].signature:with_instructions(candidate.instructions[np[1]])
  end
  return p
end

--- opt:compile(program, {trainset, valset?}) → the program with the best candidate's instructions.
function GEPA:compile(program, opts)
  check.type("compile", 2, opts, "table")
  local trainset = run_mod.examples("compile", "trainset", opts.trainset, true)
  local valset = run_mod.examples("compile", "valset", opts.valset, false) or trainset
  run_mod.check_program("compile", program, {trainset = trainset, valset = valset})
  local reflection_lm = self.reflection_lm or program:named_predictors()[1][2].lm or settings.get("lm")
  local o = self.opts
  local budget = o.max_metric_calls
  if o.max_full_evals then budget = o.max_full_evals * (#trainset + #valset) end
  if o.auto then budget = M.auto_budget(#program:named_predictors(), AUTO[o.auto], #valset) end
  if budget < #valset then
    check.fail("compile", 1, string.format("a budget of %d metric calls cannot score the valset " ..
      "(%d examples) even once: raise it", budget, #valset))
  end
  local run_opts = setmetatable({max_metric_calls = budget}, {__index = o})
  local run = run_mod.new(NAME, run_opts)
  local r = rng.new(self.seed)
  local log = run.log
  log.budget = budget
  local pool = {}
  local best

  local function solved(c)
    for _, v in ipairs(c.scores) do
      if v < self.perfect then return false end
    end
    return true
  end

  local function best_candidate()
    local b
    for _, c in ipairs(pool) do
      if b == nil or c.score > b.score then b = c end
    end
    return b
  end

  local result = run:guard(function()
    local seed_instr, names = instructions_of(program)
    local function add(candidate, res, entry)
      candidate.scores, candidate.score = res.scores, res.mean
      candidate.index = #pool + 1
      pool[#pool + 1] = candidate
      entry.candidate, entry.score = candidate.index, candidate.score
      entry.instructions = candidate.instructions
      run:record(entry)
      best = best_candidate()
    end
    local first = run:evaluate(program, valset, "seed candidate", "valset")
    add({instructions = seed_instr, parent = nil, changed = {}}, first, {step = "seed"})

    -- the trainset in epochs of seeded shuffles, minibatch by minibatch
    local order, at = {}, 1
    local function minibatch()
      local out = {}
      for _ = 1, math.min(self.minibatch_size, #trainset) do
        if at > #order then order, at = r:sample(trainset, #trainset), 1 end
        out[#out + 1] = order[at]
        at = at + 1
      end
      return out
    end

    -- the Pareto front: per valset example, the candidates with its best score
    local function front_weights()
      local weights = {}
      for i = 1, #valset do
        local top
        for _, c in ipairs(pool) do
          if top == nil or c.scores[i] > top then top = c.scores[i] end
        end
        for _, c in ipairs(pool) do
          if c.scores[i] == top then weights[c.index] = (weights[c.index] or 0) + 1 end
        end
      end
      return weights
    end
    local function select()
      if self.selection == "current_best" then return best end
      local weights, total = front_weights(), 0
      for _, w in pairs(weights) do total = total + w end
      local x = r:below(total)
      for _, c in ipairs(pool) do
        local w = weights[c.index] or 0
        if x < w then return c end
        x = x - w
      end
      return best
    end

    local next_component = {}   -- round robin per candidate
    local merges, tried = 0, {}   -- merges made; the pairs already tried
    local reflector = predict.new("current_instruction_doc, dataset_with_feedback -> new_instruction",
      {instructions = REFLECT, lm = reflection_lm})

    local function try_merge()
      if not self.use_merge or merges >= self.max_merges or #names < 2 then return end
      local weights = front_weights()
      local front = {}
      for _, c in ipairs(pool) do
        if weights[c.index] then front[#front + 1] = c end
      end
      for a = 1, #front do
        for b = a + 1, #front do
          local ca, cb = front[a], front[b]
          local pair = ca.index .. ":" .. cb.index
          if ca.parent and ca.parent == cb.parent and not tried[pair] then
            tried[pair] = true
            local merged = M.merge_of(pool[ca.parent], ca, cb, names)
            if merged then
              merges = merges + 1
              local sample_n = math.min(5, #valset)
              local idx = {}
              for i = 1, #valset do idx[i] = i end
              idx = r:sample(idx, sample_n)
              local subset, sa, sb = {}, 0, 0
              for k, i in ipairs(idx) do
                subset[k] = valset[i]
                sa, sb = sa + ca.scores[i], sb + cb.scores[i]
              end
              if not run:affords(sample_n + #valset) then return end
              local cand = {instructions = merged, parent = ca.parent, changed = {}, merged_from = {ca.index, cb.index}}
              local sub = run:evaluate(build(program, cand), subset, "merge", "valset")
              if sub.sum >= math.max(sa, sb) then
                local full = run:evaluate(build(program, cand), valset, "merge: valset", "valset")
                add(cand, full, {step = "merge", parents = {ca.index, cb.index}})
              else
                run:record{step = "merge rejected", parents = {ca.index, cb.index}, score = sub.mean}
              end
              return
            end
          end
        end
      end
    end

    while true do
      local parent = select()
      local batch = minibatch()
      -- the parent on the batch, the reflection, the child on the batch, the child on the valset
      if not run:affords(2 * #batch + 1 + #valset) then break end
      local k = next_component[parent.index] or 1
      next_component[parent.index] = k % #names + 1
      local name = names[k]
      local built = build(program, parent)
      local built_names = {}
      for _, np in ipairs(built:named_predictors()) do built_names[np[2]] = np[1] end
      local before = run:evaluate(built, batch, "reflect on candidate " .. parent.index, "trainset")
      if self.skip_perfect and before.sum >= self.perfect * #batch then
        run:record{step = "skipped: perfect on the minibatch", parent = parent.index, score = before.mean}
      else
        local all = reflective(before.rows, built_names, name)
        if #all == 0 then
          run:record{step = "skipped: predictor not called", parent = parent.index, component = name}
        else
          run.other_calls = run.other_calls + 1
          local new = settings.with({usage_sink = run.usage}, function()
            return reflector({current_instruction_doc = parent.instructions[name],
              dataset_with_feedback = render(all)}, {config = {rollout_id = #pool}}).new_instruction
          end)
          local child = {instructions = {}, parent = parent.index, changed = {[name] = true}}
          for n2, text in pairs(parent.instructions) do child.instructions[n2] = text end
          child.instructions[name] = tostring(new)
          local after = run:evaluate(build(program, child), batch, "new candidate", "trainset")
          if after.sum > before.sum then
            local full = run:evaluate(build(program, child), valset, "new candidate: valset", "valset")
            add(child, full, {step = "reflection", parent = parent.index, component = name})
            try_merge()
          else
            run:record{step = "rejected", parent = parent.index, component = name, score = after.mean,
              instruction = child.instructions[name]}
          end
        end
      end
      if solved(best) then break end   -- every valset example at the perfect score: nothing to learn
    end
    return build(program, best)
  end, function() return best and build(program, best) or nil end)
  log.pareto = {}
  for i = 1, #valset do
    local top, who = nil, {}
    for _, c in ipairs(pool) do
      if top == nil or c.scores[i] > top then top, who = c.scores[i], {c.index}
      elseif c.scores[i] == top then who[#who + 1] = c.index end
    end
    log.pareto[i] = {score = top, candidates = who}
  end
  self.log = run:finish(best and {candidate = best.index, score = best.score} or nil)
  return result
end

return M
