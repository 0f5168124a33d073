--- Values written out the way Python writes them, so that prompts built here are
-- byte-for-byte the prompts DSPy builds: `json.dumps(v, ensure_ascii=False)` (with
-- or without `indent`), `str(v)` and `repr(float)`.
--
-- Lua tables stand for both lists and dicts: a table whose keys are exactly 1..n is
-- a list, any other non-empty table a dict.  An empty table is a list unless the
-- caller's type says dict.  Dict keys have no order in Lua, so they are written
-- sorted (DSPy keeps insertion order, which a Lua table does not have); an
-- `ordered` object keeps the order it was given.
local cjson = require "cjson"

local M = {}

local ORDERED = {__name = "tide.pyjson.ordered"}

--- ordered(keys, map) → an object written with its keys in this order.
function M.ordered(keys, map)
  return setmetatable({keys = keys, map = map}, ORDERED)
end

local function is_ordered(v) return getmetatable(v) == ORDERED end

--- True when t is a list: its keys are exactly 1..#t (an empty table counts).
function M.is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- Python's repr(float): the shortest digits that read back as the same double,
-- in fixed notation for exponents -4..15 and scientific outside, always with a
-- '.0' or an exponent so that it reads as a float.
local function float_repr(x)
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
  local s
  for p = 1, 17 do
    s = string.format("%." .. (p - 1) .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, int, frac, exp = s:match("^(%-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (int .. frac):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local e = tonumber(exp)
  if e < -4 or e >= 16 then
    local mant = digits:sub(1, 1)
    if #digits > 1 then mant = mant .. "." .. digits:sub(2) end
    return string.format("%s%se%s%02d", sign, mant, e < 0 and "-" or "+", math.abs(e))
  end
  local point = e + 1                       -- digits before the decimal point
  if point <= 0 then
    return sign .. "0." .. string.rep("0", -point) .. digits
  elseif point >= #digits then
    return sign .. digits .. string.rep("0", point - #digits) .. ".0"
  end
  return sign .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end
M.float_repr = float_repr

--- The text Python prints for a number.
function M.number(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  return float_repr(x)
end

-- json.dumps escapes only the quote, the backslash and control characters when
-- ensure_ascii is off; '/' and non-ASCII text pass through.
local ESCAPES = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
                 ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f"}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\127" then return c end
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end
M.quote = quote

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- JSON keys are strings: Python writes int and bool keys as their JSON text.
local function key_text(k)
  if type(k) == "number" then return M.number(k) end
  if type(k) == "boolean" then return tostring(k) end
  return tostring(k)
end

local encode

-- The keys and values of an object, in the order they are written.
local function object_items(v, opts, hint)
  if hint and hint.kind == "record" then   -- a model's fields in their order, as model_dump
    local items = {}
    for i, f in ipairs(hint.fields) do items[i] = {f.name, v[f.name], f.type} end
    return items
  end
  if is_ordered(v) then
    local items = {}
    for i, k in ipairs(v.keys) do items[i] = {k, v.map[k]} end
    return items
  end
  local keys = opts.key_order and opts.key_order(v) or sorted_keys(v)
  local items = {}
  for i, k in ipairs(keys) do items[i] = {k, v[k]} end
  return items
end

encode = function(v, opts, depth, hint)
  local tv = type(v)
  if v == nil or v == cjson.null then return "null" end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "Infinity" end
    if v == -math.huge then return "-Infinity" end
    return M.number(v)
  end
  if tv == "string" then return quote(v) end
  if tv ~= "table" then return quote(tostring(v)) end
  local indent = opts.indent
  local nl, pad, pad_in = "", "", ""
  if indent then
    nl = "\n"
    pad = string.rep(" ", indent * depth)
    pad_in = string.rep(" ", indent * (depth + 1))
  end
  local item_sep = indent and "," or ", "
  local sub = hint and hint.of
  if not is_ordered(v) and M.is_list(v) and
      not (next(v) == nil and hint and (hint.kind == "dict" or hint.kind == "record")) then
    if #v == 0 then return "[]" end
    local parts = {}
    for i = 1, #v do parts[i] = pad_in .. encode(v[i], opts, depth + 1, sub) end
    return "[" .. nl .. table.concat(parts, item_sep .. nl) .. nl .. pad .. "]"
  end
  local items = object_items(v, opts, hint)
  if #items == 0 then return "{}" end
  local parts = {}
  for i, kv in ipairs(items) do
    local h = kv[3] or sub
    if opts.hints and depth == 0 then h = opts.hints[kv[1]] end
    parts[i] = pad_in .. quote(key_text(kv[1])) .. ": " .. encode(kv[2], opts, depth + 1, h)
  end
  return "{" .. nl .. table.concat(parts, item_sep .. nl) .. nl .. pad .. "}"
end

--- dumps(v [, opts]) → json.dumps(v, ensure_ascii=False) text.
-- opts.indent: as Python's indent; opts.type: the value's parsed type (tells an
-- empty dict from an empty list); opts.key_order(t): the keys of an object, in order.
function M.dumps(v, opts)
  opts = opts or {}
  return encode(v, opts, 0, opts.type)
end

-- repr() of a str: single quotes unless the text holds ' and no ".
local function str_repr(s)
  local q = "'"
  if s:find("'", 1, true) and not s:find('"', 1, true) then q = '"' end
  local body = s:gsub("[%c\\" .. q .. "]", function(c)
    if c == q then return "\\" .. c end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return string.format("\\x%02x", c:byte())
  end)
  return q .. body .. q
end
M.str_repr = str_repr

local function repr(v)
  local tv = type(v)
  if v == nil or v == cjson.null then return "None" end
  if tv == "boolean" then return v and "True" or "False" end
  if tv == "number" then return M.number(v) end
  if tv == "string" then return str_repr(v) end
  if tv ~= "table" then return str_repr(tostring(v)) end
  if M.is_list(v) then
    local parts = {}
    for i = 1, #v do parts[i] = repr(v[i]) end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  local parts = {}
  for i, k in ipairs(sorted_keys(v)) do parts[i] = repr(k) .. ": " .. repr(v[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

--- str(v) as Python prints it: text as is, True/False/None, lists and dicts as repr.
function M.str(v)
  if type(v) == "string" then return v end
  return repr(v)
end

return M
