--- tide.mcp over stdio: the server is a child process (tide.process); each
-- message is one line of JSON on its stdin or stdout, as MCP's stdio transport
-- says.  stderr is the server's log: its last bytes go into the error when the
-- server exits or breaks the protocol.
--
-- No task reads in the background: the task waiting for a reply reads stdout
-- (client.lua hands the reading over between waiting tasks), and the core reads
-- ahead meanwhile, so an idle server never blocks on a full pipe and an idle
-- client keeps no task alive.
local core = require "tide.core"
local json = require "tide.json"
local redact = require "tide.redact"

local M = {}

local Transport = {}
Transport.__index = Transport

local CLOSE_GRACE = 2   -- seconds a server gets after its stdin closed, then after SIGTERM

--- open{command = {prog, args...}, env =, cwd =, stderr =, max_message =, name =} → transport
function M.open(opts)
  local ok, proc = pcall(core.process, {cmd = opts.command, env = opts.env, cwd = opts.cwd,
    stderr = opts.stderr or "tail", max_line = opts.max_message})
  if not ok then
    if not core.is_error(proc, "process") then error(proc, 0) end
    error(core.error{kind = "mcp", message = opts.name .. ": " .. tostring(proc.message),
      cause = "process"}, 0)
  end
  return setmetatable({proc = proc, name = opts.name, secrets = opts.secrets or {}, reading = false},
    Transport)
end

-- The last of the server's stderr, for an error message.
local function stderr_tail(self)
  local ok, text = pcall(self.proc.stderr, self.proc)
  if not ok or text == "" then return nil end
  text = redact.text(text, self.secrets):gsub("%s+$", "")
  if #text > 1000 then text = "…" .. text:sub(-1000) end
  return text
end

--- gone(why) → the `mcp` error for a server that stopped answering: how it ended
-- (it is given a moment to exit) and its last words.
function Transport:gone(why)
  local status, code, sig = "running", nil, nil
  local ok, s, c, g = pcall(self.proc.status, self.proc)
  if ok then status, code, sig = s, c, g end
  if ok and status == "running" then   -- a dying server: a moment to learn how it ended
    local waited, c2, g2 = pcall(core.timeout, 1, self.proc.wait, self.proc)
    if waited then status, code, sig = "exited", c2, g2 end
  end
  local how
  if status == "exited" then
    how = sig and ("was killed by signal " .. tostring(sig)) or ("exited with code " .. tostring(code))
  elseif why == "eof" then
    how = "closed its stdout"
  else
    how = "stopped reading its stdin"
  end
  local tail = stderr_tail(self)
  return core.error{kind = "mcp", message = string.format("%s: the MCP server %s%s", self.name, how,
      tail and ("; its stderr ends with: " .. tail) or ""),
    exit_code = code, signal = sig, stderr = tail}
end

--- send(msg, client): one line on the server's stdin.
function Transport:send(msg, client)
  local ok, err = pcall(self.proc.write, self.proc, json.encode(msg) .. "\n")
  if ok then return end
  if core.is_error(err, "cancelled") or not core.is_error(err, "process") then error(err, 0) end
  local e = self:gone("epipe")
  client:fail(e)
  error(e, 0)
end

--- pump(client, slot): reads the server's lines into the client until slot has
-- its reply or the session ended.
function Transport:pump(client, slot)
  while not slot.done and not client.failed do
    local ok, line = pcall(self.proc.read_line, self.proc)
    if not ok then
      if not core.is_error(line, "too_large") then error(line, 0) end   -- cancelled, closed
      client:fail(core.error{kind = "mcp", message = string.format("%s: the MCP server wrote a " ..
        "line longer than max_message on stdout", self.name)})
    elseif line == nil then
      client:fail(self:gone("eof"))
    elseif line:find("%S") then
      client:feed(line)
    end
  end
end

--- close(): stdin closed, a moment to exit, SIGTERM, another moment, then the
-- process is closed (SIGKILL to what is left).
function Transport:close()
  local proc = self.proc
  pcall(proc.close_stdin, proc)
  local ok = pcall(core.timeout, CLOSE_GRACE, proc.wait, proc)
  if not ok and pcall(proc.kill, proc, "term") then
    pcall(core.timeout, CLOSE_GRACE, proc.wait, proc)
  end
  proc:close()
end

return M
