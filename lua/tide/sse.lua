--- Server-sent events framing: bytes in, events out.
--
-- A response body arrives in pieces cut anywhere; feed() keeps the unfinished tail
-- and returns the complete events, each {event = name or nil, data = text} with
-- several data lines joined by "\n", as the SSE format defines.  Comments (lines
-- starting with ':') and other fields (id, retry) are ignored.  Lines end in CR LF,
-- LF or a lone CR (a CR at the end of one piece and a LF at the start of the next
-- are one line end); a byte-order mark at the very start of the stream is dropped.
--
-- An event whose data is empty is not returned: a browser would dispatch it with
-- data "", but none of the formats read here gives it a meaning (it is a
-- keep-alive), and skipping it keeps a flood of them at the cost of their bytes.
--
-- Work and memory are linear in the bytes fed: each line is read with one pattern
-- match, text is copied a bounded number of times, and empty data lines are
-- counted rather than stored.  An event may not grow past max_event bytes (16 MiB
-- unless new() is told): a server that never ends its line or its event gets a
-- typed `too_large` error instead of our memory.  finish() takes the event left
-- open when the body ended without its blank line.
local core = require "tide.core"
local check = require "tide.check"

local byte, sub, match, find, rep = string.byte, string.sub, string.match, string.find, string.rep
local concat = table.concat

local M = {}

local DEFAULT_MAX_EVENT = 16 * 1024 * 1024
local BOM = "\239\187\191"
-- One line: its field name, its value (after "name:" and one optional space) and
-- the position of its line end (one past the text when the line goes on).
local LINE = "^([^:\r\n]*):? ?([^\r\n]*)()"
local CR, LF = 13, 10

-- ---- ropes ------------------------------------------------------------------
-- Pieces joined once at the end, with `sep` between them.  Every FOLD pieces are
-- joined into a block, so a text arriving a byte at a time holds a table slot
-- per FOLD bytes, not per byte, and each byte is copied at most twice.

local FOLD = 256

local function rope(sep) return {n = 0, len = 0, blocks = nil, sep = sep} end

local function rope_add(r, s)
  local n = r.n + 1
  r[n], r.n, r.len = s, n, r.len + #s
  if n == FOLD then
    local blocks = r.blocks or {}
    blocks[#blocks + 1] = concat(r, r.sep, 1, n)
    for i = 1, n do r[i] = nil end
    r.blocks, r.n = blocks, 0
  end
end

--- The joined text; the rope is left empty for reuse.
local function rope_take(r)
  local n, s = r.n, nil
  if r.blocks then
    if n > 0 then r.blocks[#r.blocks + 1] = concat(r, r.sep, 1, n) end
    s = concat(r.blocks, r.sep)
  elseif n == 1 then
    s = r[1]
  else
    s = concat(r, r.sep, 1, n)
  end
  for i = 1, n do r[i] = nil end
  r.n, r.len, r.blocks = 0, 0, nil
  return s
end

-- ---- the parser -----------------------------------------------------------------

local Parser = {}
Parser.__index = Parser

--- new([max_event]) → a parser
function M.new(max_event)
  check.number("sse.new", 1, max_event, {integer = true, min = 1}, true)
  return setmetatable({
    max = max_event or DEFAULT_MAX_EVENT,
    fresh = true,        -- nothing read yet: a byte-order mark may come
    head = nil,          -- the first bytes, while they may still be a split mark
    after_cr = false,    -- the last piece ended in CR: a LF first in the next is its pair
    held = rope(""),     -- the unfinished line
    name = nil,          -- the event's `event:` field
    lines = 0,           -- its data lines so far
    first = nil,         -- the first data line (most events have only one)
    rest = rope("\n"),   -- the later ones, a run of empty lines stored as one
    empties = 0,         -- empty lines not stored yet
    data_len = 0,        -- the event's size as the cap counts it
  }, Parser)
end

local function too_large(self)
  error(core.error{kind = "too_large", message = string.format(
    "server-sent event larger than %d bytes", self.max)}, 0)
end

local function add_data(self, value)
  self.data_len = self.data_len + #value + 1
  if self.data_len > self.max then too_large(self) end
  local lines = self.lines
  self.lines = lines + 1
  if lines == 0 then
    self.first = value
  elseif value == "" then
    self.empties = self.empties + 1
  else
    -- k empty lines between two others are k + 1 line ends: the run's entry
    -- holds k - 1 of them, the two separators around it the rest
    if self.empties > 0 then
      rope_add(self.rest, rep("\n", self.empties - 1))
      self.empties = 0
    end
    rope_add(self.rest, value)
  end
end

-- A blank line: the event read so far, when it has data, goes out.
local function dispatch(self, events)
  local data = self.first
  if self.lines > 1 then
    if self.rest.n > 0 or self.rest.blocks then data = data .. "\n" .. rope_take(self.rest) end
    data = data .. rep("\n", self.empties)
  end
  if data ~= "" then events[#events + 1] = {event = self.name, data = data} end
  self.name, self.lines, self.first, self.empties, self.data_len = nil, 0, nil, 0, 0
end

local function hold(self, piece)
  local held = self.held
  rope_add(held, piece)
  if held.len + self.data_len > self.max then too_large(self) end
end

-- The first piece(s) without a leading byte-order mark; nil while the bytes
-- seen could still be the start of one.
local function strip_bom(self, chunk)
  local head = self.head and self.head .. chunk or chunk
  if #head < #BOM and sub(BOM, 1, #head) == head then
    self.head = head
    return nil
  end
  self.fresh, self.head = false, nil
  if sub(head, 1, #BOM) == BOM then return sub(head, #BOM + 1) end
  return head
end

--- Returns the list of events completed by this chunk (possibly empty).
-- Raises a `too_large` error when an event outgrows the cap.
function Parser:feed(chunk)
  local events = {}
  if self.fresh then
    chunk = strip_bom(self, chunk)
    if chunk == nil then return events end
  end
  local n, pos = #chunk, 1
  if n == 0 then return events end
  if self.after_cr then
    self.after_cr = false
    if byte(chunk, 1) == LF then pos = 2 end
  end
  if not find(chunk, "[\r\n]", pos) then   -- the line goes on: no need to read it yet
    if pos <= n then hold(self, pos == 1 and chunk or sub(chunk, pos)) end
    return events
  end
  local text = chunk
  if self.held.n > 0 then   -- (then pos is 1: a held line never follows a CR)
    rope_add(self.held, chunk)
    text = rope_take(self.held)
    n = #text
  end
  while true do
    local field, value, stop = match(text, LINE, pos)
    local eol = byte(text, stop)
    if eol == nil then break end   -- an unfinished line
    if stop == pos then
      if self.lines > 0 then dispatch(self, events) else self.name = nil end
    elseif field == "data" then
      add_data(self, value)
    elseif field == "event" then
      self.name = value
    end
    pos = stop + 1
    if eol == CR then
      if pos > n then
        self.after_cr = true
      elseif byte(text, pos) == LF then
        pos = pos + 1
      end
    end
  end
  if pos <= n then hold(self, sub(text, pos)) end
  return events
end

--- The event left open when the body ended without a final blank line.
function Parser:finish()
  return self:feed("\n\n")
end

return M
