--- tide.sse, the server-sent events parser: the WHATWG line rules (CR LF, LF, a
-- lone CR, a CR and a LF in two pieces being one line end), the byte-order mark,
-- and work and memory bounded by the bytes fed.  Costs are counted in bytes
-- allocated (with the collector stopped, Lua's count only grows), never timed.
local sse = require "tide.sse"

local BOM = "\239\187\191"

-- Feeds text cut after each length in `cuts` (the rest in one piece), then ends it.
local function parse(text, cuts, max_event)
  local p, out, at = sse.new(max_event), {}, 1
  local function add(list) for _, e in ipairs(list) do out[#out + 1] = e end end
  for _, n in ipairs(cuts or {}) do
    add(p:feed(text:sub(at, at + n - 1)))
    at = at + n
  end
  add(p:feed(text:sub(at)))
  add(p:finish())
  return out
end

local function bytewise(text)
  local cuts = {}
  for i = 1, #text do cuts[i] = 1 end
  return parse(text, cuts)
end

-- The rules written out plainly, on the whole text: what every way of cutting
-- it must give.  The unterminated last line and the event left open count (as
-- finish() takes them); events with empty data are skipped (keep-alives).
local function reference(text)
  if text:sub(1, #BOM) == BOM then text = text:sub(#BOM + 1) end
  local lines, start, i = {}, 1, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\r" or c == "\n" then
      lines[#lines + 1] = text:sub(start, i - 1)
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      start = i + 1
    end
    i = i + 1
  end
  if start <= #text then lines[#lines + 1] = text:sub(start) end
  lines[#lines + 1] = ""
  local events, name, data = {}, nil, nil
  for _, line in ipairs(lines) do
    if line == "" then
      local d = data and table.concat(data, "\n")
      if d and d ~= "" then events[#events + 1] = {event = name, data = d} end
      name, data = nil, nil
    elseif line:sub(1, 1) ~= ":" then
      local colon = line:find(":", 1, true)
      local field, value = line, ""
      if colon then
        field, value = line:sub(1, colon - 1), line:sub(colon + 1)
        if value:sub(1, 1) == " " then value = value:sub(2) end
      end
      if field == "data" then
        data = data or {}
        data[#data + 1] = value
      elseif field == "event" then
        name = value
      end
    end
  end
  return events
end

-- Bytes allocated while fn runs.
local function allocated(fn)
  collectgarbage()
  collectgarbage("stop")
  local before = collectgarbage("count")
  fn()
  local bytes = (collectgarbage("count") - before) * 1024
  collectgarbage("restart")
  return bytes
end

-- Feeds text in 4 KiB pieces → the events and the bytes allocated doing it.
local function feed_costed(text)
  local pieces = {}
  for i = 1, #text, 4096 do pieces[#pieces + 1] = text:sub(i, i + 4095) end
  local p, events = sse.new(), {}
  local bytes = allocated(function()
    for _, piece in ipairs(pieces) do
      for _, e in ipairs(p:feed(piece)) do events[#events + 1] = e end
    end
  end)
  for _, e in ipairs(p:finish()) do events[#events + 1] = e end
  return events, bytes
end

describe("tide.sse", function()
  describe("a byte-order mark", function()
    it("before the first event is dropped, whole or cut inside the mark", function()
      local text = BOM .. "data: first\n\ndata: second\n\n"
      local want = {{data = "first"}, {data = "second"}}
      assert.are.same(want, parse(text))
      assert.are.same(want, bytewise(text))
      assert.are.same(want, parse(text, {2}))
      assert.are.same({{data = "x"}}, parse(BOM .. "data: x\r\n\r\n", {1, 1, 1}))
    end)

    it("is dropped only at the very start of the stream", function()
      local p = sse.new()
      assert.are.same({{data = "a"}}, p:feed("data: a\n\n"))
      -- later, the mark is part of the line: the field is no longer `data`
      assert.are.same({}, p:feed(BOM .. "data: b\n\n"))
      assert.are.same({{data = BOM .. "c"}}, parse(BOM .. "data: " .. BOM .. "c\n\n"))
    end)

    it("that is not a whole mark is kept", function()
      assert.are.same({{event = "\239\187", data = "y"}}, parse("event: \239\187\ndata: y\n\n"))
      assert.are.same({}, parse("\239\187data: z\n\n", {1}))   -- field "\239\187data"
    end)
  end)

  describe("line ends", function()
    it("a lone CR ends a line, as CR LF and LF do", function()
      local want = {{event = "e", data = "1\n2"}, {data = "3"}}
      for _, eol in ipairs{"\r", "\n", "\r\n"} do
        local text = ("event: e|data: 1|data: 2||: comment|data: 3||"):gsub("|", eol)
        assert.are.same(want, parse(text), "line end " .. ("%q"):format(eol))
        assert.are.same(want, bytewise(text), "line end " .. ("%q"):format(eol))
      end
    end)

    it("a CR ending one piece and a LF starting the next are one line end", function()
      local p = sse.new()
      assert.are.same({}, p:feed("data: 1\r"))
      assert.are.same({}, p:feed("\ndata: 2\r"))        -- not a blank line: the event goes on
      assert.are.same({{data = "1\n2"}}, p:feed("\n\r"))
      assert.are.same({}, p:feed("\n"))                  -- the LF of that last CR LF
      assert.are.same({{data = "3"}}, p:feed("data: 3\n\n"))
      -- CR then CR: two line ends, so a blank line
      p = sse.new()
      assert.are.same({}, p:feed("data: 4\r"))
      assert.are.same({{data = "4"}}, p:feed("\r"))
      assert.are.same({}, p:finish())   -- the LF finish() adds pairs with that CR
    end)

    it("give the same events however the text is cut (against the rules written out)", function()
      local tokens = {"data", "data:", "data: ", "data:x", "event:", "event: e", ":", " ", "x", "é",
                      "\r", "\n", "\r\n", "\r\r", "\n\n", "id: 1", BOM, "retry: 3"}
      math.randomseed(20261214)
      for case = 1, 1500 do
        local parts = {}
        if case % 3 == 0 then parts[1] = BOM end
        for _ = 1, math.random(1, 24) do parts[#parts + 1] = tokens[math.random(#tokens)] end
        local text = table.concat(parts)
        local cuts, left = {}, #text
        while left > 0 do
          local c = math.random(0, math.min(left, 5))
          cuts[#cuts + 1] = c
          left = left - c
        end
        local want = reference(text)
        assert.are.same(want, parse(text), ("whole: %q"):format(text))
        assert.are.same(want, parse(text, cuts), ("cut: %q"):format(text))
      end
    end)
  end)

  describe("bounded work", function()
    it("a flood of empty events costs its bytes, not an event each", function()
      local filler = ("data:\n\n"):rep(20000)
      local events, bytes = feed_costed(filler .. "data: real\n\n")
      assert.are.same({{data = "real"}}, events)   -- empty data is a keep-alive: not returned
      assert.is_true(bytes < 2 * #filler, ("%d bytes allocated for %d fed"):format(bytes, #filler))
      -- and four times the flood costs about four times as much (linear)
      local _, bytes4 = feed_costed(filler:rep(4))
      assert.is_true(bytes4 < 5 * bytes, ("%d then %d bytes"):format(bytes, bytes4))
    end)

    it("empty data lines in one event are counted, not stored", function()
      local n = 100000
      local text = ("data:\n"):rep(n) .. "\n"
      local events, bytes = feed_costed(text)
      assert.are.equal(1, #events)
      assert.are.equal(("\n"):rep(n - 1), events[1].data)
      -- the joined data (n - 1 bytes) is made once, the pieces are joined to
      -- their unfinished line once: nothing kept per line
      assert.is_true(bytes < 2 * #text, ("%d bytes allocated for %d fed"):format(bytes, #text))
      local cr = feed_costed(("data:\r"):rep(n) .. "\r")
      assert.are.equal(("\n"):rep(n - 1), cr[1].data)
    end)

    it("keep many data lines and a line fed a byte at a time in little memory", function()
      local lines = {}
      for i = 1, 3000 do lines[i] = (i % 3 == 0) and "" or ("line " .. i) end
      local text = "data: " .. table.concat(lines, "\ndata: ") .. "\n\n"
      assert.are.same({{data = table.concat(lines, "\n")}}, parse(text))
      -- 64 KiB of a line arriving a byte at a time: held in blocks, not a table slot a byte
      local p = sse.new()
      p:feed("data: ")
      local n = 65536
      for _ = 1, n do p:feed("x") end
      collectgarbage()
      local held = collectgarbage("count") * 1024
      p = nil
      collectgarbage()
      local freed = held - collectgarbage("count") * 1024
      assert.is_true(freed < 3 * n, ("the parser held %d bytes for a %d-byte line"):format(freed, n))
    end)
  end)

  describe("the size cap", function()
    it("still refuses an event over it, however it grows", function()
      local function refused(text)
        local ok, err = pcall(parse, text, nil, 1000)
        assert.is_false(ok, "accepted: " .. text:sub(1, 40))
        assert.are.equal("too_large", err.kind)
        assert.are.equal("server-sent event larger than 1000 bytes", err.message)
      end
      refused("data: " .. ("y"):rep(1000) .. "\n\n")            -- one long data line
      refused(("data: " .. ("y"):rep(99) .. "\n"):rep(11))       -- many lines
      refused(("data:\r"):rep(1001))                             -- empty lines count too
      refused("data: " .. ("z"):rep(2000))                       -- a line that never ends
      -- under the cap, each event starts from zero
      assert.are.equal(20, #parse(("data: " .. ("y"):rep(900) .. "\n\n"):rep(20), nil, 1000))
    end)
  end)
end)
