--- Server-sent events framing: bytes in, events out.
--
-- A response body arrives in pieces cut anywhere; feed() keeps the unfinished tail
-- and returns the complete events, each {event = name or nil, data = text} with
-- several data lines joined by "\n", as the SSE format defines.  Comments (lines
-- starting with ':') and other fields (id, retry) are ignored.
local M = {}

local Parser = {}
Parser.__index = Parser

function M.new()
  return setmetatable({tail = "", name = nil, data = nil}, Parser)
end

--- Returns the list of events completed by this chunk (possibly empty).
function Parser:feed(chunk)
  local events = {}
  local text = self.tail .. chunk
  local pos = 1
  while true do
    local eol = text:find("\n", pos, true)
    if not eol then break end
    local line = text:sub(pos, eol - 1)
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    pos = eol + 1
    if line == "" then
      if self.data then
        events[#events + 1] = {event = self.name, data = self.data}
      end
      self.name, self.data = nil, nil
    elseif line:sub(1, 1) ~= ":" then
      local field, value = line:match("^([^:]*):? ?(.*)$")
      if field == "data" then
        self.data = self.data and (self.data .. "\n" .. value) or value
      elseif field == "event" then
        self.name = value
      end
    end
  end
  self.tail = text:sub(pos)
  return events
end

--- The event left open when the body ended without a final blank line.
function Parser:finish()
  local events = self:feed("\n\n")
  return events
end

return M
