--- The MCP servers the specs talk to: the pinned reference servers from npm
-- (installed by make deps into spec/support/mcp/node_modules) and a fake one
-- that misbehaves on demand (fake_server.lua).
local tide = require "tide"

local M = {}

local BIN = "spec/support/mcp/node_modules/.bin/"
M.everything = BIN .. "mcp-server-everything"
M.filesystem = BIN .. "mcp-server-filesystem"

--- installed() raises, saying how to install them, when the servers are missing.
function M.require_installed()
  for _, path in ipairs{M.everything, M.filesystem} do
    local f = io.open(path)
    if not f then error("the reference MCP servers are not installed: run make deps (" .. path .. ")", 0) end
    f:close()
  end
end

--- fake(mode) → the command of the fake server in that mode.
function M.fake(mode)
  return {"lua5.4", "spec/support/mcp/fake_server.lua", mode}
end

--- free_port() → a loopback port nothing listens on (the kernel's pick).
function M.free_port()
  local p = tide.process{cmd = {"node", "-e", [[const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })]]}}
  local port = tonumber(p:read_line())
  p:wait()
  p:close()
  return port
end

--- everything_http() → server-everything in streamable HTTP mode on a free
-- port, up and answering: .url (its /mcp endpoint), .proc, :stop().
function M.everything_http()
  local port = M.free_port()
  local proc = tide.process{cmd = {M.everything, "streamableHttp"}, env = {PORT = tostring(port)}}
  local self = {proc = proc, url = "http://127.0.0.1:" .. port .. "/mcp"}
  for _ = 1, 400 do   -- up to ~20 s on a loaded machine
    local ok = pcall(tide.request, {url = self.url})   -- a GET without a session: 400 once up
    if ok then break end
    tide.sleep(0.05)
  end
  function self.stop()
    proc:kill("term")
    proc:wait()
    proc:close()
  end
  return self
end

return M
