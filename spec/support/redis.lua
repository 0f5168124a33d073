--- A real redis-server for a spec file: started on a free loopback port with no
-- persistence (--save '' --appendonly no), stopped at the end; kill() is a crash
-- (SIGKILL) and restart() brings it back on the same port.
--
--   local redis = require "support.redis"
--   local server = redis.start{password = "pw"}   -- server.url, server.port
--   server:kill(); server:restart(); server:stop()
local tide = require "tide"
local files = require "support.files"
local exited = require "support.exited"
local eventually = require "support.eventually"

local shell_quote = files.quote

local M = {}
M.__index = M

-- Ports are drawn below the kernel's ephemeral range (32768 up, where clients'
-- own ports come from); a taken one shows as redis-server exiting, and another
-- is drawn.
local seeded = false
local function random_port()
  if not seeded then
    local f = io.open("/proc/self/stat")
    local pid = f and tonumber(f:read("a"):match("^(%d+)")) or 0
    if f then f:close() end
    math.randomseed(os.time() + pid * 7919 + math.floor(tide.now() * 1e6))
    seeded = true
  end
  return math.random(20000, 32000)
end

--- Starts redis-server on self.port; true once it accepts connections, false
-- when it exited (the port was taken).
function M:_launch()
  local args = {"redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1",
    "--save", "''", "--appendonly", "no", "--daemonize", "no",
    "--logfile", shell_quote(self.log)}
  if self.password then
    args[#args + 1] = "--requirepass"
    args[#args + 1] = shell_quote(self.password)
  end
  for _, extra in ipairs(self.extra or {}) do args[#args + 1] = extra end
  os.remove(self.log)
  local pipe = assert(io.popen(table.concat(args, " ") .. " >/dev/null 2>&1 & echo $!", "r"))
  self.pid = tonumber(pipe:read("l"))
  pipe:close()
  for _ = 1, 1000 do
    local text = files.read(self.log) or ""
    if text:find("Ready to accept connections", 1, true) then return true end
    if exited(self.pid) then
      self.pid = nil
      return false
    end
    tide.sleep(0.01)
  end
  error("redis-server did not start: " .. (files.read(self.log) or ""))
end

--- redis.start{password = pw, extra = {"--maxmemory", "1mb"}} → a running server.
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({dir = files.tmpdir(), password = opts.password,
    extra = opts.extra}, M)
  self.log = self.dir .. "/redis.log"
  for _ = 1, 20 do
    self.port = random_port()
    if self:_launch() then
      self.url = string.format("redis://%s127.0.0.1:%d", self.password and
        (":" .. self.password .. "@") or "", self.port)
      return self
    end
  end
  error("redis-server found no free port: " .. (files.read(self.log) or ""))
end

local function signal_and_wait(self, sig)
  if not self.pid then return end
  local pid = self.pid
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid))
  eventually(function() return exited(pid) end)
  self.pid = nil
end

--- Kills the server as a crash would (SIGKILL): connections break mid-use.
function M:kill()
  signal_and_wait(self, "KILL")
end

--- The server again on the same port, empty (nothing was persisted).
function M:restart()
  assert(self.pid == nil, "restart a killed or stopped server")
  assert(self:_launch(), "redis-server could not take its port back")
end

--- Runs redis-cli against the server (for a spec's own look at the keys).
function M:cli(...)
  local args = {"redis-cli", "-p", tostring(self.port)}
  if self.password then
    args[#args + 1] = "--no-auth-warning -a"
    args[#args + 1] = shell_quote(self.password)
  end
  for _, a in ipairs{...} do args[#args + 1] = shell_quote(a) end
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return (out:gsub("\n$", ""))
end

function M:stop()
  signal_and_wait(self, "TERM")
  os.execute("rm -rf " .. shell_quote(self.dir))
end

return M
