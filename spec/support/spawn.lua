--- Starts a spec's server in the background and waits for it to listen: the
-- servers (mockllm, the Node ones) print "listening on ..." with the port the
-- kernel picked, so the spec learns the port from that line, and the shell's
-- `echo PID $!` gives the pid to kill.
--
--   local pipe, pid, port = spawn("node spec/support/x.js", "^listening on 127%.0%.0%.1 (%d+)$",
--     "the x server")

--- Runs cmd under `sh &` and reads its first two lines → the pipe (close it after
-- killing pid), the pid, and the captures of the `listening` pattern; raises
-- "<what> did not start: <cmd>" when either line is missing.
return function(cmd, listening, what)
  local pipe = assert(io.popen(cmd .. " & echo PID $!", "r"))
  local pid, captures
  for _ = 1, 2 do
    local line = pipe:read("l")
    if not line then break end
    pid = pid or tonumber(line:match("^PID (%d+)"))
    if not captures then
      local c = table.pack(line:match(listening))
      if c[1] then captures = c end
    end
  end
  assert(pid and captures, what .. " did not start: " .. cmd)
  return pipe, pid, table.unpack(captures, 1, captures.n)
end
