--- Keeping keys out of what tide shows and writes.
--
-- A server may quote a key back (an error text, a proxy's page) and a program may
-- put one in its own message: redact.value replaces every occurrence of the given
-- secrets in a string, or in the strings of a table (in place, cycles followed
-- once), with "[redacted]" — also where JSON wrote the key escaped
-- (\u0073\u006b-…).  redact.source does the same for a line of Lua typed at the
-- REPL, and also hides string literals that look like keys.
local providers = require "tide.providers"

local M = {}

M.MARK = "[redacted]"

-- Secrets shorter than this are not looked for: they would match ordinary text.
local MIN_SECRET = 6

-- The secrets of every LM made so far (api keys, credential headers, `secrets`):
-- known keys for the REPL's history and the results files.  A set of strings,
-- private to this file.
local registered = {}

local function replace_all(s, secret)
  local out, pos = {}, 1
  while true do
    local i = s:find(secret, pos, true)
    if not i then break end
    out[#out + 1] = s:sub(pos, i - 1)
    out[#out + 1] = M.MARK
    pos = i + #secret
  end
  if pos == 1 then return s end
  out[#out + 1] = s:sub(pos)
  return table.concat(out)
end

--- The JSON escapes a key could hide behind, decoded: \uXXXX of a printable
-- ASCII character other than " and \, and \/.  Decoding exactly those keeps a
-- JSON text valid and its meaning the same; a pair \\ is stepped over whole, so
-- \\u0073 (a backslash, then "u0073") stays as it is.
local function unescape_json(s)
  if not s:find("\\", 1, true) then return s end
  local out, pos = {}, 1
  while true do
    local i = s:find("\\", pos, true)
    if not i then break end
    out[#out + 1] = s:sub(pos, i - 1)
    local after = s:sub(i + 1, i + 1)
    local hex = after == "u" and s:match("^%x%x%x%x", i + 2)
    local code = hex and tonumber(hex, 16)
    if code and code >= 0x20 and code < 0x7f and code ~= 0x22 and code ~= 0x5c then
      out[#out + 1] = string.char(code)
      pos = i + 6
    elseif after == "/" then
      out[#out + 1] = "/"
      pos = i + 2
    else
      out[#out + 1] = s:sub(i, i + 1)
      pos = i + 2
    end
  end
  out[#out + 1] = s:sub(pos)
  return table.concat(out)
end

-- s with every secret of a usable list replaced, the escaped forms included.
local function redact_text(s, secrets)
  for _, secret in ipairs(secrets) do s = replace_all(s, secret) end
  local plain = unescape_json(s)
  if plain == s then return s end
  for _, secret in ipairs(secrets) do
    if plain:find(secret, 1, true) then   -- an escaped key: the decoded text, redacted
      for _, each in ipairs(secrets) do plain = replace_all(plain, each) end
      return plain
    end
  end
  return s
end

local function walk(v, secrets, seen)
  if type(v) == "string" then return redact_text(v, secrets) end
  if type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      local y = walk(x, secrets, seen)
      if y ~= x then rawset(v, k, y) end
    end
  end
  return v
end

--- usable(secrets) → the strings of the list long enough to look for, longest
-- first (a key that contains another is replaced whole), without repeats.
function M.usable(secrets)
  local list, seen = {}, {}
  for _, s in ipairs(secrets or {}) do
    if type(s) == "string" and #s >= MIN_SECRET and not seen[s] then
      seen[s] = true
      list[#list + 1] = s
    end
  end
  table.sort(list, function(a, b) return #a > #b end)
  return list
end

--- value(v, secrets) → v with every secret of the list replaced, in a string or
-- in the strings of a table (in place), written plainly or JSON-escaped.
function M.value(v, secrets)
  local usable = M.usable(secrets)
  if #usable == 0 then return v end
  return walk(v, usable, {})
end

--- text(s, secrets) → the string s redacted: the whole of a server's answer,
-- before anything cuts it (a key straddling the cut would leave its start).
function M.text(s, secrets)
  if type(s) ~= "string" then return s end
  local usable = M.usable(secrets)
  if #usable == 0 then return s end
  return redact_text(s, usable)
end

--- register(secrets): remembers the secrets of an LM as known keys.
function M.register(secrets)
  for _, s in ipairs(secrets) do registered[s] = true end
end

--- known_keys([env]) → the values of the providers' key variables that are set,
-- and the secrets of the LMs made so far.
function M.known_keys(env)
  env = env or os.getenv
  local keys = {}
  for _, name in ipairs(providers.key_variables()) do
    local v = env(name)
    if v and v ~= "" then keys[#keys + 1] = v end
  end
  for s in pairs(registered) do keys[#keys + 1] = s end
  return keys
end

-- ---- Lua source ------------------------------------------------------------------

-- Key-shaped text: OpenAI's and Anthropic's (sk-, sk-ant-) and Google's (AIza)
-- prefixes, and an Authorization value.
local KEY_PREFIXES = {"sk-", "AIza", "Bearer "}

-- A literal standing alone is a key only when it is one token this long at least
-- ("sk-learn" is a package name, not a key); a piece of a concatenation
-- that starts with a prefix is always taken for one.
local MIN_KEY_SHAPED = 12

-- Names under which any string is a credential: the option and the headers.
local SECRET_NAMES = {api_key = true, apikey = true, ["api-key"] = true, ["x-api-key"] = true,
                      ["x-goog-api-key"] = true, authorization = true,
                      ["proxy-authorization"] = true}

local function starts_key(text)
  for _, prefix in ipairs(KEY_PREFIXES) do
    if text:sub(1, #prefix) == prefix then return true end
  end
  return false
end

local function key_shaped(text)
  return starts_key(text) and #text >= MIN_KEY_SHAPED and
    (text:match("^Bearer %S+$") or not text:find("%s")) ~= nil
end

-- The text of a short string literal with its numeric escapes decoded, enough
-- to see "\115k-..." as "sk-...".
local function decode_short(raw)
  raw = raw:gsub("\\x(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return (raw:gsub("\\(%d%d?%d?)", function(d)
    local n = tonumber(d)
    return n < 256 and string.char(n) or nil
  end))
end

-- The end of a short string opened by `quote` at i: the position of the closing
-- quote, or of the last character when the string is not closed.
local function short_end(src, i, quote)
  local j = i + 1
  while true do
    local k = src:find(quote == '"' and '[\\"\n]' or "[\\'\n]", j)
    if not k then return #src, false end
    local c = src:sub(k, k)
    if c == "\\" then
      j = k + 2
    else
      return k, c == quote
    end
  end
end

-- The string literals of a Lua source, in order: {start, first, last, after,
-- text, long}: the literal runs from start to after - 1, its contents from
-- first to last.  And the comments, as {start = i, after = j}.
local function literals(src)
  local out, comments, pos, n = {}, {}, 1, #src
  while pos <= n do
    local i = src:find("[\"'%[%-]", pos)
    if not i then break end
    local c = src:sub(i, i)
    local eq = src:match("^%[(=*)%[", c == "-" and i + 2 or i)
    if c == "-" and src:sub(i + 1, i + 1) ~= "-" then
      pos = i + 1
    elseif c == "-" then   -- a comment: long, or to the end of the line
      local _, e = src:find(eq and ("]" .. eq .. "]") or "\n", i + 2, true)
      pos = (e or n) + 1
      comments[#comments + 1] = {start = i, after = pos}
    elseif c == "[" and not eq then
      pos = i + 1
    elseif c == "[" then
      local first = i + #eq + 2
      local s, e = src:find("]" .. eq .. "]", first, true)
      local last = (s or n + 1) - 1
      out[#out + 1] = {start = i, first = first, last = last, after = (e or n) + 1,
                       text = src:sub(first, last), long = true}
      pos = (e or n) + 1
    else
      local e, closed = short_end(src, i, c)
      local last = closed and e - 1 or e
      out[#out + 1] = {start = i, first = i + 1, last = last, after = e + 1,
                       text = decode_short(src:sub(i + 1, last))}
      pos = e + 1
    end
  end
  return out, comments
end

-- The name a literal is given to (`name = "..."`, `["name"] = "..."`), or nil.
local function assigned_name(src, lit)
  local before = src:sub(math.max(1, lit.start - 80), lit.start - 1)
  local name = before:match("([%a_][%w_]*)%s*=%s*$") or
    before:match("%[%s*[\"']([^\"']+)[\"']%s*%]%s*=%s*$")
  return name and name:lower()
end

-- Marks the literals to hide: a known name's value, a key-shaped literal, and
-- every piece of a concatenation of literals one of which starts like a key.
local function secret_literals(src, lits)
  local hide = {}
  local chain_start = 1
  for i, lit in ipairs(lits) do
    local joined_before = i > 1 and src:sub(lits[i - 1].after, lit.start - 1):match("^%s*%.%.%s*$")
    if not joined_before then chain_start = i end
    local concatenated = src:sub(lit.after, lit.after + 40):match("^%s*%.%.") or
      src:sub(math.max(1, lit.start - 40), lit.start - 1):match("%.%.%s*$")
    if SECRET_NAMES[assigned_name(src, lit) or ""] or key_shaped(lit.text) or
       (concatenated and starts_key(lit.text)) then
      hide[i] = true
    end
    if hide[i] and joined_before or (hide[chain_start] and i > chain_start) then
      for j = chain_start, i do hide[j] = true end
    end
  end
  return hide
end

--- source(text) → Lua source with the known keys and every string literal that
-- holds a credential replaced: what a history file may keep of a typed line.
-- A literal is hidden when it is the value of api_key or a credential header
-- (`api_key = "..."`, `["x-api-key"] = [[...]]`), when it looks like a key
-- (sk-…, sk-ant-…, AIza…, "Bearer …"), or when it is a piece of a
-- concatenation of literals one of which starts like a key.
function M.source(text)
  text = M.value(text, M.known_keys())
  local lits, comments = literals(text)
  local hide = secret_literals(text, lits)
  -- the pieces to replace, in order: hidden literals, and key-shaped words in comments
  local cuts = {}
  for i, lit in ipairs(lits) do
    if hide[i] and lit.long then   -- [[...]] becomes "[redacted]": its brackets would end it
      cuts[#cuts + 1] = {lit.start, lit.after - 1, '"' .. M.MARK .. '"'}
    elseif hide[i] then
      cuts[#cuts + 1] = {lit.first, lit.last, M.MARK}
    end
  end
  for _, c in ipairs(comments) do
    local from = c.start
    while true do
      local i, j = text:find("[%w_][%w_%-]*", from)
      if not i or i >= c.after then break end
      j = math.min(j, c.after - 1)
      if key_shaped(text:sub(i, j)) then cuts[#cuts + 1] = {i, j, M.MARK} end
      from = j + 1
    end
  end
  table.sort(cuts, function(a, b) return a[1] < b[1] end)
  local out, pos = {}, 1
  for _, cut in ipairs(cuts) do
    out[#out + 1] = text:sub(pos, cut[1] - 1)
    out[#out + 1] = cut[3]
    pos = cut[2] + 1
  end
  out[#out + 1] = text:sub(pos)
  return table.concat(out)
end

return M
