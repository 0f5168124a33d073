--- Reading a model's text into typed values.
--
-- DSPy reads a field's text as JSON, else as a Python literal, else keeps the text,
-- and then lets pydantic validate it against the field's type (lax mode: "85" is an
-- int, 85.0 is an int, 85.5 is not, "yes" is a bool).  This module does the same in
-- Lua with one reader that takes both JSON and Python literal syntax (single quotes,
-- True/False/None, tuples), keeping integers exact: lua-cjson would read 85 as 85.0.
local cjson = require "cjson"
local pyjson = require "tide.adapters.pyjson"

local M = {}

-- ---- a JSON / Python literal reader ------------------------------------------------------

local WORDS = {
  ["true"] = true, ["True"] = true, ["false"] = false, ["False"] = false,
  ["null"] = cjson.null, ["None"] = cjson.null,
}

local SIMPLE_ESCAPES = {n = "\n", t = "\t", r = "\r", b = "\b", f = "\f", ["/"] = "/",
                       ["\\"] = "\\", ["'"] = "'", ['"'] = '"', ["0"] = "\0"}

local function utf8_of(cp)
  if cp < 0 or cp > 0x10FFFF then return nil end
  return utf8.char(cp)
end

local reader_mt = {}
reader_mt.__index = reader_mt

local function bad(r, msg) error({literal_error = msg .. " at character " .. r.pos}, 0) end

function reader_mt:skip()
  self.pos = self.text:match("^%s*()", self.pos)
end

