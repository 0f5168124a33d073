--- report.lua: the time to write the HTML evaluation report, and its size.
--
--   build/tide scripts/bench/report.lua [ROWS] [RUNS]        (BENCH_QUICK=1: one run)
--
-- Issue 19's goal: the report of 10 000 rows written in at most 1 s, the file under
-- 5 MB.  The rows are those of a panel evaluation (three critics' scores and
-- feedback, drafts of a few hundred bytes, 2 % failures of three kinds, latencies
-- spread over two orders of magnitude), made here so that only the writer is
-- measured.  Prints one line per run and the best, with the targets beside them.
local tide = require "tide"
local html = require "tide.eval.html"

local n = math.tointeger(tonumber(arg[1] or "10000"))
local runs = math.tointeger(tonumber(arg[2] or (os.getenv("BENCH_QUICK") == "1" and "1" or "3")))

local WORDS = {"pricing", "onboarding", "latency", "contract", "renewal", "pilot", "security",
  "integration", "dashboard", "support", "roadmap", "migration"}

local function draft(i)
  local words = {}
  for k = 1, 60 do words[k] = WORDS[(i * 7 + k * 3) % #WORDS + 1] end
  return string.format("Hi Dana, about draft %d: ", i) .. table.concat(words, " ")
end

local function critic(name, i, spread)
  local score = 60 + (i * spread) % 36
  return {[name .. "_score"] = score, [name .. "_approved"] = score >= 70,
    [name .. "_feedback"] = "Tighten the second paragraph and name the " .. WORDS[i % #WORDS + 1] .. " owner."}
end

local KINDS = {{"server", "the server failed (500): Internal Server Error"},
  {"timeout", "the call took longer than 30 s"}, {"parse", "the reply had no [[ ## score ## ]] field"}}

local rows = {}
local errors, kinds = 0, {}
for i = 1, n do
  local row = {index = i, id = string.format("%016x", i * 2654435761),
    inputs = {content = draft(i), context = "B2B SaaS outreach", requirements = "a date and a price"},
    labels = {approved = i % 3 ~= 0},
    latency = 0.2 + (i * 37 % 1000) / 400 + (i % 997 == 0 and 20 or 0),
    usage = {input = 900, output = 120, total = 1020, calls = 3, cache_hits = 0},
    cost = 0.00042, cached = false, dataset_size = n}
  if i % 50 == 0 then
    local k = KINDS[i // 50 % #KINDS + 1]
    row.error = {kind = k[1], message = k[2] .. " (row " .. i .. ")"}
    row.score = 0
    errors = errors + 1
    kinds[k[1]] = (kinds[k[1]] or 0) + 1
  else
    local critics = {technical = critic("technical", i, 7), style = critic("style", i, 11),
      completeness = critic("completeness", i, 13)}
    local approved = critics.technical.technical_approved and critics.style.style_approved
    row.outputs = {overall_score = 75, approved = approved, critics = critics,
      combined_feedback = "Technical: fine. Style: " .. critics.style.style_feedback}
    row.score = approved == row.labels.approved and 1 or 0
  end
  rows[i] = row
end

local sum = 0
for _, row in ipairs(rows) do sum = sum + row.score end
local result = {score = sum / n, rows = rows, total = n, done = n, errors = errors, error_kinds = kinds,
  usage = {input = 900 * n, output = 120 * n, total = 1020 * n, calls = 3 * n, cache_hits = 0},
  cost = 0.00042 * n, wall_time = 600, ran = n, save_as = "results.jsonl", resumed = 0}

local path = os.tmpname()
local best, size = math.huge, 0
for r = 1, runs do
  local t0, c0 = tide.now(), os.clock()
  html.write(path, result, {dataset = "drafts.jsonl", model = "openai/gpt-4o-mini"})
  local wall, cpu = tide.now() - t0, os.clock() - c0
  local f = assert(io.open(path, "rb"))
  size = f:seek("end")
  f:close()
  best = math.min(best, wall)
  print(string.format("report  rows=%d run=%d  wall %.3f s  cpu %.3f s  %.2f MB", n, r, wall, cpu,
    size / 1e6))
end
os.remove(path)
print(string.format("report  rows=%d  best %.3f s (target <= 1 s: %s)  %.2f MB (target < 5 MB: %s)", n, best,
  best <= 1 and "met" or "MISSED", size / 1e6, size < 5 * 1024 * 1024 and "met" or "MISSED"))
