--- The numbers behind the HTML report, computed from an evaluation's rows: score and
-- latency distributions, a panel's per-critic scores and where its critics
-- disagree, the slowest rows, and failures grouped by kind.  Pure: rows in, plain
-- tables out, one pass or one sort each (10 000 rows take milliseconds).
local M = {}

--- The sorted copy of a list of numbers.
local function sorted(values)
  local list = table.move(values, 1, #values, 1, {})
  table.sort(list)
  return list
end

--- quantile(sorted_values, q) → the value at rank ceil(q * n) (nil for none).
function M.quantile(list, q)
  if #list == 0 then return nil end
  return list[math.max(1, math.ceil(q * #list))]
end

local function number_text(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
  return string.format("%.3g", v)
end
M.number_text = number_text

--- The smallest round width (1, 2, 2.5 or 5 times a power of ten) >= raw.
local function nice(raw)
  if raw <= 0 then return 1 end
  local scale = 10 ^ math.floor(math.log(raw, 10))
  for _, f in ipairs{1, 2, 2.5, 5, 10} do
    if f * scale >= raw * (1 - 1e-9) then return f * scale end
  end
  return 10 * scale
end

--- A bin edge as text, without the float's noise (0.30000000000000004 → 0.3).
local function edge(v)
  return number_text(tonumber(string.format("%.6g", v)))
end

--- histogram(values, {bins = 20, cap, unit}) → a list of {label, count, title}.
-- Few distinct values (a boolean metric's 0 and 1, a 1-10 scale) get one bin
-- each; others equal-width bins from the smallest value to the largest, or to
-- `cap` with one last bin for everything above it.
function M.histogram(values, opts)
  opts = opts or {}
  local unit = opts.unit or ""
  if #values == 0 then return {} end
  local counts, distinct = {}, {}
  for _, v in ipairs(values) do
    if counts[v] == nil then
      distinct[#distinct + 1] = v
      counts[v] = 0
    end
    counts[v] = counts[v] + 1
    if #distinct > 12 then break end
  end
  if #distinct <= 12 and not opts.cap then
    -- the loop above stopped early only past 12 distinct values
    table.sort(distinct)
    local bins = {}
    for i, v in ipairs(distinct) do
      local label = number_text(v) .. unit
      bins[i] = {label = label, count = counts[v], title = string.format("%s: %d rows", label, counts[v])}
    end
    return bins
  end
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  local top = opts.cap and math.min(opts.cap, hi) or hi
  local over = opts.cap and hi > opts.cap
  -- a round bin width (1, 2, 2.5 or 5 times a power of ten) from a round start,
  -- so the labels read 0.1 s, 0.2 s... rather than 0.000781 s
  local width = nice((top - lo) / (opts.bins or 20))
  local first = math.floor(lo / width) * width
  local n = math.max(1, math.floor((top - first) / width) + 1)
  local bins = {}
  for i = 1, n do
    local a = first + (i - 1) * width
    bins[i] = {label = edge(a) .. unit, count = 0, from = a, to = a + width}
  end
  if over then bins[n + 1] = {label = "> " .. edge(top) .. unit, count = 0, from = top, to = hi} end
  for _, v in ipairs(values) do
    local i
    if over and v > top then i = n + 1 else i = math.min(n, math.floor((v - first) / width) + 1) end
    bins[i].count = bins[i].count + 1
  end
  for _, b in ipairs(bins) do
    b.title = string.format("%s to %s%s: %d rows", edge(b.from), edge(b.to), unit, b.count)
  end
  return bins
end

--- stats(values) → {n, mean, min, median, p90, p99, max} (nil fields for no values).
function M.stats(values)
  local list = sorted(values)
  local sum = 0
  for _, v in ipairs(list) do sum = sum + v end
  return {n = #list, mean = #list > 0 and sum / #list or nil, min = list[1],
    median = M.quantile(list, 0.5), p90 = M.quantile(list, 0.9), p99 = M.quantile(list, 0.99),
    max = list[#list]}
end

--- Whether v is a number to plot (not NaN nor infinite).
local function finite(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

--- The rows' scores and latencies (a row without one is left out).
function M.columns(rows)
  local scores, latencies = {}, {}
  for _, row in ipairs(rows) do
    if finite(row.score) then scores[#scores + 1] = row.score end
    if finite(row.latency) then latencies[#latencies + 1] = row.latency end
  end
  return scores, latencies
end

-- ---- panels ----------------------------------------------------------------------

--- A critic's result field: `what` or `<name>_what` (as tide.fanout reads them).
local function critic_field(result, name, what)
  local v = result[what]
  if v == nil then v = result[name .. "_" .. what] end
  return v
end

--- critics(rows) → nil when no row holds a panel's verdict, else {names = sorted
-- critic names, by_row = {[i] = {name → score}}, each = {name → {scores, approved,
-- judged, failed}}}.  A panel's outputs hold `critics` (name → that critic's
-- fields) and `errors` (name → the failed critic's error).
function M.critics(rows)
  local each, by_row, names = {}, {}, {}
  local function critic(name)
    local c = each[name]
    if not c then
      c = {scores = {}, approved = 0, judged = 0, failed = 0}
      each[name] = c
      names[#names + 1] = name
    end
    return c
  end
  for i, row in ipairs(rows) do
    local out = row.outputs
    local list = type(out) == "table" and out.critics
    if type(list) == "table" then
      local scores = {}
      for name, result in pairs(list) do
        if type(name) == "string" and type(result) == "table" then
          local c = critic(name)
          local score = critic_field(result, name, "score")
          if finite(score) then
            c.scores[#c.scores + 1] = score
            scores[name] = score
          end
          local approved = critic_field(result, name, "approved")
          if type(approved) == "boolean" then
            c.judged = c.judged + 1
            if approved then c.approved = c.approved + 1 end
          end
        end
      end
      by_row[i] = scores
      if type(out.errors) == "table" then
        for name in pairs(out.errors) do
          if type(name) == "string" then critic(name).failed = critic(name).failed + 1 end
        end
      end
    end
  end
  if #names == 0 then return nil end
  table.sort(names)
  return {names = names, by_row = by_row, each = each}
end

--- disagreement(rows, critics, n) → {pairs = {[i][j] = mean |score_i - score_j|},
-- counted = {[i][j] = rows both scored}, spread = {per row: max - min score},
-- top = the n rows of the widest spread, as {row, spread, scores}}.
function M.disagreement(rows, critics, n)
  local names = critics.names
  local sum, count = {}, {}
  for i = 1, #names do sum[i], count[i] = {}, {} end
  local spreads, spread_rows = {}, {}
  for i, row in ipairs(rows) do
    local scores = critics.by_row[i]
    if scores then
      local lo, hi, seen = math.huge, -math.huge, 0
      for a, na in ipairs(names) do
        local sa = scores[na]
        if sa then
          seen = seen + 1
          if sa < lo then lo = sa end
          if sa > hi then hi = sa end
          for b, nb in ipairs(names) do
            local sb = scores[nb]
            if sb and a ~= b then
              sum[a][b] = (sum[a][b] or 0) + math.abs(sa - sb)
              count[a][b] = (count[a][b] or 0) + 1
            end
          end
        end
      end
      if seen >= 2 then
        spreads[#spreads + 1] = hi - lo
        spread_rows[#spread_rows + 1] = {row = row, spread = hi - lo, scores = scores}
      end
    end
  end
  local mean = {}
  for a = 1, #names do
    mean[a] = {}
    for b = 1, #names do
      if count[a][b] then mean[a][b] = sum[a][b] / count[a][b] end
    end
  end
  table.sort(spread_rows, function(x, y)
    if x.spread ~= y.spread then return x.spread > y.spread end
    return x.row.index < y.row.index
  end)
  local top = {}
  for i = 1, math.min(n, #spread_rows) do
    if spread_rows[i].spread > 0 then top[#top + 1] = spread_rows[i] end
  end
  return {pairs = mean, counted = count, spread = spreads, top = top}
end

-- ---- latency and failures ------------------------------------------------------------

--- slowest(rows, n) → the n rows of the longest latency, slowest first.
function M.slowest(rows, n)
  local list = {}
  for _, row in ipairs(rows) do
    if finite(row.latency) then list[#list + 1] = row end
  end
  table.sort(list, function(a, b)
    if a.latency ~= b.latency then return a.latency > b.latency end
    return a.index < b.index
  end)
  for i = #list, n + 1, -1 do list[i] = nil end
  return list
end

--- failures(rows, per_kind) → a list of {kind, count, messages = {{message, rows =
-- {index...} (the first few), count, tried}}} by count, largest first; each kind
-- keeps its first `per_kind` distinct messages.
function M.failures(rows, per_kind)
  local by_kind, kinds = {}, {}
  for _, row in ipairs(rows) do
    local e = row.error
    if type(e) == "table" then
      local kind = tostring(e.kind or "?")
      local k = by_kind[kind]
      if not k then
        k = {kind = kind, count = 0, messages = {}, by_message = {}}
        by_kind[kind] = k
        kinds[#kinds + 1] = k
      end
      k.count = k.count + 1
      local message = tostring(e.message or "")
      local m = k.by_message[message]
      if not m and #k.messages < per_kind then
        m = {message = message, rows = {}, count = 0, tried = e.tried}
        k.by_message[message] = m
        k.messages[#k.messages + 1] = m
      end
      if m then
        m.count = m.count + 1
        if #m.rows < 8 then m.rows[#m.rows + 1] = row.index end
      else
        k.other = (k.other or 0) + 1
      end
    end
  end
  table.sort(kinds, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return a.kind < b.kind
  end)
  for _, k in ipairs(kinds) do k.by_message = nil end
  return kinds
end

return M
