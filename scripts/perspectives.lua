-- Dynamic fan-out: one generic critic, run once per perspective; the list of
-- perspectives changes from call to call.
--
--   scripts/with_mockllm build/tide scripts/perspectives.lua security legal "brand voice"
--   build/tide scripts/perspectives.lua --file perspectives.txt --limit 4 --model openai/gpt-4o-mini
local tide = require "tide"
local script = require "tide.script"

local opts, rest = script.setup(arg, "scripts/perspectives.lua",
  {file = true, limit = true, draft = true})

local perspectives = {}
for _, p in ipairs(rest) do perspectives[#perspectives + 1] = p end
if opts.file then
  for line in io.lines(opts.file) do
    line = line:match("^%s*(.-)%s*$")
    if line ~= "" and not line:match("^#") then perspectives[#perspectives + 1] = line end
  end
end
if #perspectives == 0 then
  perspectives = {"technical accuracy", "tone for a finance audience", "legal risk",
                  "clarity of the call to action", "brevity"}
end

local draft = opts.draft and assert(io.open(opts.draft)):read("a") or
  "Ledgerly matches 95% of your transactions automatically, so your month-end close " ..
  "takes 3 days instead of 10. Can we show you how next Tuesday?"

local critic = tide.Predict(tide.Signature(
  "content, perspective -> score: int, feedback, approved: bool",
  "Evaluate the content strictly from the given perspective. Score it from 0 to 100, " ..
  "say what to change, and approve only if it has no problem from that perspective."))

local limit = tonumber(opts.limit) or 8
local review = tide.fanout.Perspectives{critic = critic, limit = math.tointeger(limit)}
local r = review{content = draft, perspectives = perspectives}

for _, p in ipairs(perspectives) do
  local c = r.critics[p]
  if c then
    print(string.format("  %-32s %3d  %s", p, c.score, c.approved and "approved" or "not approved"))
  else
    print(string.format("  %-32s failed: %s", p, tostring(r.errors[p])))
  end
end
print(string.format("overall %s, approved %s", tostring(r.overall_score), tostring(r.approved)))
print(r.combined_feedback)
print(string.format("%d perspectives, at most %d at once: %.3f s (the critics' own times add to %.3f s)",
  #perspectives, limit, r.timings.parallel, r.timings.sum))