function reader_mt:string()
  local text, q = self.text, self.text:sub(self.pos, self.pos)
  local out, i = {}, self.pos + 1
  while true do
    local chunk_end = text:find("[\\" .. q .. "]", i)
    if not chunk_end then bad(self, "unterminated string") end
    out[#out + 1] = text:sub(i, chunk_end - 1)
    local c = text:sub(chunk_end, chunk_end)
    if c == q then
      self.pos = chunk_end + 1
      return table.concat(out)
    end
    local e = text:sub(chunk_end + 1, chunk_end + 1)
    i = chunk_end + 2
    if SIMPLE_ESCAPES[e] then
      out[#out + 1] = SIMPLE_ESCAPES[e]
    elseif e == "u" or e == "x" or e == "U" then
      local len = e == "u" and 4 or e == "x" and 2 or 8
      local hex = text:sub(i, i + len - 1)
      if not hex:match("^%x+$") or #hex ~= len then bad(self, "bad \\" .. e .. " escape") end
      local cp = tonumber(hex, 16)
      i = i + len
      -- a JSON surrogate pair spells one code point in two \u escapes
      if e == "u" and cp >= 0xD800 and cp <= 0xDBFF then
        local lo = text:match("^\\u(%x%x%x%x)", i)
        if lo and tonumber(lo, 16) >= 0xDC00 and tonumber(lo, 16) <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(lo, 16) - 0xDC00)
          i = i + 6
        end
      end
      local s = utf8_of(cp)
      if not s then bad(self, "bad code point") end
      out[#out + 1] = s
    elseif e == "\n" then
      -- a Python line continuation inside a string: nothing
    else
      out[#out + 1] = "\\" .. e          -- Python keeps unknown escapes as written
    end
  end
end

-- Digits, then an optional fraction (digits required after the point, so "85." is
-- not a number: a reply that ends a sentence there is prose), then an exponent.
function reader_mt:number()
  local text = self.text
  local int_part, after = text:match("^([-+]?%d[%d_]*)()", self.pos)
  if not int_part then bad(self, "expected a value") end
  local frac, after2 = text:match("^(%.%d[%d_]*)()", after)
  if frac then after = after2 end
  local exp, after3 = text:match("^([eE][-+]?%d+)()", after)
  if exp then after = after3 end
  local s = text:sub(self.pos, after - 1)
  self.pos = after
  local clean = s:gsub("_", "")
  if not frac and not exp then
    local n = math.tointeger(tonumber(clean))
    if n then return n end
  end
  local n = tonumber(clean)
  if not n then bad(self, "bad number '" .. s .. "'") end
  return n + 0.0
end

-- Deeper is no model's answer; without a bound, a reply of 100 000 '[' overflowed
-- Lua's stack and raised an untyped "stack overflow" (fuzz finding L1).
local MAX_DEPTH = 256

function reader_mt:value()
  self.depth = self.depth + 1
  if self.depth > MAX_DEPTH then bad(self, "nesting deeper than " .. MAX_DEPTH) end
  local v = self:value_here()
  self.depth = self.depth - 1
  return v
end

function reader_mt:value_here()
  self:skip()
  local text, pos = self.text, self.pos
  local c = text:sub(pos, pos)
  if c == "{" then
    self.pos = pos + 1
    local obj = {}
    self:skip()
    if text:sub(self.pos, self.pos) == "}" then self.pos = self.pos + 1 return obj end
    while true do
      local k = self:value()
      if type(k) ~= "string" and type(k) ~= "number" and type(k) ~= "boolean" then
        bad(self, "bad object key")
      end
      self:skip()
      if text:sub(self.pos, self.pos) ~= ":" then bad(self, "expected ':'") end
      self.pos = self.pos + 1
      obj[k] = self:value()
      self:skip()
      local d = text:sub(self.pos, self.pos)
      self.pos = self.pos + 1
      if d == "}" then return obj end
      if d ~= "," then bad(self, "expected ',' or '}'") end
      self:skip()
      if text:sub(self.pos, self.pos) == "}" then self.pos = self.pos + 1 return obj end
    end
  elseif c == "[" or c == "(" then
    local close = c == "[" and "]" or ")"
    self.pos = pos + 1
    local list = {}
    self:skip()
    if text:sub(self.pos, self.pos) == close then self.pos = self.pos + 1 return list end
    while true do
      list[#list + 1] = self:value()
      self:skip()
      local d = text:sub(self.pos, self.pos)
      self.pos = self.pos + 1
      if d == close then return list end
      if d ~= "," then bad(self, "expected ',' or '" .. close .. "'") end
      self:skip()
      if text:sub(self.pos, self.pos) == close then self.pos = self.pos + 1 return list end
    end
  elseif c == '"' or c == "'" then
    return self:string()
  end
  local word, after = text:match("^(%a+)()", pos)
  if word then
    if WORDS[word] == nil then bad(self, "unexpected '" .. word .. "'") end
    self.pos = after
    return WORDS[word]
  end
  return self:number()
end

--- literal(text) → the value the text spells in JSON or Python literal syntax, or
-- nil and a message.  null / None is cjson.null.
function M.literal(text)
  local r = setmetatable({text = text, pos = 1, depth = 0}, reader_mt)
  local ok, v = pcall(function()
    local v = r:value()
    r:skip()
    if r.pos <= #text then bad(r, "unexpected text after the value") end
    return v
  end)
  if ok then return v end
  if type(v) == "table" and v.literal_error then return nil, v.literal_error end
  error(v, 0)
end

local MAX_TRIES = 64

local function is_space(b) return b == 32 or (b >= 9 and b <= 13) end

-- The text inside a ``` fence that wraps the whole reply, or the reply.  By hand,
-- not with text:gsub("^%s*```%w*%s*\n(.-)\n%s*```%s*$", "%1"): that pattern
-- backtracks through every split of a blank run, so "```" and a few thousand blank
-- lines took minutes (fuzz finding L4, spec/fuzz_regress_spec.lua).  The same
-- split is picked: the body starts after the last line break of the blanks that
-- follow the opening fence, and ends at the first line break of the blanks before
-- the closing one.
local function unfenced(text)
  local byte = string.byte
  local after = text:match("^%s*```%w*()")
  if not after then return text end
  local start, i = nil, after
  while i <= #text and is_space(byte(text, i)) do
    if byte(text, i) == 10 then start = i + 1 end
    i = i + 1
  end
  local e = #text
  while e > 0 and is_space(byte(text, e)) do e = e - 1 end
  if not start or e - 2 < start or text:sub(e - 2, e) ~= "```" then return text end
  local k = e - 3
  while k >= start and is_space(byte(text, k)) do k = k - 1 end
  for j = k + 1, e - 3 do
    if byte(text, j) == 10 then return text:sub(start, j - 1) end
  end
  return text
end

--- first_object(text) → the first JSON object in a reply (inside a code fence or
-- prose), or nil and a message.
function M.first_object(text)
  local whole = M.literal(unfenced(text))
  if type(whole) == "table" and not (next(whole) ~= nil and pyjson.is_list(whole)) then
    return whole
  end
  -- One pass pairs each '{' with its '}' (skipping braces inside strings); then the
  -- candidates are tried in order.  Scanning anew from every '{' was quadratic: a
  -- reply of 64 KiB of '{' took minutes (fuzz finding L2, spec/fuzz_regress_spec.lua).
  -- A candidate that is not a literal costs a read of its text, so only the first
  -- MAX_TRIES are read.
  local first = text:find("{", 1, true)
  if not first then return nil, "no JSON object in the reply" end
  local close_of, stack, quote = {}, {}, nil
  local i, n, byte = first, #text, string.byte
  while i <= n do
    local c = byte(text, i)
    if quote then
      if c == 92 then i = i + 1 elseif c == quote then quote = nil end   -- 92: backslash
    elseif c == 34 then                                                   -- 34: '"'
      quote = c
    elseif c == 123 then                                                  -- 123: '{'
      stack[#stack + 1] = i
    elseif c == 125 and #stack > 0 then                                   -- 125: '}'
      close_of[stack[#stack]] = i
      stack[#stack] = nil
    end
    i = i + 1
  end
  local opens = {}
  for open in pairs(close_of) do opens[#opens + 1] = open end
  table.sort(opens)
  for k = 1, math.min(#opens, MAX_TRIES) do
    local v = M.literal(text:sub(opens[k], close_of[opens[k]]))
    if type(v) == "table" then return v end
  end
  return nil, "no JSON object in the reply"
end

-- ---- coercion by type ------------------------------------------------------------------

-- common.trim, not s:match("^%s*(.-)%s*$"): that pattern retries `%s*$` at every
-- byte, so a field of a few kilobytes of blanks took seconds (fuzz finding L3,
-- spec/fuzz_regress_spec.lua).
local trim = require("tide.adapters.common").trim

local BOOLS = {
  ["true"] = true, ["t"] = true, ["yes"] = true, ["y"] = true, ["on"] = true, ["1"] = true,
  ["false"] = false, ["f"] = false, ["no"] = false, ["n"] = false, ["off"] = false, ["0"] = false,
}

local function describe(v)
  if type(v) == "string" then
    if #v > 60 then v = v:sub(1, 57) .. "..." end
    return string.format("%q", v):gsub("\\\n", "\\n")
  end
  return pyjson.dumps(v)
end

local check

local function as_int(v)
  if math.type(v) == "integer" then return v end
  if math.type(v) == "float" then
    local n = math.tointeger(v)
    if n then return n end
    return nil, "got a number with a fractional part"
  end
  if type(v) == "string" then
    local s = trim(v)
    local digits = s:match("^[-+]?%d+$") or s:match("^([-+]?%d+)%.0*$")
    if digits and s:sub(-1) ~= "." then
      local n = math.tointeger(tonumber(digits))
      if n then return n end
      return nil, "out of range"
    end
  end
  return nil
end

local function as_float(v)
  if type(v) == "number" then return v + 0.0 end
  if type(v) == "string" then
    local s = trim(v):lower()
    if s:match("^[-+]?%d+$") or s:match("^[-+]?%d+%.%d+$") or s:match("^[-+]?%d+e[-+]?%d+$")
        or s:match("^[-+]?%d+%.%d+e[-+]?%d+$") then
      local n = tonumber(s)
      if n then return n + 0.0 end
    end
    if s == "inf" or s == "+inf" or s == "infinity" then return math.huge end
    if s == "-inf" or s == "-infinity" then return -math.huge end
    if s == "nan" then return 0 / 0 end
  end
  return nil
end

local function as_bool(v)
  if type(v) == "boolean" then return v end
  if v == 0 or v == 1 then return v == 1 end
  if type(v) == "string" then
    local b = BOOLS[trim(v):lower()]
    if b ~= nil then return b end
  end
  return nil
end

-- An enum value: exactly, then as DSPy does (trimmed, a Literal[...] wrapper and
-- quotes dropped), then ignoring case when that picks one value.
local function as_enum(v, values)
  for _, want in ipairs(values) do if v == want then return want end end
  if type(v) ~= "string" then return nil end
  local s = trim(v)
  s = s:match("^Literal%[(.*)%]$") or s:match("^str%[(.*)%]$") or s
  if #s > 1 and (s:match("^'.*'$") or s:match('^".*"$')) then s = s:sub(2, -2) end
  for _, want in ipairs(values) do if s == want then return want end end
  local found
  for _, want in ipairs(values) do
    if s:lower() == want:lower() then
      if found then return nil end
      found = want
    end
  end
  return found
end

-- check(v, t, path) → the value as type t, or nil and why not.
check = function(v, t, path)
  local kind = t.kind
  local function fail(why)
    return nil, string.format("%s%s is not a valid %s%s", path ~= "" and (path .. ": ") or "",
      describe(v), t.text, why and (" (" .. why .. ")") or "")
  end
  if kind == "any" then return v end
  if kind == "str" then
    if type(v) == "string" then return v end
    return fail()
  elseif kind == "int" then
    local n, why = as_int(v)
    if n == nil then return fail(why) end
    return n
  elseif kind == "float" then
    local n = as_float(v)
    if n == nil then return fail() end
    return n
  elseif kind == "bool" then
    local b = as_bool(v)
    if b == nil then return fail() end
    return b
  elseif kind == "enum" then
    local e = as_enum(v, t.values)
    if e == nil then return fail("one of: " .. table.concat(t.values, ", ")) end
    return e
  elseif kind == "list" then
    if type(v) ~= "table" or getmetatable(v) ~= nil or not pyjson.is_list(v) then return fail() end
    local out = {}
    for i = 1, #v do
      if t.of then
        local item, err = check(v[i], t.of, path .. "[" .. i .. "]")
        if item == nil then return nil, err end
        out[i] = item
      else
        out[i] = v[i]
      end
    end
    return out
  elseif kind == "dict" then
    if type(v) ~= "table" or getmetatable(v) ~= nil or (next(v) ~= nil and pyjson.is_list(v)) then
      return fail()
    end
    local out = {}
    for k, item in pairs(v) do
      if type(k) ~= "string" then return fail("keys must be strings") end
      if t.of then
        local err
        item, err = check(item, t.of, path .. "." .. k)
        if item == nil then return nil, err end
      end
      out[k] = item
    end
    return out
  elseif kind == "record" then
    if type(v) ~= "table" or getmetatable(v) ~= nil or (next(v) ~= nil and pyjson.is_list(v)) then
      return fail("an object expected")
    end
    local out = {}
    for _, f in ipairs(t.fields) do
      local item, at = v[f.name], path == "" and f.name or (path .. "." .. f.name)
      if item == nil or item == cjson.null then
        if not (f.optional or f.type.nullable) then
          return nil, string.format("%s: missing (a required field of %s)", at, t.title)
        end
      else
        local x, err = check(item, f.type, at)
        if x == nil then return nil, err end
        out[f.name] = x
      end
    end
    return out
  end
  return fail("unknown type")
end

--- value(v, t [, path]) → v read as type t, or nil and a message that says why not
-- (a bad value inside names where: path, e.g. the field's name, then
-- `person.tags[2]`).  A string is taken as the field's text: as is for str, else
-- read as JSON or a Python literal first (when it is one) and then checked, as
-- DSPy's parse_value does.
function M.value(v, t, path)
  if t.kind == "str" then
    if type(v) == "string" then return v end
    return pyjson.str(v)              -- str(value), as DSPy does for a JSON number
  end
  if t.kind == "enum" then
    local e = as_enum(v, t.values)
    if e ~= nil then return e end
  end
  if type(v) == "string" then
    local lit = M.literal(v)
    if lit ~= nil then return check(lit, t, path or "") end
  end
  return check(v, t, path or "")
end

return M
