--- Files and shell commands for specs: temporary directories, reading and writing
-- whole files, running a command for its output.
local M = {}

--- A new empty directory under /tmp, private to the user (mktemp makes it 0700);
-- the caller removes it.
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

--- s (a string or a number) quoted for sh: in single quotes, each ' as '\''.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

--- Runs a shell command → its standard output and error, together.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

--- Runs a shell command → whether it exited 0, and its output (stdout and stderr).
-- Under `make check` the sanitizers' runtime is preloaded into every process, for
-- lua5.4 to load an instrumented module; the tools (nm, the compiler, make) run
-- without it unless `preload` says so.
function M.run(cmd, preload)
  local out = os.tmpname()
  local ok = os.execute(string.format("( %s%s ) >%s 2>&1", preload and "" or "unset LD_PRELOAD; ",
    cmd, out))
  local text = M.read(out)
  os.remove(out)
  return ok == true, text
end

return M
