-- The soak: panels of critics against mockllm for a bounded time, with faults
-- injected into a share of the calls.  Reports calls completed, faults survived,
-- errors by kind, and RSS and open descriptors at the start and the end.
--
--   make soak                                   (SOAK_SECONDS=600, SOAK_FAULT_RATE=0.05)
--   scripts/with_mockllm build/tide scripts/soak.lua --seconds 60 --fault-rate 0.05
--       [--panels 1000] [--seed 1] [--report-every 15]
local tide = require "tide"
local script = require "tide.script"

local opts = script.options(arg, {seconds = true, fault_rate = true, panels = true, seed = true,
                                  report_every = true})
local base = os.getenv("MOCKLLM_URL")
if not base then script.exit_usage("soak: run it with scripts/with_mockllm (MOCKLLM_URL)") end
local seconds = tonumber(opts.seconds or os.getenv("SOAK_SECONDS") or 600)
local fault_rate = tonumber(opts.fault_rate or os.getenv("SOAK_FAULT_RATE") or 0.05)
local panels_per_round = math.tointeger(tonumber(opts.panels or 1000))
local report_every = tonumber(opts.report_every or 15)
math.randomseed(tonumber(opts.seed or 1))

-- ---- process figures ------------------------------------------------------------------

local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local id = f:read("a"):match("^(%d+)")
  f:close()
  return id
end
local PID = pid()

local function rss_kib()
  local f = assert(io.open("/proc/" .. PID .. "/status"))
  local kib = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kib
end

-- → descriptors that are not sockets, and sockets (curl keeps idle connections
-- for reuse, so their count follows the load of the moment).
local function open_fds()
  local p = io.popen("ls -l /proc/" .. PID .. "/fd 2>/dev/null")
  local files, sockets = -1, 0   -- -1: the pipe to ls
  for line in p:lines() do
    if line:find("socket:", 1, true) then
      sockets = sockets + 1
    elseif line:find("->", 1, true) then
      files = files + 1
    end
  end
  p:close()
  return files, sockets
end

-- ---- the LMs: a healthy one, and one per injected fault -------------------------------------

