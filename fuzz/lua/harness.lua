--- The randomized Lua harness: runs the targets of targets.lua on seeded hostile
-- and round-trip cases, with a time budget per case, and counts what broke.
--
--   local harness = dofile("fuzz/lua/harness.lua")
--   local report = harness.run{seed = 1, cases = 2000, max_size = 2048}
--   -- or {seconds = 300} for the long run; report.findings lists what broke
--
-- A case over its budget is stopped by a count hook, so a parser that goes
-- quadratic (or loops) is a finding, not a hung run.
-- The siblings are loaded by path, so the harness adds no names to package.loaded
-- or package.path of the busted run it may be part of.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local function sibling(name, ...) return assert(loadfile(here .. "/" .. name .. ".lua"))(...) end
local Rng = sibling("rng")
local targets = sibling("targets", sibling("gen"), Rng)

local M = {names = targets.names}

local BUDGET_MSG = "fuzz: case over its time budget"

-- Runs fn(arg) under a deadline; returns nil, or the failure text.  With trace,
-- the lines run in the parser files are noted (slower: only some cases do it).
local function guarded(fn, arg, budget, lines, trace)
  local deadline = os.clock() + budget
  debug.sethook(function(ev, line)
    if ev == "line" then
      local src = debug.getinfo(2, "S").source
      if lines[src] then lines[src][line] = true end
    elseif os.clock() > deadline then
      error(BUDGET_MSG, 0)
    end
  end, trace and "l" or "", 10000)
  local ok, err = pcall(fn, arg)
  debug.sethook()
  if ok then return nil end
  err = tostring(err)
  if err:find(BUDGET_MSG, 1, true) then return "over " .. budget .. " s" end
  return err
end

-- Line coverage of the parser files: the ones a target exercises.
local COVERED = {"tide/adapters/chat.lua", "tide/adapters/json.lua", "tide/adapters/coerce.lua",
                 "tide/adapters/common.lua", "tide/adapters/pyjson.lua", "tide/sse.lua"}

local function coverage_table(enabled)
  local lines = {enabled = enabled}
  if not enabled then return lines end
  for _, rel in ipairs(COVERED) do
    local path = package.searchpath(rel:gsub("%.lua$", ""):gsub("/", "."), package.path)
    if path then lines["@" .. path] = {} end
  end
  return lines
end

local function count_lines(lines)
  local n = 0
  for src, set in pairs(lines) do
    if src ~= "enabled" then for _ in pairs(set) do n = n + 1 end end
  end
  return n
end

--- run{seed, cases | seconds, max_size, budget, targets, coverage, on_finding}
-- → {targets = {name = {cases, failures, seconds}}, findings = {...}, lines}
function M.run(opts)
  local names = opts.targets or targets.names
  local rng = Rng.new(opts.seed or 1)
  local max = opts.max_size or 4096
  local budget = opts.budget or 2
  local lines = coverage_table(opts.coverage)
  local report = {targets = {}, findings = {}, seed = opts.seed or 1}
  for _, name in ipairs(names) do
    local t, stats = targets[name], {cases = 0, failures = 0, seconds = 0}
    local t0 = os.clock()
    local stop = opts.seconds and t0 + opts.seconds or math.huge
    local i = 0
    while (opts.cases and i < opts.cases) or (not opts.cases and os.clock() < stop) do
      i = i + 1
      local input, err
      if i % 4 == 0 then   -- one case in four is a round trip of a valid value
        local case_seed = rng:next()
        input = case_seed
        err = guarded(function(s) t.roundtrip(Rng.new(s)) end, case_seed, budget, lines,
                      lines.enabled and i % 16 == 0)
      else
        input = t.hostile(rng, max)
        -- tracing costs ~10x: only small inputs are traced, so it cannot eat the budget
        local text = type(input) == "table" and input.text or input
        err = guarded(t.check, input, budget, lines, lines.enabled and i % 16 == 1 and #text <= 8192)
      end
      stats.cases = stats.cases + 1
      if err then
        stats.failures = stats.failures + 1
        local f = {target = name, case = i, input = input, error = err}
        report.findings[#report.findings + 1] = f
        if opts.on_finding then opts.on_finding(f) end
      end
    end
    stats.seconds = os.clock() - t0
    report.targets[name] = stats
  end
  report.lines = count_lines(lines)
  return report
end

--- The text of a case's input, for a finding's file.
function M.input_text(f)
  local i = f.input
  if type(i) == "table" then
    local t = {}
    for k, v in pairs(i) do
      if k ~= "sig" then t[#t + 1] = k .. "=" .. string.format("%q", tostring(v)) end
    end
    if i.sig then t[#t + 1] = "sig=" .. tostring(i.sig) end
    table.sort(t)
    return table.concat(t, "\n")
  end
  if type(i) == "number" then return "round trip, case seed " .. string.format("%d", i) end
  return i
end

return M
