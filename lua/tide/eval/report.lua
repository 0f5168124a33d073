--- The text an evaluation prints at the end: a summary block, and optionally the
-- first rows as a table.  Pure formatting: it takes a result and returns a string,
-- with the known keys redacted (rows are redacted as they are recorded; this also
-- covers rows read from files written elsewhere).
local cjson = require "cjson"
local redact = require "tide.redact"

local M = {}

local function short(v, width)
  local s
  if type(v) == "table" then
    local ok, text = pcall(cjson.encode, v)
    s = ok and text or tostring(v)
  else
    s = tostring(v)
  end
  s = s:gsub("%s+", " ")
  if #s > width then s = s:sub(1, width - 3) .. "..." end
  return s
end

local function kinds(error_kinds)
  local list = {}
  for kind, n in pairs(error_kinds or {}) do list[#list + 1] = {kind, n} end
  table.sort(list, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[1] < b[1]
  end)
  local parts = {}
  for i, kn in ipairs(list) do parts[i] = kn[1] .. " " .. kn[2] end
  return table.concat(parts, ", ")
end

-- A failed attempt in a word: its transfer's cause ("refused" for connect), else
-- its HTTP status, else its kind.
local function attempt_word(a)
  if a.cause == "connect" then return "refused" end
  if a.cause then return a.cause end
  if a.status then return tostring(a.status) end
  return (tostring(a.kind):gsub("_", " "))
end

--- A row's attempts as a user reads them: "timeout, then refused ×3".
function M.attempts_text(tried)
  if type(tried) ~= "table" or #tried == 0 then return nil end
  local runs = {}
  for _, a in ipairs(tried) do
    local word = attempt_word(a)
    local last = runs[#runs]
    if last and last.word == word then
      last.n = last.n + 1
    else
      runs[#runs + 1] = {word = word, n = 1}
    end
  end
  local parts = {}
  for i, r in ipairs(runs) do parts[i] = r.n > 1 and string.format("%s ×%d", r.word, r.n) or r.word end
  return table.concat(parts, ", then ")
end

-- The summary shows this many distinct error messages, each whole up to this size.
local SHOWN_ERRORS = 3
local MAX_MESSAGE = 4000

--- The first `n` distinct errors (kind and message) in row order, with their counts.
local function distinct_errors(rows, n)
  local list, by_text = {}, {}
  for _, row in ipairs(rows) do
    local e = row.error
    if e then
      local text = tostring(e.kind) .. ": " .. tostring(e.message)
      local entry = by_text[text]
      if entry then
        entry.count = entry.count + 1
      elseif #list < n then
        entry = {text = text, count = 1, tried = M.attempts_text(e.tried)}
        by_text[text] = entry
        list[#list + 1] = entry
      end
    end
  end
  return list
end

--- The lines that quote the first distinct errors in full (a long one is cut at
-- MAX_MESSAGE bytes; continuation lines indented).
local function error_lines(rows)
  local out = {}
  for _, e in ipairs(distinct_errors(rows, SHOWN_ERRORS)) do
    local text = e.text
    if #text > MAX_MESSAGE then
      text = text:sub(1, MAX_MESSAGE) .. string.format("... (%d more bytes)", #text - MAX_MESSAGE)
    end
    if e.tried then text = text .. " (tries: " .. e.tried .. ")" end
    text = text:gsub("\n", "\n      ")
    out[#out + 1] = string.format("    %s%s\n", e.count > 1 and string.format("[%d rows] ", e.count) or "", text)
  end
  return table.concat(out)
end

local function score_text(v)
  if v == nil then return "-" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.3f", v)
end

--- The first n rows as a fixed-width table: index, score, latency, outputs or error.
function M.rows(result, n)
  local out = {string.format("%6s  %7s  %7s  %s\n", "#", "score", "latency", "outputs / error")}
  for i = 1, math.min(n, #result.rows) do
    local row = result.rows[i]
    local what = row.error and ("error " .. row.error.kind .. ": " .. row.error.message) or row.outputs
    out[#out + 1] = string.format("%6d  %7s  %6.2fs  %s\n", row.index, score_text(row.score),
      row.latency or 0, short(what, 72))
  end
  if #result.rows > n then
    out[#out + 1] = string.format("%6s  (%d more rows%s)\n", "...", #result.rows - n,
      result.save_as and " in " .. result.save_as or "")
  end
  return table.concat(out)
end

--- The summary block (and the first `n` rows when n > 0).
function M.summary(result, n)
  local lines = {}
  local function add(label, fmt, ...)
    lines[#lines + 1] = string.format("  %-11s " .. fmt .. "\n", label, ...)
  end
  lines[1] = "Evaluation\n"
  local of = tostring(result.total)
  if result.shard then
    of = string.format("%d (shard %d/%d of %d)", result.total, result.shard[1], result.shard[2],
      result.dataset_size)
  end
  add("examples", "%s", of)
  add("done", "%d%s", result.done, result.resumed > 0 and
    string.format(" (%d from the results file)", result.resumed) or "")
  add("errors", "%d%s", result.errors, result.errors > 0 and " (" .. kinds(result.error_kinds) .. ")" or "")
  if result.errors > 0 then lines[#lines + 1] = error_lines(result.rows) end
  add("mean score", "%s", score_text(result.score))
  local u = result.usage
  add("tokens", "%d in, %d out; %d calls, %d from the cache", u.input, u.output, u.calls, u.cache_hits)
  if result.cost and result.cost > 0 then add("cost", "$%.4f", result.cost) end
  if result.ran == 0 and result.resumed > 0 and not result.stopped then
    -- a rerun of a finished run: its wall time and rate would say nothing
    add("ran", "nothing to do: all %d rows were already in %s", result.resumed,
      result.save_as or "the results file")
  elseif result.wall_time then
    local rate = result.wall_time > 0 and result.ran / result.wall_time or 0
    add("wall time", "%.2f s (%.1f examples/s)", result.wall_time, rate)
  end
  if result.stopped then
    local why = {max_errors = "max_errors reached: the rest did not run",
                 cancelled = "cancelled: the rest did not run",
                 server_down = "the server went away: the rest did not run"}
    add("stopped", "%s", why[result.stopped] or result.stopped)
  end
  if result.save_as then add("results", "%s", result.save_as) end
  local text = table.concat(lines)
  if n and n > 0 then text = text .. M.rows(result, n) end
  return (redact.value(text, redact.known_keys()))
end

return M
