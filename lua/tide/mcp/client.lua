--- tide.mcp's session: JSON-RPC 2.0 over a transport, the MCP handshake, tools.
--
--   local client = tide.mcp.connect{command = {"npx", "-y", "@modelcontextprotocol/server-everything"}}
--   for _, tool in ipairs(client:tools()) do print(tool.name, tool.desc) end
--   local r = client:call("get-sum", {a = 2, b = 3})   --> {text = "The sum of 2 and 3 is 5.", ...}
--   client:close()
--
-- A transport (stdio.lua, http.lua) moves whole messages: send(msg) and, for a
-- request, pumping what the server says until the reply arrived.  This file
-- tells apart what arrives — a reply (an id we asked with), a notification (a
-- method, no id), a request from the server (a method and an id: answered) —
-- and anything else ends the session with a typed `mcp` error.
local core = require "tide.core"
local json = require "tide.json"
local check = require "tide.check"
local tool_mod = require "tide.tools.tool"
local redact = require "tide.redact"

local M = {}

--- The protocol versions this client speaks, newest first: it asks for the first
-- and accepts any of them in the server's answer.
M.PROTOCOL_VERSIONS = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

local DEFAULT_TIMEOUT = 60     -- seconds a request may take
local KEEP_NOTIFICATIONS = 100 -- the newest ones are kept in client.notifications
local MAX_PAGES = 1000         -- tools/list pages before a server is deemed looping

local Client = {}
Client.__index = Client
M.Client = Client

local function mcp_error(message, fields)
  local e = {kind = "mcp", message = message}
  for k, v in pairs(fields or {}) do e[k] = v end
  return core.error(e)
end
M.error = mcp_error

-- What the server said, for an error message: its credentials redacted (before
-- the cut), 200 bytes at most, on one line.
local function snippet(s, secrets)
  s = redact.text(tostring(s), secrets)
  if #s > 200 then s = s:sub(1, 200) .. "…" end
  return (s:gsub("[%c]", " "))
end

--- new(transport, opts) → a client, not connected yet (connect() does the handshake).
function M.new(transport, opts)
  return setmetatable({
    transport = transport,
    name = opts.name,
    secrets = opts.secrets or {},     -- kept out of every error message
    timeout = opts.timeout or DEFAULT_TIMEOUT,
    sampling = opts.sampling,         -- function(params) → result, for sampling/createMessage
    on_notification = opts.on_notification,
    next_id = 0,
    pending = {},                     -- id → slot {sem, done, result, error, method}
    progress = {},                    -- progress token → callback
    notifications = {},               -- the newest notifications {method, params}
    counts = {},                      -- method → how many arrived
    failed = nil,                     -- the error that ended the session
    closed = false,
  }, Client)
end

-- ---- the session's end -------------------------------------------------------

--- Ends the session with err: every request still waiting raises it, and so will
-- every later one.
function Client:fail(err)
  if self.failed then return end
  self.failed = err
  for _, slot in pairs(self.pending) do
    if not slot.done then
      slot.done, slot.error = true, err
      if slot.sem:waiting() > 0 then slot.sem:release() end
    end
  end
end

-- ---- what arrives --------------------------------------------------------------

local function is_id(v)
  return math.type(v) == "integer" or type(v) == "string"
end

