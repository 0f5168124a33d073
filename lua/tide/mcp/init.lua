--- tide.mcp: use the tools of an MCP server (Model Context Protocol).
--
--   local fs <close> = tide.mcp.connect{command = {"npx", "-y", "@modelcontextprotocol/server-filesystem", "/data"}}
--   local agent = tide.Predict("question -> answer", {tools = fs:tools()})
--
--   local web = tide.mcp.connect{url = "http://127.0.0.1:3001/mcp", headers = {Authorization = "Bearer …"}}
--
-- connect{command = {prog, args...}, env = {NAME = value | false}, cwd = dir,
--         stderr = "tail" | "inherit" | "ignore"}          -- stdio: a child process
-- connect{url = "http(s)://…/mcp", headers = {...}}         -- streamable HTTP
-- and for both: timeout (seconds per request, 60), max_message (bytes, 16 MiB),
-- sampling = function(params) → result (answers the server's sampling/createMessage),
-- on_notification = function(method, params), name (for messages).
local check = require "tide.check"
local redact = require "tide.redact"
local client = require "tide.mcp.client"

local M = {
  PROTOCOL_VERSIONS = client.PROTOCOL_VERSIONS,
  Client = client.Client,
}

local CLIENT_INFO = {name = "tide", version = require("tide.core").version}

local function check_opts(opts)
  check.type("mcp.connect", 1, opts, "table")
  if (opts.command == nil) == (opts.url == nil) then
    check.fail("mcp.connect", 1, "give either command = {prog, args...} (stdio) or url = " ..
      "\"http://…\" (streamable HTTP)")
  end
  if opts.command ~= nil then
    check.type("mcp.connect", "command", opts.command, "table")
    if #opts.command == 0 then check.fail("mcp.connect", "command", "{prog, args...} expected, got {}") end
    for i, v in ipairs(opts.command) do
      if type(v) ~= "string" then
        check.fail("mcp.connect", "command", string.format("item %d must be a string, got %s", i, type(v)))
      end
    end
    check.type("mcp.connect", "env", opts.env, "table", true)
    check.type("mcp.connect", "cwd", opts.cwd, "string", true)
    check.type("mcp.connect", "stderr", opts.stderr, "string", true)
  else
    check.type("mcp.connect", "url", opts.url, "string")
    if not opts.url:match("^https?://") then
      check.fail("mcp.connect", "url", "an http:// or https:// URL expected")
    end
    check.type("mcp.connect", "headers", opts.headers, "table", true)
  end
  check.number("mcp.connect", "timeout", opts.timeout, {above = 0, max = 1e9}, true)
  check.number("mcp.connect", "max_message", opts.max_message, {integer = true, min = 1}, true)
  check.type("mcp.connect", "name", opts.name, "string", true)
  if opts.sampling ~= nil and not check.callable(opts.sampling) then
    check.fail("mcp.connect", "sampling", "a function(params) expected, got " .. type(opts.sampling))
  end
  if opts.on_notification ~= nil and not check.callable(opts.on_notification) then
    check.fail("mcp.connect", "on_notification", "a function(method, params) expected, got " ..
      type(opts.on_notification))
  end
end

-- What error messages call the server: its program, or the URL without its query.
local function server_name(opts)
  if opts.name then return opts.name end
  if opts.command then
    local last = opts.command[#opts.command]
    return "mcp " .. (opts.command[1]:match("[^/]+$") or opts.command[1]) ..
      (#opts.command > 1 and (" … " .. (last:match("[^/]+$") or last)) or "")
  end
  return "mcp " .. opts.url:gsub("[?#].*$", ""):gsub("//[^/@]*@", "//")
end

-- Names whose values are credentials: kept out of every error (a server may echo
-- its environment or a header into its stderr or an error text).
local SECRET_NAME = {"key", "token", "secret", "password", "passwd", "auth", "cookie", "credential"}

local function secrets_of(opts)
  local list = redact.known_keys()
  for _, t in ipairs{opts.env or {}, opts.headers or {}} do
    for name, value in pairs(t) do
      local lname = type(name) == "string" and name:lower() or ""
      for _, word in ipairs(SECRET_NAME) do
        if type(value) == "string" and lname:find(word, 1, true) then
          list[#list + 1] = value
          list[#list + 1] = value:match("^%a+%s+(.+)$")   -- "Bearer sk-...": the key alone too
          break
        end
      end
    end
  end
  return redact.usable(list)
end

--- connect(opts) → a client after the initialize handshake; raises `mcp` when the
-- server cannot start, breaks the protocol or speaks no version tide knows,
-- `timeout` when it does not answer in time.
function M.connect(opts)
  check_opts(opts)
  local topts = {}
  for k, v in pairs(opts) do topts[k] = v end
  topts.name = server_name(opts)
  topts.secrets = secrets_of(opts)
  redact.register(topts.secrets)
  local transport = opts.command and require("tide.mcp.stdio").open(topts) or
    require("tide.mcp.http").open(topts)
  local c = client.new(transport, topts)
  local ok, err = pcall(c.connect, c, CLIENT_INFO)
  if not ok then
    pcall(c.close, c)
    error(err, 0)
  end
  return c
end

return M
