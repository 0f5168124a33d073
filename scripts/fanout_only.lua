-- Fan-out only: the three critics of the founding example in parallel, each result
-- printed as it is, with no aggregation.  A failed critic is reported, the others kept.
--
--   scripts/with_mockllm build/tide scripts/fanout_only.lua
--   TIDE_MODEL=gemini/gemini-2.5-flash build/tide scripts/fanout_only.lua
local tide = require "tide"
local script = require "tide.script"

script.setup(arg, "scripts/fanout_only.lua")

local panel = tide.critics.panel{aggregate = false}
local r = panel{
  content = "Ledgerly matches 95% of your transactions automatically. Book a demo today!",
  context = "B2B SaaS outreach to finance directors",
  requirements = "a concrete benefit, social proof, a call to action",
}
for _, name in ipairs(tide.critics.priority) do
  if r.critics[name] then
    print(name, r.critics[name])
  else
    print(name, "failed: " .. tostring(r.errors[name]))
  end
end
print(string.format("parallel section %.3f s (the critics' own times add to %.3f s)",
  r.timings.parallel, r.timings.sum))
