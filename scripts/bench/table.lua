--- table.lua: turns the run script's records into the markdown tables of RESULTS.md.
--
--   lua5.4 scripts/bench/table.lua records.tsv
--
-- A record, tab-separated: contender n latency_ms run ok wall_s cpu_user_s cpu_sys_s
-- maxrss_kb server_cpu_us server_peak_in_flight.  Runs with n = 1 only give each
-- contender's resting RSS.

local FLOOR = "c-floor"

local records, order, workloads = {}, {}, {}
local path = arg[1] or error("usage: table.lua records.tsv")
for line in assert(io.open(path)):lines() do
  local f = {}
  for v in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = v end
  local r = {
    contender = f[1], n = tonumber(f[2]), latency = tonumber(f[3]), ok = tonumber(f[5]) or 0,
    wall = tonumber(f[6]), cpu = (tonumber(f[7]) or 0 / 0) + (tonumber(f[8]) or 0 / 0),
    user = tonumber(f[7]), sys = tonumber(f[8]), rss = tonumber(f[9]),
    server = tonumber(f[10]), peak = tonumber(f[11]),
  }
  records[#records + 1] = r
  if not order[r.contender] then
    order[#order + 1] = r.contender
    order[r.contender] = #order
  end
  local key = r.n .. "/" .. r.latency
  if r.n > 1 and not workloads[key] then
    workloads[key] = true
    workloads[#workloads + 1] = { n = r.n, latency = r.latency }
  end
end

local function median(xs)
  local s = {}
  for _, x in ipairs(xs) do
    if x == x then s[#s + 1] = x end   -- drop NaN: a run that printed nothing
  end
  if #s == 0 then return 0 / 0 end
  table.sort(s)
  local m = (#s + 1) // 2
  return #s % 2 == 1 and s[m] or (s[m] + s[m + 1]) / 2
end

local function pick(contender, n, latency)
  local out = {}
  for _, r in ipairs(records) do
    if r.contender == contender and r.n == n and (latency == nil or r.latency == latency) then
      out[#out + 1] = r
    end
  end
  return out
end

local function column(rs, field)
  local xs = {}
  for i, r in ipairs(rs) do xs[i] = r[field] or 0 / 0 end
  return xs
end

local function fmt(x, spec)
  if x ~= x then return "–" end
  return string.format(spec, x)
end

-- Resting RSS: the smallest peak RSS of the contender's N = 1 runs.
local baseline = {}
for _, c in ipairs(order) do
  local rss = column(pick(c, 1), "rss")
  table.sort(rss)
  baseline[c] = rss[1] or 0
end

local out = {}
local function emit(s) out[#out + 1] = s end

local function summary(c, w)
  local rs = pick(c, w.n, w.latency)
  if #rs == 0 then return nil end
  local walls = column(rs, "wall")
  table.sort(walls)
  local failed = 0
  for _, r in ipairs(rs) do failed = failed + (w.n - r.ok) end
  return {
    wall = median(walls), wall_min = walls[1], wall_max = walls[#walls],
    cpu = median(column(rs, "cpu")) * 1e6 / w.n,
    user = median(column(rs, "user")) * 1e6 / w.n,
    sys = median(column(rs, "sys")) * 1e6 / w.n,
    rss = median(column(rs, "rss")),
    server = median(column(rs, "server")) / w.n,
    peak = median(column(rs, "peak")),
    failed = failed, runs = #rs,
  }
end

emit("## Results per workload")
emit("")
emit("Medians over the runs. CPU is the client's user + system time, whole process, read")
emit("once the batch is over (connections still open), divided by N. \"RSS/call\" is")
emit("(peak RSS − the contender's peak RSS at N = 1) / N, in KiB: what each extra request")
emit("costs in memory while they are all in flight. Server CPU is mockllm's own, per request.")
emit("\"÷ floor\" is CPU/call over c-floor's in the same workload.")
for _, w in ipairs(workloads) do
  emit("")
  emit(string.format("### N = %d, latency %d ms", w.n, w.latency))
  emit("")
  emit("| contender | wall s, median (min–max) | CPU µs/call | user / sys µs | peak RSS MiB"
       .. " | RSS/call KiB | server CPU µs/call | server peak in flight | ÷ floor | failed |")
  emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  local floor = summary(FLOOR, w)
  for _, c in ipairs(order) do
    local s = summary(c, w)
    if s then
      emit(string.format("| %s | %s (%s–%s) | %s | %s / %s | %s | %s | %s | %s | %s | %d |",
        c, fmt(s.wall, "%.3f"), fmt(s.wall_min, "%.3f"), fmt(s.wall_max, "%.3f"),
        fmt(s.cpu, "%.0f"), fmt(s.user, "%.0f"), fmt(s.sys, "%.0f"),
        fmt(s.rss / 1024, "%.1f"), fmt((s.rss - baseline[c]) / w.n, "%.1f"),
        fmt(s.server, "%.0f"), fmt(s.peak, "%.0f"),
        floor and fmt(s.cpu / floor.cpu, "%.2f") or "–", s.failed))
    end
  end
end

-- Marginal cost between the two largest N of each latency: start-up and resting
-- memory cancel out, as BENCH_NOTES.md asks.
local by_latency, latencies = {}, {}
for _, w in ipairs(workloads) do
  if not by_latency[w.latency] then
    by_latency[w.latency] = {}
    latencies[#latencies + 1] = w.latency
  end
  table.insert(by_latency[w.latency], w.n)
end
local marginal_rows = {}
for _, lat in ipairs(latencies) do
  local ns = by_latency[lat]
  table.sort(ns)
  if #ns >= 2 then
    local a, b = ns[#ns - 1], ns[#ns]
    local floor_cpu
    for _, c in ipairs(order) do
      local sa, sb = summary(c, { n = a, latency = lat }), summary(c, { n = b, latency = lat })
      if sa and sb then
        local cpu = (sb.cpu * b - sa.cpu * a) / (b - a)
        local rss = (sb.rss - sa.rss) / (b - a)
        if c == FLOOR then floor_cpu = cpu end
        marginal_rows[#marginal_rows + 1] = string.format(
          "| %s | %d | %d → %d | %s | %s | %s |", c, lat, a, b, fmt(cpu, "%.0f"),
          fmt(rss * 1000 / 1024, "%.1f"), floor_cpu and fmt(cpu / floor_cpu, "%.2f") or "–")
      end
    end
  end
end
if #marginal_rows > 0 then
  emit("")
  emit("## Marginal cost per request")
  emit("")
  emit("(median CPU(N₂) − median CPU(N₁)) / (N₂ − N₁), and the same for peak RSS, scaled")
  emit("to MiB per 1 000 requests in flight: start-up and resting memory cancel out.")
  emit("")
  emit("| contender | latency ms | N | CPU µs/request | RSS MiB per 1 000 | ÷ floor |")
  emit("|---|---:|---:|---:|---:|---:|")
  for _, row in ipairs(marginal_rows) do emit(row) end
end

emit("")
emit("<details><summary>Every run</summary>")
emit("")
emit("| contender | N | latency ms | run | ok | wall s | user s | sys s | peak RSS KiB | server CPU µs | server peak in flight |")
emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in assert(io.open(path)):lines() do
  emit("| " .. line:gsub("\t", " | ") .. " |")
end
emit("")
emit("</details>")

print(table.concat(out, "\n"))