function Client:record(msg)
  local method = msg.method
  self.counts[method] = (self.counts[method] or 0) + 1
  local list = self.notifications
  list[#list + 1] = {method = method, params = msg.params}
  if #list > KEEP_NOTIFICATIONS then table.remove(list, 1) end
  if method == "notifications/tools/list_changed" then self.tools_changed = true end
  if method == "notifications/progress" and type(msg.params) == "table" then
    local fn = self.progress[msg.params.progressToken]
    if fn then pcall(fn, msg.params.progress, msg.params.total, msg.params.message) end
  end
  if self.on_notification then pcall(self.on_notification, method, msg.params) end
end

-- The result of a request the server sent us, or nil and a JSON-RPC error.
function Client:serve(method, params)
  if method == "ping" then return {} end
  if method == "sampling/createMessage" and self.sampling then
    local ok, result = pcall(self.sampling, params)
    if ok and type(result) == "table" then return result end
    return nil, {code = -32603, message = "sampling failed: " ..
      snippet(ok and "the handler returned " .. type(result) or
              (type(result) == "table" and result.message or result))}
  end
  return nil, {code = -32601, message = "Method not found: " .. snippet(method)}
end

-- Answers a request of the server in a task of its own: the reader goes on.
function Client:answer(msg)
  core.spawn(function()
    local result, err = self:serve(msg.method, msg.params)
    local reply = {jsonrpc = "2.0", id = msg.id, result = result, error = err}
    pcall(self.transport.send, self.transport, reply)   -- a server gone meanwhile: nothing to do
  end)
end

--- dispatch(msg): one decoded message from the server (a table, or the raw text
-- when it was not JSON).  Ends the session on anything that is not JSON-RPC 2.0.
function Client:dispatch(msg, raw)
  if type(msg) ~= "table" or msg.jsonrpc ~= "2.0" then
    return self:fail(mcp_error(string.format("%s: the server sent something that is not a " ..
      "JSON-RPC 2.0 message: %s", self.name, snippet(raw or json.encode(msg), self.secrets)),
      {raw = raw and redact.text(raw, self.secrets)}))
  end
  local method, id = msg.method, msg.id
  if type(method) == "string" then
    if id == nil then return self:record(msg) end
    if is_id(id) then return self:answer(msg) end
  elseif is_id(id) and (msg.result ~= nil or msg.error ~= nil) then
    local slot = self.pending[id]
    if slot and not slot.done then
      slot.done, slot.result, slot.rpc_error = true, msg.result, msg.error
      if slot.sem:waiting() > 0 then slot.sem:release() end
    end
    return   -- a reply to a request given up on (timed out): dropped
  end
  return self:fail(mcp_error(string.format("%s: the server sent a malformed JSON-RPC message: %s",
    self.name, snippet(raw or json.encode(msg), self.secrets)), {raw = raw and redact.text(raw, self.secrets)}))
end

--- feed(text): one JSON text from the server (a line of stdio, an SSE event's
-- data, an HTTP body); a JSON array is a batch (2025-03-26).
function Client:feed(text)
  local ok, msg = pcall(json.decode, text)
  if not ok then return self:dispatch(nil, text) end
  if type(msg) == "table" and msg.jsonrpc == nil and #msg > 0 then
    for _, m in ipairs(msg) do self:dispatch(m, text) end
    return
  end
  return self:dispatch(msg, text)
end

-- ---- requests ------------------------------------------------------------------

local function raise_rpc(self, method, e)
  local message = type(e) == "table" and tostring(e.message) or tostring(e)
  error(mcp_error(string.format("%s: %s failed: %s", self.name, method, snippet(message, self.secrets)),
    {code = type(e) == "table" and e.code or nil,
     data = type(e) == "table" and redact.value(e.data, self.secrets) or nil}), 0)
end

-- Waits for slot's reply: the transport pumps what arrives (one task at a time
-- reads; the others wait on their slots and take over when the reader leaves).
function Client:await(slot)
  while not slot.done do
    if self.transport.reading then
      slot.sem:acquire()
    else
      self.transport.reading = true
      local ok, err = pcall(self.transport.pump, self.transport, self, slot)
      self.transport.reading = false
      for _, other in pairs(self.pending) do   -- hand the reading over
        if other ~= slot and not other.done and other.sem:waiting() > 0 then
          other.sem:release()
          break
        end
      end
      if not ok then error(err, 0) end
    end
  end
end

