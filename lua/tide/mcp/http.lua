--- tide.mcp over streamable HTTP: each message is a POST to the server's MCP
-- endpoint; the reply comes back as the response's JSON body or as server-sent
-- events on it (notifications and server requests first, the reply last).  The
-- server's Mcp-Session-Id, given with the initialize reply, goes with every
-- later request, as does MCP-Protocol-Version; close() ends the session with a
-- DELETE.  Headers (an Authorization, say) are sent and never shown in errors.
local core = require "tide.core"
local json = require "tide.json"
local sse = require "tide.sse"
local redact = require "tide.redact"

local M = {}

local Transport = {}
Transport.__index = Transport

local MAX_ERROR_BODY = 64 * 1024

--- open{url =, headers =, name =, max_message =} → transport
function M.open(opts)
  return setmetatable({url = opts.url, extra = opts.headers or {}, name = opts.name,
    max_message = opts.max_message, secrets = opts.secrets or {}, reading = false}, Transport)
end

function Transport:headers()
  local h = {}
  for k, v in pairs(self.extra) do h[k] = v end
  h["Content-Type"] = "application/json"
  h["Accept"] = "application/json, text/event-stream"
  if self.session then h["Mcp-Session-Id"] = self.session end
  if self.protocol_version then h["MCP-Protocol-Version"] = self.protocol_version end
  return h
end

local function fail(self, client, message, fields)
  local e = {kind = "mcp", message = self.name .. ": " .. message}
  for k, v in pairs(fields or {}) do e[k] = v end
  e = core.error(e)
  client:fail(e)
  error(e, 0)
end

local function read_all(s, limit)
  local parts, n = {}, 0
  for chunk in s:chunks() do
    parts[#parts + 1] = chunk
    n = n + #chunk
    if n >= limit then break end
  end
  return table.concat(parts):sub(1, limit)
end

--- send(msg, client, slot): POSTs msg and feeds the client what the response
-- carries.  A 404 once a session exists means the server forgot it.
function Transport:send(msg, client)
  local s <close> = core.stream{url = self.url, method = "POST", headers = self:headers(),
    body = json.encode(msg), max_body = self.max_message}
  local status, headers = s.status, s.headers
  if headers["mcp-session-id"] and not self.session then self.session = headers["mcp-session-id"] end
  if status == 202 or status == 204 then return end
  if status == 404 and self.session then
    fail(self, client, "the server ended the session (HTTP 404 for Mcp-Session-Id)", {status = status})
  end
  if status < 200 or status >= 300 then
    local body = redact.text(read_all(s, MAX_ERROR_BODY), self.secrets)
    local ok, decoded = pcall(json.decode, body)
    local detail = ok and type(decoded) == "table" and type(decoded.error) == "table" and
      tostring(decoded.error.message) or body:sub(1, 200)
    fail(self, client, string.format("HTTP %d from the MCP endpoint: %s", status, detail),
      {status = status})
  end
  local ctype = (headers["content-type"] or ""):lower()
  if ctype:find("text/event-stream", 1, true) then
    local parser = sse.new(self.max_message)
    for chunk in s:chunks() do
      for _, ev in ipairs(parser:feed(chunk)) do
        if ev.event == nil or ev.event == "message" then client:feed(ev.data) end
      end
    end
    for _, ev in ipairs(parser:finish()) do
      if ev.event == nil or ev.event == "message" then client:feed(ev.data) end
    end
  elseif ctype:find("application/json", 1, true) then
    client:feed(read_all(s, math.huge))
  else
    fail(self, client, string.format("the MCP endpoint answered %d with content type %q",
      status, ctype), {status = status})
  end
end

--- pump(client, slot): the reply came with the POST's response, or never will.
function Transport:pump(client, slot)
  if not slot.done and not client.failed then
    fail(self, client, slot.method .. ": the response ended without the reply")
  end
end

--- close(): ends the session (DELETE); a server that refuses (405) or is gone is fine.
function Transport:close()
  if not self.session then return end
  pcall(core.timeout, 5, core.request, {url = self.url, method = "DELETE", headers = self:headers()})
  self.session = nil
end

return M
