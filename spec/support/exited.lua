--- Whether process pid is gone: no /proc entry, or a zombie nobody reaped yet
-- (the servers the specs start run under a shell's `&`, so nobody reaps them at
-- once).  For the helpers that stop a server and wait until its port is free.
return function(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("a") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") == "Z"
end