--- request(method, params, opts) → the result; raises `mcp` (the server's error,
-- or the session's end), `timeout` after opts.timeout (the client's by default).
function Client:request(method, params, opts)
  opts = opts or {}
  if self.closed then check.misuse(string.format("mcp %s: the client is closed", method)) end
  if self.failed then error(self.failed, 0) end
  self.next_id = self.next_id + 1
  local id = self.next_id
  local sem = core.semaphore(1)
  sem:acquire()   -- taken: the slot's waiter blocks until the reply releases it
  local slot = {sem = sem, done = false, method = method}
  self.pending[id] = slot
  local msg = {jsonrpc = "2.0", id = id, method = method, params = params}
  local ok, err = pcall(core.timeout, opts.timeout or self.timeout, function()
    self.transport:send(msg, self, slot)
    self:await(slot)
  end)
  self.pending[id] = nil
  if not ok then
    if core.is_error(err, "timeout") and not slot.done then
      pcall(self.notify, self, "notifications/cancelled", {requestId = id, reason = "timed out"})
      error(core.error{kind = "timeout", message = string.format("%s: %s got no reply in %g s",
        self.name, method, opts.timeout or self.timeout)}, 0)
    end
    if core.is_error(err, "cancelled") and not slot.done and not self.failed and method ~= "initialize" then
      -- this task can wait no more: a task of its own tells the server to stop
      core.spawn(pcall, self.notify, self, "notifications/cancelled", {requestId = id, reason = "cancelled"})
    end
    error(err, 0)
  end
  if slot.error then error(slot.error, 0) end
  if slot.rpc_error ~= nil then raise_rpc(self, method, slot.rpc_error) end
  return slot.result
end

--- notify(method, params): a notification to the server.
function Client:notify(method, params)
  if self.failed then error(self.failed, 0) end
  self.transport:send({jsonrpc = "2.0", method = method, params = params}, self)
end

-- ---- the handshake ---------------------------------------------------------------

local function supported(version)
  for _, v in ipairs(M.PROTOCOL_VERSIONS) do if v == version then return true end end
  return false
end

--- connect(): initialize, check the version, notifications/initialized.
function Client:connect(client_info)
  local capabilities = {}
  if self.sampling then capabilities.sampling = {} end
  local result = self:request("initialize", {
    protocolVersion = M.PROTOCOL_VERSIONS[1],
    capabilities = capabilities,
    clientInfo = client_info,
  })
  if type(result) ~= "table" or type(result.protocolVersion) ~= "string" then
    error(mcp_error(self.name .. ": the server's initialize result has no protocolVersion"), 0)
  end
  if not supported(result.protocolVersion) then
    error(mcp_error(string.format("%s: the server speaks MCP %s; tide speaks %s", self.name,
      snippet(result.protocolVersion), table.concat(M.PROTOCOL_VERSIONS, ", ")),
      {protocol_version = result.protocolVersion}), 0)
  end
  self.protocol_version = result.protocolVersion
  self.server_info = result.serverInfo
  self.capabilities = result.capabilities or {}
  self.instructions = result.instructions
  self.transport.protocol_version = result.protocolVersion
  self:notify("notifications/initialized")
  return self
end

-- ---- tools -----------------------------------------------------------------------

