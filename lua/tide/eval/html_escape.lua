--- Text made safe for an HTML page: every value a row holds (a program's output, a
-- dataset's field, an error message) may hold markup, and the report shows it as
-- text, in element content and in quoted attributes alike.
local M = {}

local ENTITY = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
  ["'"] = "&#39;"}

--- escape(v) → tostring(v) with & < > " ' written as entities.
function M.escape(v)
  return (tostring(v):gsub("[&<>\"']", ENTITY))
end

--- cut(s, n) → s cut to at most n bytes on a UTF-8 character boundary, and the
-- number of bytes dropped (0 when s fits).
function M.cut(s, n)
  if #s <= n then return s, 0 end
  local stop = n
  -- step back over continuation bytes (10xxxxxx) so no character is split
  while stop > 0 and (s:byte(stop + 1) or 0) & 0xC0 == 0x80 do stop = stop - 1 end
  return s:sub(1, stop), #s - stop
end

return M
