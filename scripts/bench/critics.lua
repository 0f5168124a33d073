--- critics.lua: the tide side of workload 2, the founding example.
--
--   tide   scripts/bench/critics.lua URL N [--latency-ms L] [--client NAME]
--   lua5.4 scripts/bench/critics.lua ...   (LUA_PATH/LUA_CPATH pointing at lua/ and build/lib/)
--
-- N/3 panels of three typed critics (technical, style, completeness) over one draft,
-- all panels gathered at once; each panel runs its critics in parallel and gives its
-- verdict by function: weighted score 0.4/0.3/0.3, all must approve, the feedback of
-- the critics that did not approve, technical → completeness → style.  The critics,
-- the draft and the verdict are python/critics.py's and node/critics_ax.mjs's, so the
-- prompts are byte for byte the ones the Python port sends.  Prints one JSON line in
-- curl_floor's shape, with n the number of LM calls.

local tide = require "tide"
-- measure.lua sits beside this script
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"

local DRAFT = "Our platform cuts onboarding time by 40% with automated checklists, role-based " ..
  "templates and a weekly digest for managers. Teams at three pilot customers went " ..
  "live in nine days instead of fifteen, and support tickets in the first month " ..
  "fell by a quarter. Book a 20-minute demo to see it on your own data."
local CONTEXT = "B2B SaaS outreach email to heads of operations"

local CRITICS = {   -- name, instructions, weight
  {"technical", "Evaluate the content from a TECHNICAL accuracy perspective.", 0.4},
  {"style", "Evaluate the content's STYLE: clarity, tone and concision.", 0.3},
  {"completeness", "Evaluate whether the content is COMPLETE for its context.", 0.3},
}
local PRIORITY = {"technical", "completeness", "style"}

local function usage()
  io.stderr:write("usage: critics.lua URL N [--latency-ms L] [--client NAME]\n")
  os.exit(2)
end

local url, n = arg[1], math.tointeger(tonumber(arg[2] or ""))
if not url or not n or n < 1 then usage() end
local latency_ms, client
do
  local i = 3
  while arg[i] do
    if arg[i] == "--latency-ms" then latency_ms = math.tointeger(tonumber(arg[i + 1] or ""))
    elseif arg[i] == "--client" then client = arg[i + 1]
    else usage() end
    i = i + 2
  end
end
client = client or (tide.current() and "tide" or "tide-lua5.4")
local panels = math.max(1, n // 3)

local lm = tide.LM("openai/mock", {
  base_url = url:gsub("/chat/completions$", ""), api_key = "bench-key", cache = false,
  num_retries = 0, history_limit = 100,
  headers = latency_ms and {["x-mock-scenario"] = "latency=" .. latency_ms} or nil,
})

local members, weights = {}, {}
for i, c in ipairs(CRITICS) do
  local name = c[1]
  local sig = tide.Signature(string.format(
    "content, context -> %s_score: int, %s_feedback, %s_approved: bool", name, name, name), c[2])
  members[i] = {name, tide.Predict(sig, {lm = lm})}
  weights[name] = c[3]
end

local panel = tide.fanout.Panel{critics = members, weights = weights, priority = PRIORITY,
                                on_failure = "fail"}

local inputs = {content = DRAFT, context = CONTEXT}
local slots = {}
for i = 1, panels do slots[i] = i end

local function batch()
  local t0 = tide.now()
  local verdicts = tide.map(slots, function() return panel(inputs) end)
  local wall = tide.now() - t0
  local ok = 0
  for _, v in ipairs(verdicts) do
    if math.type(v.overall_score) == "integer" then ok = ok + 3 end
  end
  return ok, wall
end

local meter = measure.start()
local ok, wall = tide.run(batch)
collectgarbage()   -- as fanout.lua: the batch's garbage is freed inside the measurement
io.write(meter:line(client, 3 * panels, ok, wall))
if ok ~= 3 * panels then os.exit(1) end