-- Faults that fail once and then answer (the LM's retry recovers them), and faults
-- that persist (the critic fails, the panel degrades).
local FAULTS = {
  {name = "429 then ok", scenario = "status=429;retry_after=0", once = true},
  {name = "500 then ok", scenario = "status=500", once = true},
  {name = "529 then ok", scenario = "status=529", once = true},
  {name = "reset mid-body then ok", scenario = "fault=reset_body", once = true},
  {name = "truncated then ok", scenario = "fault=truncate", once = true},
  {name = "503", scenario = "status=503"},
  {name = "malformed JSON", scenario = "fault=malformed"},
  {name = "read timeout", scenario = "fault=hang"},
  {name = "blocked", scenario = "fault=blocked"},
}

local function make_lm(headers)
  return tide.LM("openai/mock", {api_key = "soak", base_url = base .. "/v1", cache = false,
    num_retries = 2, timeout = 0.5, headers = headers, history_limit = 100})
end

local healthy = make_lm()
local counter = 0

-- The LM for one critic call: usually the healthy one; with fault_rate, one that
-- injects a fault (a fresh fail_first key for the faults that happen once).
local function pick()
  if math.random() >= fault_rate then return healthy, nil end
  local fault = FAULTS[math.random(#FAULTS)]
  local sc = fault.scenario
  if fault.once then
    counter = counter + 1
    sc = "fail_first=1;key=soak" .. counter .. ";" .. sc
  end
  return make_lm{["X-Mock-Scenario"] = sc}, fault
end

-- ---- the panel ------------------------------------------------------------------------------------

local injected, survived, by_kind, raised = {}, 0, {}, 0
local calls, panels, degraded = 0, 0, 0

local function critic(sig)
  local p = tide.Predict(sig)
  return function(inputs)
    local lm, fault = pick()
    calls = calls + 1
    if fault then injected[fault.name] = (injected[fault.name] or 0) + 1 end
    local ok, r = pcall(p, {content = inputs.content, context = inputs.context,
                            requirements = inputs.requirements, lm = lm})
    if fault then survived = survived + 1 end   -- the process and the panel go on either way
    if not ok then error(r, 0) end
    return r
  end
end

local panel = tide.fanout.Panel{
  critics = {{"technical", critic(tide.critics.technical)}, {"style", critic(tide.critics.style)},
             {"completeness", critic(tide.critics.completeness)}},
  weights = tide.critics.weights, priority = tide.critics.priority, labels = tide.critics.labels,
}

local function round(n)
  local drafts = {}
  for i = 1, panels_per_round do drafts[i] = "draft " .. n .. "." .. i end
  local results = tide.map(drafts, function(d)
    return panel{content = d, context = "B2B SaaS", requirements = "a call to action"}
  end, {return_exceptions = true, limit = 256})
  for _, r in ipairs(results) do
    panels = panels + 1
    if tide.is_error(r) then
      raised = raised + 1
      by_kind["panel: " .. r.kind] = (by_kind["panel: " .. r.kind] or 0) + 1
    elseif next(r.errors) then
      degraded = degraded + 1
      for _, e in pairs(r.errors) do by_kind[e.kind] = (by_kind[e.kind] or 0) + 1 end
    end
  end
end

-- ---- run --------------------------------------------------------------------------------------------

local t0 = tide.now()
for i = 1, 3 do round(-i) end              -- warm-up: pools, caches, the allocator's arenas
collectgarbage()
collectgarbage()
local rss0, fds0, socks0 = rss_kib(), open_fds()
local heap0 = collectgarbage("count")
local samples = {}
local next_report = tide.now() + report_every
local n = 1
while tide.now() - t0 < seconds do
  round(n)
  n = n + 1
  if tide.now() >= next_report then
    collectgarbage()
    samples[#samples + 1] = rss_kib()
    local files, sockets = open_fds()
    io.stderr:write(string.format(
      "  %4.0f s: %d calls, %d panels, RSS %d KiB, Lua heap %.0f KiB, %d files, %d sockets\n",
      tide.now() - t0, calls, panels, samples[#samples], collectgarbage("count"), files, sockets))
    next_report = tide.now() + report_every
  end
end
collectgarbage()
collectgarbage()
local rss1, fds1, socks1 = rss_kib(), open_fds()
local heap1 = collectgarbage("count")
local wall = tide.now() - t0

local injected_total = 0
for _, c in pairs(injected) do injected_total = injected_total + c end
print(string.format("soak: %.0f s, %d critic calls (%.0f/s) in %d panels, fault rate %.0f%%",
  wall, calls, calls / wall, panels, fault_rate * 100))
print(string.format("faults injected: %d, survived: %d (the process and every other call went on)",
  injected_total, survived))
local names = {}
for k in pairs(injected) do names[#names + 1] = k end
table.sort(names)
for _, k in ipairs(names) do print(string.format("  %-24s %d", k, injected[k])) end
print(string.format("panels degraded (a critic failed, the others kept): %d; panels failed: %d",
  degraded, raised))
local kinds = {}
for k in pairs(by_kind) do kinds[#kinds + 1] = k end
table.sort(kinds)
for _, k in ipairs(kinds) do print(string.format("  errors of kind %-16s %d", k, by_kind[k])) end
print(string.format("RSS after warm-up %d KiB, at the end %d KiB (%+.1f%%); the last minutes: %s",
  rss0, rss1, (rss1 - rss0) * 100 / rss0, table.concat(samples, " ", math.max(1, #samples - 3))))
print(string.format("Lua heap after a full collection: %.0f KiB after warm-up, %.0f KiB at the end",
  heap0, heap1))
print(string.format("open descriptors after warm-up %d (+ %d sockets), at the end %d (+ %d sockets;" ..
  " curl keeps idle connections for reuse)", fds0, socks0, fds1, socks1))
local s = tide.stats()
print(string.format("engine at the end: %d tasks (the script's own), %d transfers, %d timers, " ..
  "%d references", s.tasks, s.transfers, s.timers, s.refs))
