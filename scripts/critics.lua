-- The founding example: technical, style and completeness critics score one draft
-- in parallel; their results are merged by a function, then by an LM.
--
--   make demo                                                   (offline, mockllm)
--   TIDE_MODEL=openai/gpt-4o-mini build/tide scripts/critics.lua
--   build/tide scripts/critics.lua --model anthropic/claude-3-5-haiku-latest --draft FILE
local tide = require "tide"
local script = require "tide.script"

local opts, _, lm = script.setup(arg, "scripts/critics.lua", {draft = true})

local draft = [[
Subject: Cut your month-end close from 10 days to 3

Hi Dana,

Finance teams like yours at Northwind spend most of the month-end close reconciling
spreadsheets by hand. Ledgerly connects to your ERP and bank feeds, matches 95% of
transactions automatically and flags the rest for review, so the close takes days,
not weeks. Customers such as Acme Logistics closed their books in 3 days last quarter.

Would a 20-minute walkthrough next Tuesday or Wednesday work for you?

Best,
Sam]]
if opts.draft then
  local f = assert(io.open(opts.draft, "r"))
  draft = f:read("a")
  f:close()
end

local inputs = {
  content = draft,
  context = "B2B SaaS cold outreach email to a finance director at a mid-size company",
  requirements = "a personalised opening, a concrete benefit with a number, social proof, " ..
    "a clear call to action with a proposed time",
}

local function show(title, panel)
  local calls_before = #lm.history
  local r = panel(inputs)
  local cached = 0
  for i = calls_before + 1, #lm.history do
    if lm.history[i].cached then cached = cached + 1 end
  end
  print(("== %s "):format(title) .. ("="):rep(60 - #title))
  for _, name in ipairs(tide.critics.priority) do
    local c = r.critics[name]
    if c then
      print(string.format("  %-13s %3d  %s", name, c[name .. "_score"],
        c[name .. "_approved"] and "approved" or "not approved"))
    else
      print(string.format("  %-13s failed: %s", name, tostring(r.errors[name])))
    end
  end
  print(string.format("  overall score  %s", tostring(r.overall_score)))
  print(string.format("  approved       %s", tostring(r.approved)))
  print("  combined feedback:")
  for line in tostring(r.combined_feedback):gmatch("[^\n]+") do print("    " .. line) end
  print(string.format("  parallel section %.3f s; the critics' own times add to %.3f s (%.1fx)%s",
    r.timings.parallel, r.timings.sum, r.timings.speedup or 0,
    cached > 0 and string.format("; %d replies from the cache", cached) or ""))
end

show("function aggregation", tide.critics.panel())
show("LM aggregation", tide.critics.panel{aggregate = "lm"})
print(string.format("%d LM calls, %d tokens", #lm.history, lm.usage.total))
