--- Files and shell commands for specs: temporary directories, reading and writing
-- whole files, running a command for its output.
local M = {}

--- A new empty directory under /tmp (the caller removes it).
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  return dir
end

--- The file's text, or nil when it cannot be opened.
function M.read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- The number of newline-ended lines in the file (0 when it is missing).
function M.count_lines(path)
  local n = 0
  for _ in (M.read(path) or ""):gmatch("\n") do n = n + 1 end
  return n
end

--- Runs a shell command → its standard output and error, together.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

return M
