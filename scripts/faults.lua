-- Prints the fault catalogue as a Markdown table: fault × layer → outcome.
--   make faults        (into build/faults.md; make faults-doc regenerates docs/faults.md)
local tide = require "tide"
local mockllm = require "support.mockllm"
local faults = require "support.faults"

local t0 = tide.now()
local env = faults.start(mockllm)
local cells = faults.run_all(env, faults.cells())
env:stop()

-- table[fault][column] = list of {format, outcome, ok}
local grid, failures = {}, 0
local COLUMNS = {"request", "lm", "predict", "panel", "evaluate", "fails once (lm … evaluate)"}
for _, cell in ipairs(cells) do
  local col = cell.transient and COLUMNS[6] or cell.layer
  local ok, why = faults.check(cell)
  if not ok then failures = failures + 1 end
  grid[cell.fault.name] = grid[cell.fault.name] or {}
  local list = grid[cell.fault.name][col] or {}
  list[#list + 1] = {format = cell.format.name, outcome = cell.result.outcome, ok = ok, why = why}
  grid[cell.fault.name][col] = list
end

local function render(list)
  if not list then return "—" end
  local same, mark = true, "✓"
  for _, e in ipairs(list) do
    if e.outcome ~= list[1].outcome then same = false end
    if not e.ok then mark = "✗" end
  end
  if same then return string.format("%s %s", mark, list[1].outcome) end
  local parts = {}
  for _, e in ipairs(list) do parts[#parts + 1] = e.format .. ": " .. e.outcome end
  return mark .. " " .. table.concat(parts, "; ")
end

local out = {}
local function line(s) out[#out + 1] = s end
line("| fault | " .. table.concat(COLUMNS, " | ") .. " |")
line("|---|" .. ("---|"):rep(#COLUMNS))
for _, fault in ipairs(faults.FAULTS) do
  local row = {fault.name}
  for _, col in ipairs(COLUMNS) do row[#row + 1] = render(grid[fault.name][col]) end
  line("| " .. table.concat(row, " | ") .. " |")
end
local restarts = {}
for _, format in ipairs(faults.FORMATS) do
  local r = faults.restart(mockllm, format)
  if r.outcome ~= "recovered" then failures = failures + 1 end
  restarts[#restarts + 1] = string.format("%s: %s (%d/%d answered)", format.name, r.outcome,
    r.answered, r.calls)
end
line("| server restart during a run | — | " .. table.concat(restarts, "; ") .. " | — | — | — | — |")
print(table.concat(out, "\n"))
local s = tide.stats()
print(string.format("\n%d cells (3 wire formats each: openai, anthropic, gemini), %d failed; " ..
  "every cell ran beside a healthy call that kept its result; after the run: %d tasks, " ..
  "%d transfers, %d references left; %.1f s", #cells + 3, failures, s.tasks, s.transfers,
  s.refs, tide.now() - t0))
os.exit(failures == 0 and 0 or 1)
