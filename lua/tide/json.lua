--- tide.json: lua-cjson with JSON's integers kept as Lua integers.
--
--   local json = require "tide.json"          -- also tide.json
--   local v = json.decode('{"n": 38, "x": 1.0, "y": null}')
--   math.type(v.n) --> "integer";  math.type(v.x) --> "float";  v.y == json.null --> true
--   json.encode{a = 1}                        --> '{"a":1}'
--
-- lua-cjson 2.1 decodes every number as a float (38.0), and has no option to
-- do otherwise.  decode() gives a number written without a fraction or an
-- exponent as an integer (when it fits in 64 bits), and one written with them
-- as a float, as Lua's own tonumber does with the same text.
--
-- How, without a decoder of our own: cjson decodes, then one walk (in C) turns
-- the integral floats into integers.  That walk would be wrong only for a number
-- written with a fraction or exponent whose value is integral (1.0, 2e3), and
-- for integers past 2^53, which cjson's float cannot hold exactly.  A scan of the
-- text (in C, strings skipped) tells whether such a number is there; only then
-- are those numbers put in as marker strings before cjson decodes, and the
-- markers replaced by the numbers Lua's tonumber reads from their text.
local cjson = require "cjson"
local core = require "tide.core"

-- The fast path, in C (engine/core/jsonnum.c): whether the text holds a number
-- that must be read from its text, and the walk that makes integral floats
-- integers (all of them when it does not; the rest, after the markers, when it does).
local json_scan, json_integers = core.json_scan, core.json_integers

local find, sub, byte = string.find, string.sub, string.byte
local mtype = math.type

local M = {}

--- JSON null as decode gives it and encode takes it (cjson's: a light userdata,
-- which is truthy: test `v == tide.json.null`).
M.null = cjson.null

--- encode(value) → JSON text (cjson's encode: integers as integers, floats with
-- 14 significant digits, an empty table as {}).
M.encode = cjson.encode

--- The special number tokens of text, outside strings: those with a fraction
-- or an exponent and an integral value, and integers of 16 digits or more.
-- → a list of {first, last, value}, or nil when the text ends inside a string
-- (cjson will say what is wrong).
local function special_numbers(text)
  local out, pos = {}, 1
  while true do
    local s = find(text, '["%-%d]', pos)
    if s == nil then return out end
    if byte(text, s) == 34 then            -- a string: skip to its closing quote
      local i = s + 1
      while true do
        local q = find(text, '["\\]', i)
        if q == nil then return nil end
        if byte(text, q) == 92 then i = q + 2 else pos = q + 1; break end
      end
    else
      local _, e = find(text, "^%-?%d*%.?%d*[eE]?[%+%-]?%d*", s)
      local token = sub(text, s, e)
      local value = tonumber(token)
      if value ~= nil then
        local digits = #token - (byte(token, 1) == 45 and 1 or 0)
        -- an integral float (1.0, 2e3, or an integer too big for 64 bits), or
        -- an integer that may be past 2^53
        if (mtype(value) == "float" and value == value // 1) or digits >= 16 then
          out[#out + 1] = {s, e, value}
        end
      end
      pos = e + 1
    end
  end
end

--- A marker prefix that the text does not contain.
local function marker_prefix(text)
  local prefix = "\1tide-number#"
  while find(text, prefix:sub(2), 1, true) do prefix = prefix .. "#" end
  return prefix
end

--- Puts markers back as numbers, then the remaining integral floats as integers.
local function restore(v, markers)
  local t = type(v)
  if t == "string" then
    local n = markers[v]
    if n ~= nil then return n end
    return v
  end
  if t == "number" then return json_integers(v) end
  if t ~= "table" then return v end
  for k, x in pairs(v) do
    local y = restore(x, markers)
    if y ~= x or mtype(y) ~= mtype(x) then v[k] = y end
  end
  return v
end

--- The slow path: the special numbers replaced by marker strings, decoded,
-- then put back.
local function decode_marked(text)
  local specials = special_numbers(text)
  if specials == nil or #specials == 0 then
    return json_integers(cjson.decode(text))
  end
  local prefix = marker_prefix(text)
  local parts, markers, pos = {}, {}, 1
  for i, sp in ipairs(specials) do
    local marker = prefix .. i
    markers[marker] = sp[3]
    parts[#parts + 1] = sub(text, pos, sp[1] - 1)
    parts[#parts + 1] = cjson.encode(marker)
    pos = sp[2] + 1
  end
  parts[#parts + 1] = sub(text, pos)
  return restore(cjson.decode(table.concat(parts)), markers)
end

--- decode(text) → the value; raises cjson's error for text that is not JSON.
-- Integers as integers, floats as floats, null as tide.json.null.
function M.decode(text)
  if json_scan(text) then return decode_marked(text) end
  return json_integers(cjson.decode(text))
end

return M
