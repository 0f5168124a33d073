--- What LM calls happened: a bounded history across every LM, and usage totals.
--
-- Entries hold the request's messages and the answer (with the provider's id and
-- request id), never keys or headers.
local M = {}

M.limit = 1000
M.entries = {}
M.usage = {input = 0, output = 0, total = 0, calls = 0, cache_hits = 0, cost = 0}

--- Appends an entry to a bounded list.  Past twice the limit the oldest half
-- goes in one move, so an append costs O(1) amortised instead of shifting the
-- whole list every time; the list keeps between `limit` and 2 × `limit` entries.
function M.append(list, entry, limit)
  local n = #list + 1
  list[n] = entry
  limit = limit or M.limit
  if n > 2 * limit then
    local drop = n - limit
    table.move(list, drop + 1, n, 1)
    for i = n, limit + 1, -1 do list[i] = nil end
  end
end

-- An amount that may be added to a total: totals only grow, and stay finite.
local function amount(x)
  if type(x) == "number" and x > 0 and x < math.huge then return x end
  return 0
end

--- Adds a call's usage and cost to a totals table.
function M.account(totals, usage, cost, cached)
  totals.calls = totals.calls + 1
  if cached then
    totals.cache_hits = totals.cache_hits + 1
    return
  end
  totals.input = totals.input + amount(usage.input)
  totals.output = totals.output + amount(usage.output)
  totals.total = totals.total + amount(usage.total)
  totals.cost = totals.cost + amount(cost)
  -- the parts of input and output read from a prompt cache or spent thinking:
  -- a total appears once some call reports one, as on a call's own usage
  local c, r = amount(usage.cached), amount(usage.reasoning)
  if c > 0 then totals.cached = (totals.cached or 0) + c end
  if r > 0 then totals.reasoning = (totals.reasoning or 0) + r end
end

local function indent(text)
  return (tostring(text):gsub("\n", "\n    "))
end

--- Prints the last n entries of a history (the global one by default) readably.
function M.inspect(n, list, write)
  list = list or M.entries
  write = write or io.write
  n = math.min(n or 1, #list)
  for i = #list - n + 1, #list do
    local e = list[i]
    write(string.format("\n[%s] %s  %.3f s  %d in / %d out tokens%s%s%s\n",
      os.date("%Y-%m-%d %H:%M:%S", e.time), e.model, e.duration or 0,
      e.usage and e.usage.input or 0, e.usage and e.usage.output or 0,
      e.cached and "  (cache hit)" or "",
      e.cost and e.cost > 0 and string.format("  $%.6f", e.cost) or "",
      -- what a provider's support asks for about a call
      e.request_id and "  request " .. tostring(e.request_id) or ""))
    for _, m in ipairs(e.messages or {}) do
      write(string.format("  %s:\n    %s\n", m.role, indent(m.content)))
    end
    if e.error then
      write(string.format("  error (%s):\n    %s\n", e.error.kind or "?", indent(e.error.message or "")))
    else
      write(string.format("  response (%s):\n    %s\n", e.finish_reason or "?", indent(e.response or "")))
    end
  end
end

return M
