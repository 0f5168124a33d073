--- Progress of a run over many items: a bar redrawn in place on a terminal, or a
-- plain line every few seconds otherwise (a log file, CI, a Slurm job's output).
--
--   local p = progress.new{total = 1000, mode = progress.detect(), write = fn}
--   p:update{done = 40, errors = 2, mean = 0.81}    -- after each item
--   p:finish()
--
-- Rate and ETA count only the items this run did (`done - start_done`), so a resumed
-- run's skipped items do not make it look faster than it is.  It never waits: it
-- draws when told of progress, and the clock (tide.now) only throttles the drawing.
-- The bar fits the terminal: its width is read again at every redraw, so a resized
-- window (SIGWINCH) is followed from the next one; a line that would wrap would leave
-- a trail of copies on the screen, as "\r" only returns to the start of the last row.
local core = require "tide.core"

local M = {}

local Progress = {}
Progress.__index = Progress

--- "bar" when standard error is a terminal (and TERM is not dumb), else "lines".
function M.detect()
  local term = os.getenv("TERM")
  if term == nil or term == "" or term == "dumb" then return "lines" end
  return core.isatty(2) and "bar" or "lines"
end

local function clock(seconds)
  if seconds == nil or seconds ~= seconds or seconds == math.huge then return "?" end
  seconds = math.floor(seconds + 0.5)
  if seconds >= 3600 then
    return string.format("%d:%02d:%02d", seconds // 3600, seconds % 3600 // 60, seconds % 60)
  end
  return string.format("%d:%02d", seconds // 60, seconds % 60)
end

-- The width assumed when standard error's terminal does not say (COLUMNS, else 80).
local function stderr_columns()
  return core.term_columns(2) or math.tointeger(tonumber(os.getenv("COLUMNS") or "")) or 80
end

--- progress.new{total, mode = "bar" | "lines" | "none", write = function(text),
-- interval = seconds between lines (default 10), label = "eval", width = 24 (the
-- bar's most), columns = function() → the terminal's width (default: standard
-- error's), now = fn}
function M.new(opts)
  local self = setmetatable({
    total = opts.total,
    mode = opts.mode or "lines",
    write = opts.write or function(s) io.stderr:write(s) io.stderr:flush() end,
    interval = opts.interval or 10,
    label = opts.label or "eval",
    width = opts.width or 24,
    columns = opts.columns or stderr_columns,
    now = opts.now or core.now,
    start_done = opts.start_done or 0,
  }, Progress)
  self.started = self.now()
  self.last = -math.huge
  return self
end

-- A rate from fewer items, or over less time, says more about the start than the
-- run: the first of 16 concurrent items done after 20 ms would show "50/s".
local MIN_RATE_ITEMS, MIN_RATE_SECONDS = 2, 1

--- The status parts: done/total, percent, running mean, errors, rate, ETA (and
-- the note, when one is set: "waiting for server ...").
function Progress:parts(s)
  local elapsed = self.now() - self.started
  local ran = s.done - self.start_done
  local rate = (ran >= MIN_RATE_ITEMS and elapsed >= MIN_RATE_SECONDS) and ran / elapsed or nil
  local parts = {}
  if self.total then
    parts[1] = string.format("%d/%d", s.done, self.total)
    parts[2] = string.format("%3d%%", self.total > 0 and math.floor(100 * s.done / self.total) or 100)
  else
    parts[1] = string.format("%d", s.done)
  end
  parts[#parts + 1] = s.mean and string.format("mean %.3f", s.mean) or "mean -"
  parts[#parts + 1] = string.format("errors %d", s.errors or 0)
  parts[#parts + 1] = rate and string.format("%.1f/s", rate) or "-/s"
  if self.total and s.done < self.total then
    parts[#parts + 1] = "ETA " .. (rate and rate > 0 and clock((self.total - s.done) / rate) or "?")
  else
    parts[#parts + 1] = "in " .. clock(elapsed)
  end
  if self.note then parts[#parts + 1] = self.note end
  return parts
end

--- The status text: done/total, percent, running mean, errors, rate, ETA.
function Progress:status(s)
  return table.concat(self:parts(s), "  ")
end

-- The narrowest bar worth drawing; below it the bar goes and the text stays.
local MIN_BAR = 5
-- What goes first when the text does not fit either: the rate, then the percentage
-- (the count says it), then the ETA; done, mean and errors stay longest.
local DROP_ORDER = {"rate", "percent", "eta", "mean", "errors", "note"}

--- The bar's line for a terminal `columns` wide: it never reaches the last column
-- (where a terminal may wrap).
function Progress:bar_line(s, columns)
  local room = math.max(columns - 1, 1)
  local parts = self:parts(s)
  local status = table.concat(parts, "  ")
  local frame = #self.label + 4   -- "label [" .. "] "
  local fill_room = math.min(self.width, room - frame - #status)
  if fill_room >= MIN_BAR then
    local frac = self.total and self.total > 0 and s.done / self.total or 0
    local fill = math.floor(frac * fill_room + 0.5)
    return string.format("%s [%s%s] %s", self.label, string.rep("#", fill),
      string.rep(".", fill_room - fill), status)
  end
  local named = {}
  local keys = self.total and {"count", "percent", "mean", "errors", "rate", "eta", "note"} or
    {"count", "mean", "errors", "rate", "eta", "note"}
  for i, key in ipairs(keys) do named[key] = parts[i] end
  local function text()
    local kept = {}
    for _, key in ipairs(keys) do kept[#kept + 1] = named[key] end
    return self.label .. " " .. table.concat(kept, "  ")
  end
  local line = text()
  for _, key in ipairs(DROP_ORDER) do
    if #line <= room then break end
    named[key] = nil
    line = text()
  end
  return line:sub(1, room)
end

function Progress:draw(s, final)
  self.drawn = s.done
  if self.mode == "bar" then
    self.write(string.format("\r%s\27[K%s", self:bar_line(s, self.columns()), final and "\n" or ""))
  else
    self.write(string.format("%s %s\n", self.label, self:status(s)))
  end
end

--- Told after each item; draws at most every 0.1 s (bar) or every `interval` s (lines).
function Progress:update(s)
  if self.mode == "none" then return end
  local t = self.now()
  local every = self.mode == "bar" and 0.1 or self.interval
  if t - self.last >= every then
    self.last = t
    self:draw(s)
  end
  self.state = s
end

--- A note shown after the status until it is set to nil (a waiting run's
-- "waiting for server at ..."), drawn at once: while a run waits, no item
-- finishes to draw it.
function Progress:set_note(text)
  if self.mode == "none" or self.finished or self.note == text then return end
  self.note = text
  local s = self.state or {done = self.start_done, errors = 0}
  self.last = self.now()
  self:draw(s)
end

--- The last state drawn once more, complete (and the bar's line ended).
function Progress:finish(s)
  s = s or self.state
  if self.mode == "none" or s == nil or self.finished then return end
  self.finished = true
  if self.mode == "lines" and self.drawn == s.done then return end   -- already the last line
  self:draw(s, true)
end

return M
