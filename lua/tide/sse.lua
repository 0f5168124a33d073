--- Server-sent events framing: bytes in, events out.
--
-- A response body arrives in pieces cut anywhere; feed() keeps the unfinished tail
-- and returns the complete events, each {event = name or nil, data = text} with
-- several data lines joined by "\n", as the SSE format defines.  Comments (lines
-- starting with ':') and other fields (id, retry) are ignored.
--
-- An event may not grow past max_event bytes (16 MiB unless new() is told): a
-- server that never ends its line or its event gets a typed `too_large` error
-- instead of our memory.  Pieces without a line end are kept in a list and joined
-- once the line ends, so a long line costs linear time, not quadratic.
local core = require "tide.core"

local M = {}

local DEFAULT_MAX_EVENT = 16 * 1024 * 1024

local Parser = {}
Parser.__index = Parser

--- new([max_event]) → a parser
function M.new(max_event)
  if max_event ~= nil and (math.type(max_event) ~= "integer" or max_event < 1) then
    error("bad argument #1 to 'sse.new' (positive integer expected)", 2)
  end
  return setmetatable({pending = {}, pending_len = 0, name = nil, data = nil, data_len = 0,
                       max = max_event or DEFAULT_MAX_EVENT}, Parser)
end

local function too_large(self)
  error(core.error{kind = "too_large", message = string.format(
    "server-sent event larger than %d bytes", self.max)}, 0)
end

local function add_data(self, value)
  self.data_len = self.data_len + #value + 1
  if self.data_len > self.max then too_large(self) end
  if self.data then
    self.data[#self.data + 1] = value
  else
    self.data = {value}
  end
end

--- Returns the list of events completed by this chunk (possibly empty).
-- Raises a `too_large` error when an event outgrows the cap.
function Parser:feed(chunk)
  local events = {}
  if not chunk:find("\n", 1, true) then
    self.pending[#self.pending + 1] = chunk
    self.pending_len = self.pending_len + #chunk
    if self.pending_len + self.data_len > self.max then too_large(self) end
    return events
  end
  local text = chunk
  if #self.pending > 0 then
    self.pending[#self.pending + 1] = chunk
    text = table.concat(self.pending)
    self.pending, self.pending_len = {}, 0
  end
  local pos = 1
  while true do
    local eol = text:find("\n", pos, true)
    if not eol then break end
    local line = text:sub(pos, eol - 1)
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    pos = eol + 1
    if line == "" then
      if self.data then
        events[#events + 1] = {event = self.name, data = table.concat(self.data, "\n")}
      end
      self.name, self.data, self.data_len = nil, nil, 0
    elseif line:sub(1, 1) ~= ":" then
      local field, value = line:match("^([^:]*):? ?(.*)$")
      if field == "data" then
        add_data(self, value)
      elseif field == "event" then
        self.name = value
      end
    end
  end
  if pos <= #text then
    local tail = text:sub(pos)
    self.pending[1], self.pending_len = tail, #tail
    if self.pending_len + self.data_len > self.max then too_large(self) end
  end
  return events
end

--- The event left open when the body ended without a final blank line.
function Parser:finish()
  return self:feed("\n\n")
end

return M
