--- Starts mockllm on an ephemeral loopback port for a spec file, and talks to
-- its control endpoints.  Everything goes over real sockets through tide.request.
local tide = require "tide"
local cjson = require "cjson"
local exited = require "support.exited"
local eventually = require "support.eventually"
local spawn = require "support.spawn"
local assert_clean = require "support.clean"

local M = {}
M.__index = M

local function bin()
  return os.getenv("MOCKLLM_BIN") or "build/mockllm"
end

--- mockllm.start{latency_ms = n, scenario = "k=v;...", no_accept = true, port = n,
-- lenient = true} → server.  lenient: --lenient, for a spec that sends requests the
-- real APIs refuse (no key, missing fields) on purpose.
function M.start(opts)
  opts = opts or {}
  local args = {"--port", tostring(opts.port or 0), "--quiet"}
  if opts.latency_ms then args[#args + 1] = "--latency-ms " .. opts.latency_ms end
  if opts.scenario then args[#args + 1] = "--scenario '" .. opts.scenario .. "'" end
  if opts.no_accept then args[#args + 1] = "--no-accept" end
  if opts.lenient then args[#args + 1] = "--lenient" end
  local self = setmetatable({}, M)
  local port
  self.pipe, self.pid, port = spawn(bin() .. " " .. table.concat(args, " "),
    "listening on http://127%.0%.0%.1:(%d+)$", "mockllm")
  self.port = tonumber(port)
  self.url = "http://127.0.0.1:" .. self.port
  return self
end

--- For a describe block, its hooks registered through busted's API: a server
-- started at setup (opts as start's), reset before each spec, checked clean
-- (support.clean) after it and stopped at the end → that server, whose fields
-- (url, port) are there once the block's setup has run.
--
--   local server = mockllm.serve()
function M.serve(opts)
  local busted = require "busted"
  local server = setmetatable({}, M)
  busted.setup(function()
    for k, v in pairs(M.start(opts)) do server[k] = v end
  end)
  busted.teardown(function() server:stop() end)
  busted.before_each(function() server:reset() end)
  busted.after_each(assert_clean)
  return server
end

--- A scenario value percent-encoded for the header (mockllm decodes %XX there):
-- all but letters, digits, _ and the parentheses of a tool script.
function M.encode(script)
  return (script:gsub("[^%w_()]", function(c) return string.format("%%%02X", c:byte()) end))
end

function M:get_json(path)
  local r = tide.request{url = self.url .. path, timeout = 10}
  assert(r.status == 200, "mockllm " .. path .. " answered " .. r.status)
  return cjson.decode(r.body)
end

--- Counters since the last reset: requests, completed, in_flight, peak_in_flight,
-- aborted (requests whose client closed the connection first), ...
function M:stats()
  return self:get_json("/__stats")
end

function M:reset()
  return self:get_json("/__reset")
end

--- Stops the server and waits until it has exited (SIGTERM lets it finish what
-- it was writing first), so that a server started next on the same port can
-- bind it: a restart spec that starts the next one at once raced the old one.
function M:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    local pid = self.pid
    eventually(function() return exited(pid) end)
    self.pipe:close()
    self.pid = nil
  end
end

--- Polls the server's counters until pred(stats) holds: the server sees a client's
-- close a little after the client made it.  Gives up after `tries` looks.
function M:wait_for(pred, tries)
  local s
  for _ = 1, tries or 200 do
    s = self:stats()
    if pred(s) then return s end
    tide.sleep(0.01)
  end
  return s
end

return M