--- The text of a tools/call result's content: its text blocks, and the text of
-- embedded resources, one per line.
local function content_text(content)
  local parts = {}
  for _, block in ipairs(type(content) == "table" and content or {}) do
    if type(block) == "table" then
      if block.type == "text" and type(block.text) == "string" then
        parts[#parts + 1] = block.text
      elseif block.type == "resource" and type(block.resource) == "table" and
          type(block.resource.text) == "string" then
        parts[#parts + 1] = block.resource.text
      end
    end
  end
  return table.concat(parts, "\n")
end

--- call(name, args, opts) → {text, content, is_error, structured}.  opts:
-- timeout, on_progress = function(progress, total, message).  A tool that failed
-- is a result with is_error = true (the server's words in text), not an error.
function Client:call(name, args, opts)
  check.type("mcp call", 1, name, "string")
  check.type("mcp call", 2, args, "table", true)
  opts = check.type("mcp call", 3, opts, "table", true) or {}
  check.number("mcp call", "opts.timeout", opts.timeout, {above = 0, max = 1e9}, true)
  if opts.on_progress ~= nil and not check.callable(opts.on_progress) then
    check.fail("mcp call", "opts.on_progress", "a function(progress, total, message) expected, got " ..
      type(opts.on_progress))
  end
  local params = {name = name, arguments = args or {}}
  local token
  if opts.on_progress then
    token = "tide-" .. tostring(self.next_id + 1)
    params._meta = {progressToken = token}
    self.progress[token] = opts.on_progress
  end
  local ok, result = pcall(self.request, self, "tools/call", params, {timeout = opts.timeout})
  if token then self.progress[token] = nil end
  if not ok then error(result, 0) end
  if type(result) ~= "table" then
    error(mcp_error(string.format("%s: tools/call %s: the result is not an object", self.name, name)), 0)
  end
  local structured = result.structuredContent
  if structured == json.null then structured = nil end
  return {
    text = content_text(result.content),
    content = type(result.content) == "table" and result.content or {},
    is_error = result.isError == true,
    structured = structured,
  }
end

--- list_tools() → the server's tool descriptions, every page (tools/list with its cursor).
function Client:list_tools()
  local out, cursor = {}, nil
  for _ = 1, MAX_PAGES do
    local result = self:request("tools/list", cursor and {cursor = cursor} or nil)
    if type(result) ~= "table" or type(result.tools) ~= "table" then
      error(mcp_error(self.name .. ": the tools/list result has no tools list"), 0)
    end
    for _, t in ipairs(result.tools) do out[#out + 1] = t end
    cursor = result.nextCursor
    if cursor == nil or cursor == json.null then
      self.tools_changed = false
      return out
    end
  end
  error(mcp_error(string.format("%s: tools/list went on for %d pages", self.name, MAX_PAGES)), 0)
end

-- A name every provider takes (letters, digits, _ and -, up to 64).
local function tool_name(name, taken)
  local base = name:gsub("[^%w_-]", "_"):sub(1, 64)
  if base == "" then base = "tool" end
  local out, n = base, 1
  while taken[out] do
    n = n + 1
    out = base:sub(1, 64 - #tostring(n) - 1) .. "_" .. n
  end
  taken[out] = true
  return out
end

local function input_schema(schema)
  if type(schema) ~= "table" or schema.type ~= "object" then
    return {type = "object", properties = {}}
  end
  if schema.properties == nil or next(schema.properties) == nil then
    schema.properties = {}
  end
  return schema
end

--- tools() → a tide.Tool for each of the server's tools.  Calling one calls the
-- server; a result with is_error raises inside the tool, which the model then
-- sees as "Error: tool … failed: …".  tool.mcp_name is the server's own name.
function Client:tools()
  local list, taken = {}, {}
  for _, t in ipairs(self:list_tools()) do
    if type(t) == "table" and type(t.name) == "string" then
      local mcp_name = t.name
      local tool = tool_mod.new{
        name = tool_name(mcp_name, taken),
        desc = type(t.description) == "string" and t.description or
          (type(t.title) == "string" and t.title or ""),
        args = input_schema(t.inputSchema),
        fn = function(args)
          local r = self:call(mcp_name, args)
          if r.is_error then
            error(mcp_error(r.text ~= "" and redact.text(r.text, self.secrets) or
              ("the tool " .. mcp_name .. " failed")), 0)
          end
          if r.text == "" and r.structured ~= nil then return json.encode(r.structured) end
          return r.text
        end,
      }
      tool.mcp_name = mcp_name
      tool.title = t.title
      list[#list + 1] = tool
    end
  end
  return list
end

--- ping(): the server answers, or this raises.
function Client:ping(opts)
  self:request("ping", nil, opts)
  return true
end

--- close(): ends the session and the server (the transport's way); again is a no-op.
function Client:close()
  if self.closed then return end
  self.closed = true
  self:fail(mcp_error(self.name .. ": the client was closed"))
  self.transport:close()
end
Client.__close = Client.close

function Client:__tostring()
  return string.format("tide.mcp.Client(%s%s)", self.name, self.closed and ", closed" or "")
end

return M
