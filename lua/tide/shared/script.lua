--- A Lua script that runs in Redis by its SHA-1: EVALSHA, and when Redis answers
-- NOSCRIPT (it restarted, or SCRIPT FLUSH) SCRIPT LOAD and once again.  The
-- shared gate and the shared rate buckets each keep one.
--
--   local bucket_script = script.new(SOURCE, "bucket")
--   local reply, err = bucket_script:run(client, key, arg1, arg2)
local M = {}

local Script = {}
Script.__index = Script

--- script.new(source, what) → a script; `what` names it in the errors.
function M.new(source, what)
  -- the SHA-1 per client, as SCRIPT LOAD answered; a client gone takes its entry along
  return setmetatable({source = source, what = what, loaded = setmetatable({}, {__mode = "k"})},
    Script)
end

--- script:run(client, key, ...) → Redis's reply (never nil), or nil and the error.
function Script:run(client, key, ...)
  for _ = 1, 2 do
    local sha = self.loaded[client]
    if sha == nil then
      local err
      sha, err = client:call("SCRIPT", "LOAD", self.source)
      if sha == nil then return nil, err end
      self.loaded[client] = sha
    end
    local reply, err = client:call("EVALSHA", sha, "1", key, ...)
    if reply ~= nil then return reply end
    if not (err and err.code == "NOSCRIPT") then return nil, err end
    self.loaded[client] = nil   -- Redis restarted or flushed its scripts: load it again
  end
  return nil, {code = "NOSCRIPT", message = "the " .. self.what .. " script could not be loaded"}
end

return M
