--- CSV as RFC 4180 writes it: fields split by commas, a field in double quotes may
-- hold commas, newlines and doubled quotes ("").  Reading is streaming: records come
-- one at a time from a source of lines, so a large file is never held whole.
--
--   for fields, line in csv.records(io.lines(path)) do ... end   -- line: where it starts
--   csv.encode_row{"a", 'say "hi"', "x,y"}   --> a,"say ""hi""","x,y"
local M = {}

--- Splits one physical line into fields, continuing an open quoted field from the
-- previous line.  state = {fields, buf (pieces of the field being read), quoted}.
-- Returns nil when the record is complete, or true when a quoted field is still open,
-- or raises a message (without position) when the line breaks the format.
local function scan(line, st)
  local pos, n = 1, #line
  while true do
    if st.quoted then
      local q = line:find('"', pos, true)
      if not q then   -- the field goes on past this line
        st.buf[#st.buf + 1] = line:sub(pos)
        st.buf[#st.buf + 1] = "\n"
        return true
      end
      st.buf[#st.buf + 1] = line:sub(pos, q - 1)
      if line:sub(q + 1, q + 1) == '"' then
        st.buf[#st.buf + 1] = '"'
        pos = q + 2
      else
        st.quoted = false
        pos = q + 1
        local c = line:sub(pos, pos)
        if c == "," then
          st.fields[#st.fields + 1] = table.concat(st.buf)
          st.buf = {}
          pos = pos + 1
          if pos > n then   -- a trailing comma: one more, empty, field
            st.fields[#st.fields + 1] = ""
            return nil
          end
          if line:sub(pos, pos) == '"' then st.quoted = true; pos = pos + 1 end
        elseif c == "" then
          st.fields[#st.fields + 1] = table.concat(st.buf)
          st.buf = {}
          return nil
        else
          error("unexpected character '" .. c .. "' after a closing quote", 0)
        end
      end
    else
      local comma = line:find(",", pos, true)
      local stop = comma and comma - 1 or n
      local field = line:sub(pos, stop)
      if field:find('"', 1, true) then
        error("a quote inside an unquoted field (quote the whole field and double the quote)", 0)
      end
      st.fields[#st.fields + 1] = field
      if not comma then return nil end
      pos = comma + 1
      if pos > n then
        st.fields[#st.fields + 1] = ""
        return nil
      end
      if line:sub(pos, pos) == '"' then st.quoted = true; pos = pos + 1 end
    end
  end
end

--- csv.records(next_line) → an iterator of (fields, first line number) over the
-- records that next_line's lines hold.  Blank lines between records are skipped; a
-- trailing "\r" (CRLF files) is dropped.  A malformed record raises
-- "N: what is wrong", N the line (a string; the caller puts the file name first).
function M.records(next_line)
  local lineno = 0
  return function()
    local st, start
    while true do
      local line = next_line()
      if line == nil then
        if st then
          error(string.format("%d: a quoted field opened here is never closed", start), 0)
        end
        return nil
      end
      lineno = lineno + 1
      if lineno == 1 and line:sub(1, 3) == "\239\187\191" then line = line:sub(4) end  -- BOM
      if line:sub(-1) == "\r" then line = line:sub(1, -2) end
      if st or line ~= "" then
        if not st then
          st, start = {fields = {}, buf = {}, quoted = false}, lineno
          if line:sub(1, 1) == '"' then st.quoted = true; line = line:sub(2) end
        end
        local ok, open = pcall(scan, line, st)
        if not ok then error(string.format("%d: %s", lineno, open), 0) end
        if not open then return st.fields, start end
      end
    end
  end
end

local function encode_field(v)
  v = v == nil and "" or tostring(v)
  if v:find('[,"\r\n]') or v:match("^%s") or v:match("%s$") then
    return '"' .. v:gsub('"', '""') .. '"'
  end
  return v
end

--- One record as a line (with its "\n"): fields quoted where they need it.
function M.encode_row(fields, n)
  local out = {}
  for i = 1, n or #fields do out[i] = encode_field(fields[i]) end
  return table.concat(out, ",") .. "\n"
end

return M
