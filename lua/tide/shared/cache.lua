--- The LM cache's Redis tier (tide/cache.lua calls it behind memory and disk):
-- an answer under PREFIX .. the request's SHA-256 key, the same key as the disk
-- cache, as JSON {"key": <that key>, "answer": {...}}, with the link's TTL if one
-- was configured.
--
-- What comes back is checked before use: a value that is not JSON, or whose key
-- is not the request's (another program's value under the prefix, a truncated
-- write), or without an answer text, is a miss, said once.  So a foreign value
-- never becomes an answer; no API key is ever written.  Every failure is a miss: Redis down, an error reply
-- (OOM, READONLY) — said once by the link — and the call goes on locally.
local json = require "tide.json"
local redact = require "tide.redact"

local M = {}

-- The version in the prefix changes when the entry's shape does: old entries are
-- then simply not found.
M.PREFIX = "tide:v1:lm:"

--- The answer stored under key, or nil.
function M.get(client, key)
  local text, err = client:call("GET", M.PREFIX .. key)
  if text == nil then
    if err and err.kind == "redis" then
      client:refusal("refused to read a cached answer", err, "the call goes on without it")
    end
    return nil
  end
  local ok, entry = pcall(json.decode, text)
  if ok and type(entry) == "table" and entry.key == key and type(entry.answer) == "table"
      and type(entry.answer.text) == "string" then
    return entry.answer
  end
  client:refusal("holds a value that is not tide's", {code = "foreign",
    message = M.PREFIX .. key}, "ignored, as a miss (said once)")
  return nil
end

--- Stores the answer's JSON text (as the disk cache wrote it) under key.  Redis is
-- read by every machine of the run: a key a server put in its answer is redacted
-- first (every LM's, and the providers' variables').
function M.put(client, key, answer_json, ttl)
  local value = '{"key":"' .. key .. '","answer":' .. redact.text(answer_json, redact.known_keys()) .. '}'
  local ok, err
  if ttl then
    ok, err = client:call("SET", M.PREFIX .. key, value, "EX", string.format("%d", math.ceil(ttl)))
  else
    ok, err = client:call("SET", M.PREFIX .. key, value)
  end
  if ok == nil and err and err.kind == "redis" then
    client:refusal("refused to store an answer", err, "answers stay in the local cache")
  end
end

return M
