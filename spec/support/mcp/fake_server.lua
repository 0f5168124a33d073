-- A misbehaving MCP server for the bad-input specs (lua5.4 fake_server.lua MODE):
-- one JSON line per message on stdin and stdout, as the stdio transport says, and
-- a log of what it received on stderr (which the client keeps as the tail).
--   hang      answers initialize and ping, never tools/call
--   crash     answers initialize and tools/list, exits with code 1 on tools/call
--   garbage   answers initialize, then writes a line that is not JSON
--   version   answers initialize with a protocol version nobody speaks
--   paged     tools/list in three pages; before each reply a notification, and
--             before the first a ping and a roots/list request of its own
local cjson = require "cjson"

local mode = arg[1]
io.stdout:setvbuf("line")
io.stderr:setvbuf("no")

local function send(msg) io.stdout:write(cjson.encode(msg), "\n") end
local function reply(id, result) send{jsonrpc = "2.0", id = id, result = result} end
local function log(...) io.stderr:write(table.concat({...}, " "), "\n") end

local function tool(name)
  return {name = name, description = "The " .. name .. " tool.",
    inputSchema = {type = "object", properties = {x = {type = "number"}}}}
end

local PAGES = {
  {tools = {tool("one"), tool("two")}, nextCursor = "page2"},
  {tools = {tool("three"), tool("dotted.name")}, nextCursor = "page3"},
  {tools = {tool("five")}},
}

for line in io.lines() do
  local msg = cjson.decode(line)
  log("got", msg.method or ("reply " .. tostring(msg.id)),
      msg.error and ("error " .. tostring(msg.error.code)) or "",
      msg.result and "result" or "")
  if msg.method == "initialize" then
    reply(msg.id, {protocolVersion = mode == "version" and "1999-01-01" or msg.params.protocolVersion,
      capabilities = {tools = {}}, serverInfo = {name = "fake-" .. mode, version = "0"}})
    if mode == "garbage" then io.stdout:write("Server started! (not JSON)\n") end
  elseif msg.method == "ping" then
    reply(msg.id, {})
  elseif msg.method == "tools/list" then
    local page = 1
    if msg.params and msg.params.cursor == "page2" then page = 2 end
    if msg.params and msg.params.cursor == "page3" then page = 3 end
    if mode == "paged" and page == 1 then
      send{jsonrpc = "2.0", id = "s1", method = "ping"}
      send{jsonrpc = "2.0", id = "s2", method = "roots/list"}
    end
    send{jsonrpc = "2.0", method = "notifications/message", params = {level = "info", data = "page " .. page}}
    reply(msg.id, mode == "paged" and PAGES[page] or {tools = {tool("one")}})
  elseif msg.method == "tools/call" then
    if mode == "crash" then
      log("fatal: the tool blew up")
      os.exit(1)
    end
    if mode ~= "hang" then
      reply(msg.id, {content = {{type = "text", text = "called " .. msg.params.name}}})
    end
  end
end
