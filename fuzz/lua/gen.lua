--- Hostile inputs for the reply parsers: random bytes, mutations of valid text, deep
-- nesting, huge numbers, unicode (valid and broken), unterminated strings and
-- duplicated markers.  Every generator takes (rng, max) and returns a string of at
-- most about max bytes, so no case can run long because it is long.
local M = {}

local TOKENS = {
  "{", "}", "[", "]", "(", ")", ",", ":", '"', "'", "\\", "\\u", "\\ud83d", "\\udc00", "\\x4",
  "\\U0010FFFF", "\\U00110000", "\n", "\r\n", "\r", " ", "\t", "\0", "```", "```json\n",
  "true", "False", "None", "null", "nan", "inf", "-", "+", "0", "1e", "1e999", "-0.0",
  "1_000", "99999999999999999999999", "0x10", ".5", "5.", "[[ ## ", " ## ]]",
  "[[ ## answer ## ]]", "[[ ## completed ## ]]", "[[ ## score ## ]]", "[[ ## tags ## ]]",
  "data: ", "data:", "event: ", ": comment", "id: 1", "retry: 10", "\n\n", "\r\n\r\n",
  "Literal['a']", "«", "»", "é", "\u{1F600}", "\xff", "\xc3", "\xed\xa0\x80", "%", "%s",
}

local function bytes(rng, n)
  local t = {}
  for i = 1, n do t[i] = string.char(rng:int(0, 255)) end
  return table.concat(t)
end

-- Random bytes.
function M.bytes(rng, max) return bytes(rng, rng:size(max)) end

-- A soup of the tokens the parsers look for.
function M.tokens(rng, max)
  local out, len = {}, 0
  local want = rng:size(max)
  while len < want do
    local t = rng:pick(TOKENS)
    out[#out + 1] = t
    len = len + #t
  end
  return table.concat(out):sub(1, max)
end

-- One token repeated: deep nesting, long runs of blanks, duplicated markers.
function M.repeated(rng, max)
  local t = rng:pick(TOKENS)
  local n = math.max(1, rng:size(max) // math.max(#t, 1))
  local s = rng:pick{"", "x", "[[ ## answer ## ]]\n", "{\"a\":", "'", "1", "```json\n"} ..
            string.rep(t, n)
  return s:sub(1, max)
end

-- Nesting to a depth of up to max/2 brackets, closed or not.
function M.nested(rng, max)
  local depth = rng:int(0, max // 2)
  local open, close = table.unpack(rng:pick{{"[", "]"}, {"{\"k\":", "}"}, {"(", ")"}, {"{", "}"}})
  local s = string.rep(open, depth) .. rng:pick{"1", "\"x\"", "", "None"} ..
            (rng:chance(0.5) and string.rep(close, depth) or "")
  return s:sub(1, max)
end

--- mutate(rng, s, max) → s with a few byte-level edits: flips, inserted tokens,
-- deletions, cuts, duplicated slices.
function M.mutate(rng, s, max)
  for _ = 1, rng:int(1, 4) do
    local n = #s
    local at = rng:int(1, n + 1)
    local op = rng:int(7)
    if op == 1 and n > 0 then
      s = s:sub(1, at - 1) .. string.char(rng:int(0, 255)) .. s:sub(at + 1)
    elseif op == 2 then
      s = s:sub(1, at - 1) .. rng:pick(TOKENS) .. s:sub(at)
    elseif op == 3 and n > 0 then
      s = s:sub(1, at - 1) .. s:sub(at + rng:int(1, 16))
    elseif op == 4 then
      s = s:sub(1, at - 1)                                   -- truncated reply
    elseif op == 5 and at <= n then
      local b = rng:int(at, math.min(n, at + 64))
      s = s:sub(1, b) .. s:sub(at, b) .. s:sub(b + 1)        -- duplicated slice
    elseif op == 6 then
      s = s:sub(1, at - 1) .. bytes(rng, rng:int(1, 8)) .. s:sub(at)
    else
      s = s:sub(at) .. s:sub(1, at - 1)                      -- rotated
    end
  end
  return s:sub(1, max)
end

-- ---- valid values, for round trips ------------------------------------------------------

local WORDS = {"alpha", "beta", "x", "gamma delta", "é", "日本", "\u{1F600}", "a'b", 'q"q', "0", "-"}

function M.word(rng) return rng:pick(WORDS) end

-- A string without the markers and blanks the chat format trims or cuts on.
function M.text(rng)
  local n, t = rng:int(1, 5), {}
  for i = 1, n do t[i] = rng:pick(WORDS) end
  return table.concat(t, " ")
end

function M.number(rng)
  local k = rng:int(6)
  if k == 1 then return rng:int(-1000, 1000) end
  if k == 2 then return math.maxinteger - rng:int(0, 3) end
  if k == 3 then return math.mininteger + rng:int(0, 3) end
  if k == 4 then return rng:int(-100000, 100000) / 64 end
  if k == 5 then return (rng:next() % 1000000) * 1e-9 end
  return ((rng:next() % 1000) + 0.5) * 1e300
end

--- A JSON-shaped Lua value (arrays are sequences, objects have string keys).
function M.value(rng, depth)
  local k = rng:int(depth > 0 and 7 or 4)
  if k == 1 then return M.text(rng) end
  if k == 2 then return M.number(rng) end
  if k == 3 then return rng:chance(0.5) end
  if k == 4 then return rng:int(-5, 5) end
  if k <= 5 then
    local t = {}
    for i = 1, rng:int(0, 4) do t[i] = M.value(rng, depth - 1) end
    return t
  end
  local t = {}
  for _ = 1, rng:int(1, 4) do t[M.word(rng) .. rng:int(9)] = M.value(rng, depth - 1) end
  return t
end

return M
