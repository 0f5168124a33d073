--- tide.Tool: a function a model may call.
--
--   local weather = tide.Tool{name = "weather", desc = "Current weather in a city.",
--     args = {city = "str", unit = "one of: C, F"}, fn = function(args) ... end}
--   weather{city = "Oslo", unit = "C"}   --> "…" (fn's result, as text), nil
--   weather.schema                        --> the JSON schema of its arguments
--   tide.Tool(math.max, {name = "max", args = {...}})   -- a Lua function wrapped directly
--
-- args are given in signature type syntax ("str", "int", "list[str]", "one of: a, b",
-- "Optional[int]") or as a JSON Schema table ({type = "object", properties = ...}).
-- Calling a tool validates and coerces its arguments, then runs fn as a task: a
-- tool may wait (HTTP, LM calls, sleeps), and a turn's calls can run side by side.
-- A failure (bad arguments, an error raised by fn) is not raised: it comes back as
-- the text the model sees, saying what failed, so that an agent loop goes on.
local core = require "tide.core"
local json = require "tide.json"
local check = require "tide.check"
local callbacks = require "tide.callbacks"
local signature = require "tide.signature"
local coerce = require "tide.adapters.coerce"
local adapter_common = require "tide.adapters.common"

local M = {}

local Tool = {}
Tool.__index = Tool
M.Tool = Tool

local NAME_PATTERN = "^[a-zA-Z0-9_-]+$"   -- and 1 to 64 characters: what every provider takes

-- A JSON Schema is an object schema: {type = "object", properties = {...}}.
local function is_schema(args)
  return args.type == "object" and (args.properties == nil or type(args.properties) == "table")
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- Arguments in type syntax → {fields = {{name, type}}, schema}; misuse names the bad one.
local function typed_args(args)
  local fields, properties, required = {}, {}, {}
  for _, name in ipairs(sorted_keys(args)) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      check.fail("Tool", "args", "bad argument name " .. tostring(name))
    end
    local t, err = signature.parse_type(args[name])
    if not t then check.fail("Tool", "args." .. name, err) end
    fields[#fields + 1] = {name = name, type = t}
    properties[name] = adapter_common.schema(t)
    if not t.nullable then required[#required + 1] = name end
  end
  return fields, {type = "object", properties = properties, required = required}
end

--- tide.Tool{name, desc, args, fn} → a tool.  fn(args) receives the coerced arguments.
-- tide.Tool(fn, {name, desc, args}) wraps a Lua function directly.
function M.new(spec, opts)
  if check.callable(spec) then
    opts = check.type("Tool", 2, opts, "table")
    spec = {name = opts.name, desc = opts.desc, args = opts.args, fn = spec}
  end
  check.type("Tool", 1, spec, "table")
  local name = check.type("Tool", "name", spec.name, "string")
  if #name > 64 or not name:match(NAME_PATTERN) then
    check.fail("Tool", "name", string.format("%q: 1 to 64 letters, digits, _ or - expected", name))
  end
  check.type("Tool", "desc", spec.desc, "string", true)
  if not check.callable(spec.fn) then
    check.fail("Tool", "fn", "a function expected, got " .. type(spec.fn))
  end
  local args = check.type("Tool", "args", spec.args, "table", true) or {}
  local self = setmetatable({name = name, desc = spec.desc or "", fn = spec.fn}, Tool)
  if is_schema(args) then
    self.schema = args
  else
    self.fields, self.schema = typed_args(args)
  end
  return self
end

function M.is_tool(v)
  return getmetatable(v) == Tool
end

function Tool:__tostring()
  return string.format("tide.Tool(%q)", self.name)
end

--- The tool as the providers take it: {name, description, parameters}.
function Tool:spec()
  return {name = self.name, description = self.desc, parameters = self.schema}
end

--- Checks the arguments against a JSON Schema's required properties.
local function check_schema(schema, args)
  for _, name in ipairs(schema.required or {}) do
    if args[name] == nil then return nil, "missing argument '" .. name .. "'" end
  end
  return args
end

--- args (a table, or its JSON text) → the coerced arguments, or nil and what is wrong.
function Tool:coerce(args)
  if type(args) == "string" then
    local ok, decoded = pcall(json.decode, args)
    if not ok or type(decoded) ~= "table" then return nil, "arguments are not a JSON object" end
    args = decoded
  end
  if type(args) ~= "table" then return nil, "arguments must be an object, got " .. type(args) end
  if not self.fields then return check_schema(self.schema, args) end
  local out = {}
  for _, f in ipairs(self.fields) do
    local v = args[f.name]
    if v == nil or v == json.null then
      if not f.type.nullable then return nil, "missing argument '" .. f.name .. "'" end
    else
      local value, err = coerce.value(v, f.type)
      if value == nil then
        return nil, string.format("argument '%s' must be %s: %s", f.name, f.type.text, tostring(err))
      end
      out[f.name] = value
    end
  end
  return out
end

local function message_of(err)
  if type(err) == "table" and err.message then return tostring(err.message) end
  return tostring(err)
end

local function as_text(v)
  if type(v) == "string" then return v end
  if v == nil then return "" end
  local ok, text = pcall(json.encode, v)
  if ok then return text end
  return tostring(v)
end

--- The text of a tool's outcome (ok, value of its task): what the model sees.
local function outcome(tool, ok, value)
  if ok then return as_text(value), nil end
  if core.is_error(value, "cancelled") then error(value, 0) end
  return string.format("Error: tool %s failed: %s", tool.name, message_of(value)), value
end

--- tool(args) → the result as text (what the model sees), and nil; on a failure,
-- a text that says what failed, and the error.  A cancellation is raised.
function Tool:__call(args)
  local coerced, why = self:coerce(args)
  if coerced == nil then
    local msg = string.format("Error: tool %s was called with bad arguments: %s", self.name, why)
    return msg, core.error{kind = "bad_request", message = msg}
  end
  local task
  local list = callbacks.on and callbacks.list()
  if list then
    -- the tool's task runs under its call: what it calls is the tool call's child
    local call = callbacks.start(list, "tool", self.name, self, coerced)
    task = core.spawn_in(callbacks.context(call), self.fn, coerced)
    local ok, value = pcall(task.wait, task)
    callbacks.finish(call, ok and value or nil, not ok and value or nil)
    return outcome(self, ok, value)
  end
  task = core.spawn(self.fn, coerced)
  return outcome(self, pcall(task.wait, task))
end

return M
