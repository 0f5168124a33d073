--- Values as a person wants to read them at the REPL: tables nested and indented with
-- their keys in order, long strings cut, Predictions by their fields, error objects by
-- kind and message (never a table address).
--
--   pretty.format(v [, opts]) → string
--   opts: max_string (200 bytes), max_depth (5), max_items (100), width (80)
local core = require "tide.core"
local check = require "tide.check"
local cut = require("tide.eval.html_escape").cut

local M = {}

local DEFAULTS = {max_string = 200, max_depth = 5, max_items = 100, width = 80}

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function is_name(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end

--- A string quoted as Lua would read it, cut after max bytes.
local function quote(s, max)
  local kept, dropped = cut(s, max)   -- not inside a UTF-8 sequence
  local tail = dropped > 0 and string.format("… (%d bytes more)", dropped) or ""
  local q = string.format("%q", kept):gsub("\\\n", "\\n"):gsub("\\9", "\\t")
  return q .. tail
end

--- Keys in a reading order: the list part 1..n, then numbers, then names
-- alphabetically, then anything else by its printed form.
local function ordered_keys(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local rest = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then rest[#rest + 1] = k end
  end
  local rank = {number = 1, string = 2}
  table.sort(rest, function(a, b)
    local ra, rb = rank[type(a)] or 3, rank[type(b)] or 3
    if ra ~= rb then return ra < rb end
    if ra == 3 then return tostring(a) < tostring(b) end
    return a < b
  end)
  return n, rest
end

local format_value

--- "kind: message", plus the fields a reader acts on (status, retry_after, ...).
local function format_error(e, o)
  local extra = {}
  for _, k in ipairs({"status", "retry_after", "attempts", "field", "url"}) do
    local v = rawget(e, k)
    if v ~= nil then extra[#extra + 1] = k .. " = " .. format_value(v, o, 0, 99, {}) end
  end
  local s = string.format("error (%s): %s", tostring(rawget(e, "kind")),
    tostring(rawget(e, "message")))
  if #extra > 0 then s = s .. " [" .. table.concat(extra, ", ") .. "]" end
  return s
end

local function format_table(t, o, indent, depth, seen)
  local mt = getmetatable(t)
  local name = type(mt) == "table" and rawget(mt, "__name") or nil
  if name == "tide.error" then return format_error(t, o) end
  local plain = name == "tide.Prediction" or name == "tide.Example"
  if type(mt) == "table" and rawget(mt, "__tostring") and not plain then
    return tostring(t)   -- a class that says how it reads (tide.LM, ...)
  end
  local prefix = plain and name:gsub("^tide%.", "") or (type(name) == "string" and name or "")
  if seen[t] then return prefix .. "{<cycle>}" end
  if depth >= o.max_depth then return prefix .. "{…}" end
  seen[t] = true
  local n, rest = ordered_keys(t)
  local items, count = {}, 0
  local function add(s)
    count = count + 1
    if count <= o.max_items then items[#items + 1] = s end
  end
  local inner = indent + 2
  for i = 1, n do add(format_value(rawget(t, i), o, inner, depth + 1, seen)) end
  for _, k in ipairs(rest) do
    local key = is_name(k) and k or "[" .. format_value(k, o, inner, depth + 1, seen) .. "]"
    add(key .. " = " .. format_value(rawget(t, k), o, inner, depth + 1, seen))
  end
  seen[t] = nil
  if count > o.max_items then items[#items + 1] = string.format("… (%d more)", count - o.max_items) end
  if #items == 0 then return prefix .. "{}" end
  local one = prefix .. "{" .. table.concat(items, ", ") .. "}"
  if #one + indent <= o.width and not one:find("\n", 1, true) then return one end
  local pad = string.rep(" ", inner)
  return prefix .. "{\n" .. pad .. table.concat(items, ",\n" .. pad) .. "\n" ..
    string.rep(" ", indent) .. "}"
end

function format_value(v, o, indent, depth, seen)
  local t = type(v)
  if t == "string" then return quote(v, o.max_string) end
  if t == "table" then return format_table(v, o, indent, depth, seen) end
  if t == "number" and math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
    return string.format("%.1f", v)
  end
  return tostring(v)
end

--- pretty.format(v [, opts]) → the text of one value.
function M.format(v, opts)
  local o = DEFAULTS
  if check.type("format", 2, opts, "table", true) ~= nil then
    o = {}   -- a copy: the caller's table keeps no metatable of ours
    for k, default in pairs(DEFAULTS) do o[k] = opts[k] == nil and default or opts[k] end
  end
  return format_value(v, o, 0, 0, {})
end

--- pretty.error(e) → whatever was raised, reading as an error: "error (kind):
-- message [status = ...]" for a tide error or any table with a `kind`, "error:
-- ..." for anything else (error(nil) → "error: nil"), never a table address.
function M.error(e)
  if core.is_error(e) then return format_error(e, DEFAULTS) end
  if type(e) ~= "table" then return "error: " .. tostring(e) end
  local kind, message = rawget(e, "kind"), rawget(e, "message")
  local mt = getmetatable(e)
  if kind ~= nil and message ~= nil then return format_error(e, DEFAULTS) end
  if type(mt) == "table" and rawget(mt, "__tostring") then
    local s = tostring(e)
    return kind ~= nil and string.format("error (%s): %s", tostring(kind), s) or "error: " .. s
  end
  if message ~= nil then return "error: " .. tostring(message) end
  -- a table with no message: its fields are what there is to read
  local shown = format_value(e, DEFAULTS, 0, 0, {})
  if kind ~= nil then return string.format("error (%s): %s", tostring(kind), shown) end
  return "error: " .. shown
end

return M
