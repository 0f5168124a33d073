--- Keeping keys out of what tide shows and writes.
--
-- A server may quote a key back (an error text, a proxy's page) and a program may
-- put one in its own message: redact.value replaces every occurrence of the given
-- secrets in a string, or in the strings of a table (in place, cycles followed
-- once), with "[redacted]".
local providers = require "tide.providers"

local M = {}

M.MARK = "[redacted]"

-- Secrets shorter than this are not looked for: they would match ordinary text.
local MIN_SECRET = 6

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

local function walk(v, secrets, seen)
  if type(v) == "string" then
    for _, secret in ipairs(secrets) do v = replace_all(v, secret) end
    return v
  end
  if type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      local y = walk(x, secrets, seen)
      if y ~= x then rawset(v, k, y) end
    end
  end
  return v
end

--- value(v, secrets) → v with every secret of the list replaced.
function M.value(v, secrets)
  local usable = {}
  for _, s in ipairs(secrets or {}) do
    if type(s) == "string" and #s >= MIN_SECRET then usable[#usable + 1] = s end
  end
  if #usable == 0 then return v end
  return walk(v, usable, {})
end

--- known_keys([env]) → the values of the providers' key variables that are set.
function M.known_keys(env)
  env = env or os.getenv
  local keys = {}
  for _, name in ipairs(providers.key_variables()) do
    local v = env(name)
    if v and v ~= "" then keys[#keys + 1] = v end
  end
  return keys
end

--- source(text) → Lua source with the known keys and the strings given as
-- `api_key = "..."` replaced: what a history file may keep of a typed line.
function M.source(text)
  text = M.value(text, M.known_keys())
  return (text:gsub("(api_key%s*=%s*)(['\"])(.-)%2", "%1%2" .. M.MARK .. "%2"))
end

return M
