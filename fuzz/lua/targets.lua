--- The parsers under fuzz and what must hold for each.
--
-- Each target has hostile(rng, max) → input, check(input) for any input, and
-- roundtrip(rng) for valid ones.  A check raises a string that starts with
-- "property:" when a property breaks; the harness records it as a finding.
local core = require "tide.core"
local chat = require "tide.adapters.chat"
local jsonad = require "tide.adapters.json"
local coerce = require "tide.adapters.coerce"
local pyjson = require "tide.adapters.pyjson"
local sse = require "tide.sse"
local Signature = require "tide.signature"
local gen, Rng = ...   -- harness.lua loads this file with its siblings, not by require

local function broken(fmt, ...) error("property: " .. string.format(fmt, ...), 0) end

-- Equal values, integers and floats kept apart (85 is not 85.0).
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return math.type(a) == math.type(b) and a == b end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function show(v)
  local ok, s = pcall(pyjson.dumps, v)
  return ok and s or tostring(v)
end

-- A reply parser may return, or raise the typed parse error: nothing else.
-- With must_parse (a round trip), the parse error is a finding too.
local function typed_parse(fn, sig, text, must_parse)
  local ok, res = pcall(fn, sig, text)
  if ok then
    if type(res) ~= "table" then broken("returned a %s", type(res)) end
    for _, f in ipairs(sig.outputs) do
      if res[f.name] == nil and not f.optional then broken("returned without `%s`", f.name) end
    end
    return res
  end
  if not core.is_error(res, "parse") then broken("raised an untyped error: %s", tostring(res)) end
  if res.raw ~= text then broken("the parse error lacks the raw reply") end
  if must_parse then broken("a valid reply did not parse: %s\n%s", tostring(res), text) end
  return nil
end

local SIGS = {
  Signature.new("question -> answer"),
  Signature.new{inputs = {{name = "q"}}, outputs = {
    {name = "answer", type = "str"}, {name = "score", type = "int"},
    {name = "confidence", type = "float"}, {name = "ok", type = "bool"}}},
  Signature.new{inputs = {{name = "q"}}, outputs = {
    {name = "tags", type = "list[str]"}, {name = "data", type = "dict"},
    {name = "verdict", type = "one of: yes, no, maybe"}, {name = "note", type = "Optional[str]"},
    {name = "counts", type = "list[int]"}}},
}

-- A value of field f's type that survives being written and read back.
local function value_for(rng, f)
  local kind = f.type.kind
  if f.optional and rng:chance(0.3) then return nil end
  if kind == "int" then return rng:int(-100000, 100000) end
  if kind == "float" then return gen.number(rng) + 0.0 end
  if kind == "bool" then return rng:chance(0.5) end
  if kind == "enum" then return rng:pick(f.type.values) end
  if kind == "dict" then
    local t = {}
    for _ = 1, rng:int(0, 3) do t[gen.word(rng) .. rng:int(9)] = gen.value(rng, 2) end
    return t
  end
  if kind == "list" then
    local t = {}
    for i = 1, rng:int(0, 4) do
      t[i] = f.type.of.kind == "int" and rng:int(-9, 9) or gen.text(rng)
    end
    return t
  end
  return gen.text(rng)
end

local function values_for(rng, sig)
  local v = {}
  for _, f in ipairs(sig.outputs) do v[f.name] = value_for(rng, f) end
  return v
end

-- Prose around a reply, as models write it (never a '{' that would start an object).
local function prose(rng)
  return rng:pick{"", "Sure!\n", "Here you go:\n", "\n\n", "Answer -\n", "ok\r\n"}
end

-- A reply: one of the hostile generators, or a mutated valid reply built by make.
local function reply(rng, max, make)
  local k = rng:int(10)
  if k <= 4 then return gen.mutate(rng, make(rng), max) end
  if k == 5 then return gen.bytes(rng, max) end
  if k <= 7 then return gen.tokens(rng, max) end
  if k == 8 then return gen.repeated(rng, max) end
  if k == 9 then return gen.nested(rng, max) end
  return make(rng):sub(1, max)
end

local T = {}

T.chat = {
  hostile = function(rng, max)
    local sig = rng:pick(SIGS)
    return {sig = sig, text = reply(rng, max, function(r)
      return prose(r) .. chat.assistant(sig, values_for(r, sig))
    end)}
  end,
  check = function(c) typed_parse(chat.parse, c.sig, c.text) end,
  roundtrip = function(rng)
    local sig = rng:pick(SIGS)
    local v = values_for(rng, sig)
    local text = prose(rng) .. chat.assistant(sig, v)
    if rng:chance(0.3) then text = text:gsub("\n", "\r\n") end
    local got = typed_parse(chat.parse, sig, text, true)
    if not same(got, v) then broken("chat round trip: %s became %s", show(v), show(got)) end
  end,
}

T.json_adapter = {
  hostile = function(rng, max)
    local sig = rng:pick(SIGS)
    return {sig = sig, text = reply(rng, max, function(r)
      return prose(r) .. pyjson.dumps(values_for(r, sig)) .. prose(r)
    end)}
  end,
  check = function(c) typed_parse(jsonad.parse, c.sig, c.text) end,
  roundtrip = function(rng)
    local sig = rng:pick(SIGS)
    local v = values_for(rng, sig)
    local body = pyjson.dumps(v)
    local text = rng:chance(0.5) and ("```json\n" .. body .. "\n```") or (prose(rng) .. body .. prose(rng))
    local got = typed_parse(jsonad.parse, sig, text, true)
    if not same(got, v) then broken("json round trip: %s became %s", show(v), show(got)) end
  end,
}

