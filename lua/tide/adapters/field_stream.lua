--- Streaming a predictor's output fields as they arrive.
--
--   for ev in predictor:stream({question = q}) do
--     if ev.field then io.write(ev.chunk) else print(ev.prediction.answer) end
--   end
--
-- The reply streams through lm:stream; a splitter follows it and yields
-- {field = name, chunk = text} for the output fields' text: with the chat
-- adapter each `[[ ## field ## ]]` section, with the JSON adapter each value of
-- the reply's object (a string's characters, decoded; another value's JSON text).
-- The chunks of a field concatenate to exactly the text the adapter's parse reads
-- for it (a section trimmed as chat.parse trims it, a string as decoded), so a
-- str field's chunks make its value; markers, blanks the parse would trim and
-- text outside the fields never appear, however the stream cut them (a field's
-- first section streams: an optional field's "None" there shows, and the parse
-- then reads its next section, as chat.parse does; a JSON key given twice streams
-- its first value, where the parse keeps the last).  Once the stream ends the
-- reply is read (the chat adapter's from the sections cut on the way, as
-- chat.parse would cut them) and {prediction = ...} comes last.  A
-- reply that does not parse goes, as in a call, to the adapter's fallback (the
-- chat adapter's JSON call, not streamed) unless fallback is false; parse_retries
-- do not apply to a stream.  Leaving the loop early closes the LM's stream.
-- A predictor with tools streams turn by turn through reply and read
-- (tide.tools.loop's stream).
local common = require "tide.adapters.common"
local prediction = require "tide.prediction"
local check = require "tide.check"
local cjson = require "cjson"

local M = {}

-- ---- the blanks a parse trims ----------------------------------------------------------

-- Feeds a field's text while holding back what trimming may drop: the leading
-- blanks, the trailing ones until something follows them, and (for a chat section)
-- the blanks that end its header's line, which chat.parse trims on their own.
local Trimmer = {}
Trimmer.__index = Trimmer

local function trimmer(header_line)
  return setmetatable({started = false, pending = "", header_line = header_line}, Trimmer)
end

-- %s's bytes: space, \t, \n, \v, \f, \r.
local SPACE = {[32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true}

-- The part of text[i..j] (no line break of a header's line in it) sure to be in
-- the field's final text; one copy at most.
function Trimmer:plain(text, i, j)
  local first = text:find("%S", i)
  if first == nil or first > j then
    if self.started and i <= j then self.pending = self.pending .. text:sub(i, j) end
    return ""
  end
  local last, byte = j, string.byte
  while SPACE[byte(text, last)] do last = last - 1 end
  local from = self.started and i or first
  local out = (from == 1 and last == #text) and text or text:sub(from, last)
  if self.started and self.pending ~= "" then out = self.pending .. out end
  self.started, self.pending = true, last == j and "" or text:sub(last + 1, j)
  return out
end

-- text → the part that is sure to be in the field's final text
function Trimmer:feed(text)
  local n = #text
  if not self.header_line then return self:plain(text, 1, n) end
  local nl = text:find("\n", 1, true)
  if nl == nil then return self:plain(text, 1, n) end
  -- the end of the header's line: its blanks go, a line break stands for them
  local out = self:plain(text, 1, nl - 1)
  self.header_line = false
  if self.started then self.pending = "\n" end
  local rest = self:plain(text, nl + 1, n)
  return out == "" and rest or out .. rest
end

-- ---- the chat adapter's sections -------------------------------------------------------

local HEADER_START = "[[ ## "
local HEADER_END = " ## ]]"

--- At s[i] (a '['): "yes", name, last (a whole header), "maybe" (s ends in what
-- could still become one) or "no".
local function header_at(s, i)
  local name, last = s:match("^%[%[ ## ([%w_]+) ## %]%]()", i)
  if name then return "yes", name, last - 1 end
  local n = #s - i + 1
  local head = s:sub(i, i + #HEADER_START - 1)
  if head ~= HEADER_START:sub(1, #head) then return "no" end
  if n <= #HEADER_START then return "maybe" end
  local after = s:match("^[%w_]*()", i + #HEADER_START)
  if after == i + #HEADER_START then return "no" end       -- no name
  if after > #s then return "maybe" end
  local tail = s:sub(after, after + #HEADER_END - 1)
  if tail == HEADER_END:sub(1, #tail) and #tail < #HEADER_END then return "maybe" end
  return "no"
end

-- The signature's output names as a set: the fields either splitter streams.
local function output_set(sig)
  local set = {}
  for _, f in ipairs(sig.outputs) do set[f.name] = true end
  return set
end

local Chat = {}
Chat.__index = Chat

local function chat_splitter(sig)
  return setmetatable({outputs = output_set(sig), seen = {}, buf = "", line_blank = true,
                       cr = false, done = false, secs = {}}, Chat)
end

-- Text outside any header goes to the output field's section it is in, and to
-- the loop when it is that field's first section.
function Chat:consume(text, emit)
  local sec = self.sec
  if sec and text ~= "" then
    local out = sec.trim:feed(text)
    if out ~= "" then
      sec[#sec + 1] = out
      if self.field then emit(self.field, out) end
    end
  end
end

--- The reply's sections of output fields so far, {name, text} in order, as
-- chat.read_sections takes them.
function Chat:sections()
  local out = {}
  for i, sec in ipairs(self.secs) do out[i] = {name = sec.name, text = table.concat(sec)} end
  return out
end

local LINE_BLANK = {[32] = true, [9] = true, [11] = true, [12] = true}   -- %s but the line breaks

-- Whether only blanks stand between the line's start and s[i] (before s, the
-- previous pieces said: self.line_blank); read backwards, a few bytes at most.
function Chat:at_line_start(s, i)
  local byte = string.byte
  local j = i - 1
  while j >= 1 and LINE_BLANK[byte(s, j)] do j = j - 1 end
  if j == 0 then return self.line_blank end
  return byte(s, j) == 10
end

function Chat:start(name)
  self.field, self.sec = nil, nil
  if not self.outputs[name] then return end
  self.sec = {name = name, trim = trimmer(true)}
  self.secs[#self.secs + 1] = self.sec
  if not self.seen[name] then   -- a field's first section streams (the parse's, but for None)
    self.seen[name] = true
    self.field = name
  end
end

-- Line breaks as chat.parse reads them: \r\n and \r are \n (a \r at the end of
-- a piece waits for the next).
function Chat:normalise(text)
  if not self.cr and not text:find("\r", 1, true) then return text end   -- the usual reply
  if self.cr then text = "\r" .. text end
  self.cr = text:byte(-1) == 13
  if self.cr then text = text:sub(1, -2) end
  return (text:gsub("\r\n", "\n"):gsub("\r", "\n"))
end

function Chat:feed(text, emit, last)
  if self.done then return end
  text = self:normalise(text)
  if last and self.cr then text, self.cr = text .. "\n", false end
  local s = self.buf == "" and text or self.buf .. text
  local pos, from = 1, 1        -- s[from..pos-1]: text not yet given to the section
  while true do
    local i = s:find("[", pos, true)
    if i == nil then
      pos = #s + 1
      break
    end
    local status, name, stop = "no", nil, nil
    if self:at_line_start(s, i) then status, name, stop = header_at(s, i) end
    if status == "maybe" and not last then
      pos = i
      break
    end
    if status == "yes" then
      self:consume(s:sub(from, i - 1), emit)
      if name == "completed" then
        self.done, self.field, self.sec, self.buf = true, nil, nil, ""
        return
      end
      self:start(name)
      pos, from = stop + 1, stop + 1
    else
      pos = i + 1
    end
  end
  self:consume(from == 1 and pos > #s and s or s:sub(from, pos - 1), emit)
  -- where the next piece's first byte stands: at a line's start when only blanks
  -- follow the last line break (or the last header, which is not one)
  local byte, j = string.byte, pos - 1
  while j >= from and LINE_BLANK[byte(s, j)] do j = j - 1 end
  if j >= from then
    self.line_blank = byte(s, j) == 10
  elseif from > 1 then
    self.line_blank = false          -- nothing or only blanks after a header on its line
  end
  self.buf = pos > #s and "" or s:sub(pos)
end

-- ---- the JSON adapter's object ---------------------------------------------------------

local Json = {}
Json.__index = Json

local function json_splitter(sig)
  return setmetatable({outputs = output_set(sig), seen = {}, buf = "", state = "seek"}, Json)
end

-- The end of a string's text that can be decoded now: before its closing quote
-- (→ position, true) or before an escape not complete yet (→ position, false).
local function string_end(s, i)
  while true do
    local j = s:find('["\\]', i)
    if j == nil then return #s + 1, false end
    if s:sub(j, j) == '"' then return j, true end
    local e = s:sub(j + 1, j + 1)
    if e == "" then return j, false end
    if e == "u" then
      local hex = s:sub(j + 2, j + 5)
      if #hex < 4 then return j, false end
      local cp = tonumber(hex, 16)
      if cp and cp >= 0xD800 and cp <= 0xDBFF then       -- a surrogate pair: both halves
        if #s < j + 11 then return j, false end
        i = j + 12
      else
        i = j + 6
      end
    else
      i = j + 2
    end
  end
end

local function decode(raw)
  local ok, v = pcall(cjson.decode, '"' .. raw .. '"')
  if ok then return v end
  return raw
end

function Json:value_emit(text, emit)
  if self.field and text ~= "" then emit(self.field, text) end
end

function Json:feed(text, emit, last)
  local s, i = self.buf .. text, 1
  while i <= #s do
    local st = self.state
    if st == "done" then
      self.buf = ""
      return
    elseif st == "seek" then
      local j = s:find("{", i, true)
      if j == nil then i = #s + 1 else self.state, i = "key", j + 1 end
    elseif st == "key" then
      local j = s:find("[^%s,]", i)
      if j == nil then
        i = #s + 1
      elseif s:sub(j, j) == "}" then
        self.state, i = "done", j + 1
      elseif s:sub(j, j) == '"' then
        local e, closed = string_end(s, j + 1)
        if not closed then i = j break end         -- the key whole, or wait
        self.key = decode(s:sub(j + 1, e - 1))
        self.state, i = "colon", e + 1
      else
        self.state = "done"                         -- not an object of fields: nothing more
      end
    elseif st == "colon" then
      local j = s:find("%S", i)
      if j == nil then
        i = #s + 1
      else
        self.state, i = "value", (s:sub(j, j) == ":" and j + 1 or j)
      end
    elseif st == "value" then
      local j = s:find("%S", i)
      if j == nil then
        i = #s + 1
      else
        local key = self.key
        self.field = nil
        if self.outputs[key] and not self.seen[key] then
          self.seen[key] = true
          self.field = key
        end
        if s:sub(j, j) == '"' then
          self.state, i = "string", j + 1
        else
          self.state, i = "raw", j
          self.depth, self.in_str, self.trim = 0, false, trimmer(false)
        end
      end
    elseif st == "string" then
      local e, closed = string_end(s, i)
      if e > i then self:value_emit(decode(s:sub(i, e - 1)), emit) end
      if closed then
        self.state, self.field, i = "key", nil, e + 1
      else
        i = e
        break
      end
    else   -- "raw": a number, literal, list or object, up to its ',' or '}' outside strings
      local j = i
      if self.skip then j, self.skip = j + 1, false end   -- the character escaped at the last end
      local stop
      while true do
        j = s:find(self.in_str and '["\\]' or '[%[%]{}",]', j)
        if j == nil then break end
        local c = s:sub(j, j)
        if self.in_str then
          if c == "\\" then
            if j == #s then self.skip = true end
            j = j + 1
          else
            self.in_str = false
          end
        elseif c == '"' then
          self.in_str = true
        elseif c == "[" or c == "{" then
          self.depth = self.depth + 1
        elseif self.depth > 0 and (c == "]" or c == "}") then
          self.depth = self.depth - 1
        elseif self.depth == 0 and (c == "," or c == "}") then
          stop = j
          break
        end
        j = j + 1
      end
      local upto = stop and stop - 1 or #s
      local out = self.trim:feed(s:sub(i, upto))
      self:value_emit(out, emit)
      if stop then
        self.state, self.field = s:sub(stop, stop) == "}" and "done" or "key", nil
        i = stop + 1
      else
        i = #s + 1
      end
    end
  end
  self.buf = last and "" or s:sub(i)
end

-- ---- the stream ------------------------------------------------------------------------

local SPLITTERS = {chat = chat_splitter, json = json_splitter}

--- splitter(adapter_name, sig) → a splitter of that adapter's replies:
-- s:feed(text, emit, last) calls emit(field, chunk) for the fields' text in
-- `text` (the next piece of the reply; last: the reply ends with it).
function M.splitter(adapter_name, sig)
  return SPLITTERS[adapter_name](sig)
end

-- The fourth value of the loop: leaving it closes the LM's stream.
local CLOSER = {__close = function(c)
  local lm_closer = c.lm_closer
  if lm_closer then getmetatable(lm_closer).__close(lm_closer) end
end}

--- check(adapter, config): misuse unless the adapter's replies can be split
-- (tide.adapters.chat or .json) and one reply is asked for.
function M.check(adapter, config)
  if SPLITTERS[adapter.name] == nil or type(adapter.parse) ~= "function" then
    check.misuse("predictor:stream: a stream needs tide.adapters.chat or tide.adapters.json")
  end
  if config.n and config.n > 1 then
    check.misuse("predictor:stream: one reply streams at a time (config.n is " .. config.n .. ")")
  end
end

--- reply(lm, req, sig, adapter, emit) → lm:stream's `final` and the splitter:
-- one reply streamed to its end, its fields' chunks given to emit(field, chunk)
-- and emit() after each piece (a task cancelled meanwhile closes the LM's stream).
function M.reply(lm, req, sig, adapter, emit)
  local next_piece, final, _, lm_closer = lm:stream(req)
  local _ <close> = lm_closer
  local splitter = SPLITTERS[adapter.name](sig)
  while true do
    local piece = next_piece()
    if piece == nil then break end
    splitter:feed(piece, emit, false)
    emit()
  end
  splitter:feed("", emit, true)
  return final, splitter
end

--- read(adapter, sig, text, splitter) → the outputs of a reply streamed through
-- the splitter (the chat adapter's from the sections cut on the way, as
-- chat.parse would cut them); a reply that does not parse raises as the parse does.
function M.read(adapter, sig, text, splitter)
  if splitter.sections and adapter.read_sections then
    return adapter.read_sections(sig, text, splitter:sections())
  end
  return adapter.parse(sig, text)
end

--- stream(sig, lm, adapter, inputs, opts) → an iterator of events for a generic
-- for, with a closer as its fourth value.  opts = {demos, config, fallback} (a
-- Predict is such a table).
function M.stream(sig, lm, adapter, inputs, opts)
  local make = SPLITTERS[adapter.name]
  local config = opts.config or {}
  M.check(adapter, config)
  local req = common.request(adapter, sig, adapter.format(sig, inputs, opts.demos), config)
  local next_piece, _, _, lm_closer = lm:stream(req)
  local splitter = make(sig)
  -- the events of the pieces read so far: queue[head..tail]
  local queue, head, tail, pieces, ended = {}, 1, 0, {}, false
  local function push(ev)
    tail = tail + 1
    queue[tail] = ev
  end
  local function emit(field, chunk)      -- a piece's chunks of one field make one event
    local last = queue[tail]
    if tail >= head and last.field == field then
      last.chunk = last.chunk .. chunk
    else
      push{field = field, chunk = chunk}
    end
  end
  local function conclude()
    ended = true
    local ok, outputs = pcall(M.read, adapter, sig, table.concat(pieces), splitter)
    if ok then return push{prediction = prediction.prediction(outputs, {outputs})} end
    if adapter.fallback and opts.fallback ~= false and type(outputs) == "table" and
        outputs.kind == "parse" then
      local all = adapter.fallback(lm, sig, inputs, opts)
      return push{prediction = prediction.prediction(all[1], all)}
    end
    error(outputs, 0)
  end
  local function next_event()
    while head > tail do
      if ended then return nil end
      local piece = next_piece()
      if piece == nil then
        splitter:feed("", emit, true)
        conclude()
      else
        pieces[#pieces + 1] = piece
        splitter:feed(piece, emit, false)
      end
    end
    local ev = queue[head]
    queue[head] = nil
    head = head + 1
    return ev
  end
  return next_event, nil, nil, setmetatable({lm_closer = lm_closer}, CLOSER)
end

return M