-- Returns a value, or nil and a message: never raises.
local function value_or_message(fn, text)
  local ok, v, msg = pcall(fn, text)
  if not ok then broken("raised: %s", tostring(v)) end
  if v == nil and type(msg) ~= "string" then broken("nil without a message") end
  return v
end

T.first_object = {
  hostile = function(rng, max)
    return reply(rng, max, function(r) return prose(r) .. pyjson.dumps(gen.value(r, 3)) .. prose(r) end)
  end,
  check = function(text)
    local v = value_or_message(coerce.first_object, text)
    if v ~= nil and type(v) ~= "table" then broken("first_object gave a %s", type(v)) end
  end,
  roundtrip = function(rng)
    local obj = {}
    for _ = 1, rng:int(1, 4) do obj[gen.word(rng) .. rng:int(9)] = gen.value(rng, 3) end
    local text = prose(rng) .. pyjson.dumps(obj) .. prose(rng)
    local got = value_or_message(coerce.first_object, text)
    if not same(got, obj) then broken("first_object round trip: %s became %s", show(obj), show(got)) end
  end,
}

T.literal = {
  hostile = function(rng, max)
    return reply(rng, max, function(r)
      local v = gen.value(r, 3)
      return r:chance(0.5) and pyjson.str(v) or pyjson.dumps(v)
    end)
  end,
  check = function(text) value_or_message(coerce.literal, text) end,
  roundtrip = function(rng)
    local v = gen.value(rng, 4)
    -- JSON, and Python's repr (str() of a string is the string itself: not a literal)
    local texts = {pyjson.dumps(v), type(v) ~= "string" and pyjson.str(v) or nil}
    for _, text in ipairs(texts) do
      local got = value_or_message(coerce.literal, text)
      if not same(got, v) then broken("literal round trip: %s became %s", text, show(got)) end
    end
  end,
}

-- Events from feeding text in pieces cut at the given sizes (nil: at once);
-- or the too_large error.
local function feed_all(text, cuts, max_event)
  local p, out, at = sse.new(max_event), {}, 1
  local ok, err = pcall(function()
    local function add(list) for _, e in ipairs(list) do out[#out + 1] = e end end
    for _, n in ipairs(cuts or {}) do
      add(p:feed(text:sub(at, at + n - 1)))
      at = at + n
    end
    add(p:feed(text:sub(at)))
    add(p:finish())
  end)
  if ok then return out end
  if not core.is_error(err, "too_large") then broken("sse raised an untyped error: %s", tostring(err)) end
  return nil
end

local function cuts_for(rng, n)
  local cuts, left = {}, n
  while left > 0 do
    local c = rng:int(0, math.min(left, rng:pick{1, 3, 17, 200}))
    cuts[#cuts + 1] = c
    left = left - c
  end
  return cuts
end

local function check_events(list)
  for _, e in ipairs(list) do
    if type(e.data) ~= "string" or (e.event ~= nil and type(e.event) ~= "string") then
      broken("sse gave a malformed event")
    end
  end
end

T.sse = {
  hostile = function(rng, max)
    local text = reply(rng, max, function(r)
      local t = {}
      for i = 1, r:int(1, 5) do
        t[i] = (r:chance(0.3) and "event: e\n" or "") .. "data: " .. gen.text(r) .. "\n\n"
      end
      return table.concat(t)
    end)
    return {text = text, seed = rng:next(), max_event = rng:pick{64, 1024, nil}}
  end,
  check = function(c)
    local rng = Rng.new(c.seed)
    local whole = feed_all(c.text, nil, c.max_event)
    local split = feed_all(c.text, cuts_for(rng, #c.text), c.max_event)
    if whole then check_events(whole) end
    -- a cap counts what is buffered, and that depends on the cuts; without one
    -- hitting, the cuts must not matter
    if whole and split and not same(whole, split) then
      broken("sse: the events depend on how the body was cut")
    end
  end,
  roundtrip = function(rng)
    local want, parts = {}, {}
    for i = 1, rng:int(1, 6) do
      local lines = {}
      for j = 1, rng:int(1, 3) do lines[j] = gen.text(rng) end
      local e = {data = table.concat(lines, "\n"), event = rng:chance(0.4) and gen.word(rng) or nil}
      want[i] = e
      local nl = rng:pick{"\n", "\r\n"}
      local t = {}
      if rng:chance(0.3) then t[#t + 1] = ": keep-alive" .. nl end
      if e.event then t[#t + 1] = "event: " .. e.event .. nl end
      if rng:chance(0.3) then t[#t + 1] = "id: " .. i .. nl end
      for _, l in ipairs(lines) do t[#t + 1] = "data: " .. l .. nl end
      parts[i] = table.concat(t) .. nl
    end
    local text = table.concat(parts)
    local got = feed_all(text, cuts_for(rng, #text))
    if not same(got, want) then broken("sse round trip lost or changed events") end
  end,
}

T.names = {"chat", "json_adapter", "first_object", "literal", "sse"}

return T
