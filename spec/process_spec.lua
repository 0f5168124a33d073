-- tide.process: real child processes (cat, sh, sleep, head) on pipes read and
-- written through the loop; exit codes, signals, large transfers both ways,
-- cancellation, misuse, and no child, zombie or descriptor left behind.
local tide = require "tide"
local assert_clean = require "support.clean"
local eventually = require "support.eventually"

local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  f:close()
  return true
end

local function open_fds()
  local p = assert(io.popen("ls /proc/self/fd 2>/dev/null | wc -l"))
  local n = tonumber(p:read("l"))
  p:close()
  return n
end

describe("tide.process", function()
  after_each(function()
    assert.is_true(eventually(function() return tide.stats().processes == 0 end))
    assert_clean()
  end)

  it("echoes lines through cat and reports its exit", function()
    local p <close> = tide.process{cmd = {"cat"}}
    assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
    p:write("hello\nworld\r\n")
    assert.are.equal("hello", p:read_line())
    assert.are.equal("world", p:read_line())   -- "\r\n" ends a line too
    p:write("no newline")
    p:close_stdin()
    assert.are.equal("no newline", p:read_line())   -- the last piece at the end
    assert.is_nil(p:read_line())
    assert.are.same({0, nil}, {p:wait()})
    assert.are.same({"exited", 0, nil}, {p:status()})
    assert.has_error(function() p:write("x") end)   -- stdin is closed: misuse
  end)

  it("gives exit codes and signals", function()
    local a <close> = tide.process{cmd = {"sh", "-c", "exit 7"}}
    assert.are.same({7, nil}, {a:wait()})
    local b <close> = tide.process{cmd = {"sleep", "30"}}
    assert.are.equal("running", b:status())
    assert.is_true(b:kill())
    assert.are.same({nil, "term"}, {b:wait()})
    assert.is_false(b:kill("kill"))   -- gone already
    local c <close> = tide.process{cmd = {"sleep", "30"}}
    c:kill("kill")
    assert.are.same({nil, "kill"}, {c:wait()})
  end)

  it("moves megabytes both ways, the writer and the reader side by side", function()
    local big <close> = tide.process{cmd = {"head", "-c", "5000000", "/dev/zero"}}
    local n = 0
    for chunk in big.read, big do n = n + #chunk end
    assert.are.equal(5000000, n)
    assert.are.same({0, nil}, {big:wait()})

    local cat <close> = tide.process{cmd = {"cat"}}
    local line = string.rep("x", 999) .. "\n"
    local count = 0
    tide.gather(function()
      for _ = 1, 3000 do cat:write(line) end   -- 3 MB: far more than a pipe holds
      cat:close_stdin()
    end, function()
      while true do
        local l = cat:read_line()
        if l == nil then break end
        assert.are.equal(999, #l)
        count = count + 1
      end
    end)
    assert.are.equal(3000, count)
  end)

  it("passes env (set, and false to unset) and cwd", function()
    local p <close> = tide.process{cmd = {"sh", "-c", "echo \"$TIDE_SPEC_VAR|${HOME-unset}\"; pwd"},
      env = {TIDE_SPEC_VAR = "a b=c", HOME = false}, cwd = "/tmp"}
    assert.are.equal("a b=c|unset", p:read_line())
    assert.are.equal("/tmp", p:read_line())
    assert.are.same({0, nil}, {p:wait()})
    local quiet <close> = tide.process{cmd = {"sh", "-c", "echo hidden >&2; echo shown"}, stderr = "ignore"}
    assert.are.equal("shown", quiet:read_line())
    quiet:wait()
    assert.are.equal("", quiet:stderr())
  end)

  it("keeps the tail of stderr", function()
    local p <close> = tide.process{cmd = {"sh", "-c", "echo first >&2; head -c 20000 /dev/zero | tr '\\0' y >&2; echo last words >&2"}}
    p:wait()
    assert.is_true(eventually(function() return p:stderr():find("last words\n$") ~= nil end))
    assert.are.equal(8192, #p:stderr())   -- only the tail is kept
    assert.is_nil(p:stderr():find("first"))
  end)

  it("raises typed errors for a program that cannot start and a closed stdin", function()
    local ok, err = pcall(tide.process, {cmd = {"/nonexistent/tide-spec-prog"}})
    assert.is_false(ok)
    assert.are.equal("process", err.kind)
    assert.matches("cannot start '/nonexistent/tide%-spec%-prog'", err.message)

    local p <close> = tide.process{cmd = {"true"}}
    p:wait()
    ok, err = pcall(p.write, p, string.rep("x", 1000000))
    assert.is_false(ok)   -- and no SIGPIPE took the spec runner down
    assert.are.equal("process", err.kind)
    assert.matches("no longer reads its stdin", err.message)
  end)

  it("caps a line at max_line", function()
    local p <close> = tide.process{cmd = {"head", "-c", "100000", "/dev/zero"}, max_line = 4096}
    local ok, err = pcall(p.read_line, p)
    assert.is_false(ok)
    assert.are.equal("too_large", err.kind)
  end)

  it("names misuse", function()
    assert.has_error(function() tide.process{} end, "bad argument #1 to 'process' " ..
      "(field 'cmd' must be a list of strings: the program and its arguments)")
    assert.has_error(function() tide.process{cmd = {"cat", 3}} end,
      "bad argument #1 to 'process' (field 'cmd' item 2 must be a string, got number)")
    assert.has_error(function() tide.process{cmd = {"cat"}, stderr = "file"} end)
    assert.has_error(function() tide.process{cmd = {"cat"}, env = {["A=B"] = "x"}} end)
    local p = tide.process{cmd = {"cat"}}
    assert.has_error(function() p:kill("bogus") end)
    p:close()
    p:close()   -- again: nothing
    assert.has_error(function() p:read() end, "process:read: the process is closed")
    assert.is_nil(p.pid)
  end)

  it("lets one task read at a time, and a cancelled read leaves the process usable", function()
    local p <close> = tide.process{cmd = {"cat"}}
    local reader = tide.spawn(function() return p:read_line() end)
    tide.sleep(0)
    local ok, err = pcall(p.read_line, p)
    assert.is_false(ok)
    assert.matches("another task is already reading", tostring(err))
    reader:cancel()
    ok, err = pcall(tide.timeout, 0.05, p.read_line, p)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    p:write("still here\n")
    assert.are.equal("still here", p:read_line())
  end)

  it("wakes a waiting reader with an error when the process is closed under it", function()
    local p = tide.process{cmd = {"sleep", "30"}}
    local reader = tide.spawn(function() return p:read() end)
    tide.sleep(0)
    p:close()
    local ok, err = pcall(reader.wait, reader)
    assert.is_false(ok)
    assert.are.equal("process", err.kind)
  end)

  it("a write finished by another task's write, then closed and reaped, raises in its task", function()
    local p = tide.process{cmd = {"sh", "-c", "sleep 0.1; exec cat >/dev/null"}}
    local first = tide.spawn(function() p:write(string.rep("x", 300 * 1024)) end)
    tide.sleep(0)   -- first waits, bytes pending: more than the socket holds
    os.execute("sleep 0.4")   -- without running the loop: the child drains meanwhile
    p:write("y")    -- sends the rest of first's bytes too: first's write is done here
    local pid = p.pid
    p:close()
    os.execute("sleep 0.2")   -- the child dies; the next turn of the loop reaps it
    tide.poll()     -- ... and closes its handles before first resumes
    assert.is_nil(io.open("/proc/" .. pid .. "/stat"))
    local ok, err = pcall(first.wait, first)
    assert.is_false(ok)
    assert.are.same({"process", "process:write: the process was closed"}, {err.kind, err.message})
  end)

  it("kills the child's whole process group on close, reaped: no zombie, no fd", function()
    local fds = open_fds()
    local p = tide.process{cmd = {"sh", "-c", "sleep 30 & echo $!; wait"}}
    local pid, grandchild = p.pid, tonumber(p:read_line())
    assert.is_true(alive(pid) and alive(grandchild))
    p:close()
    assert.is_true(eventually(function() return not alive(pid) and not alive(grandchild) end))
    assert.is_true(eventually(function() return tide.stats().processes == 0 end))
    for _ = 1, 20 do tide.process{cmd = {"true"}}:close() end
    assert.is_true(eventually(function() return tide.stats().processes == 0 end))
    assert.are.equal(fds, open_fds())
  end)

  it("kills a child whose handle was collected", function()
    local pid = tide.process{cmd = {"sleep", "30"}}.pid
    collectgarbage()
    collectgarbage()
    assert.is_true(eventually(function() return not alive(pid) end))
  end)

  it("does not keep a deadlocked main flow waiting on an idle child", function()
    local child <close> = tide.process{cmd = {"sleep", "30"}}
    local sem = tide.semaphore(1)
    sem:acquire()
    local ok, err = pcall(sem.acquire, sem)   -- nothing can release it; the child does not count
    assert.is_false(ok)
    assert.are.equal("deadlock", err.kind)
    assert.are.equal("running", child:status())
  end)

  it("kills what a script left running when the engine closes", function()
    local tide_bin = assert(os.getenv("TIDE_BIN"), "TIDE_BIN")
    local sh = assert(io.popen(tide_bin .. [[ -e 'print(require("tide").process{cmd = {"sleep", "30"}}.pid)']]))
    local pid = tonumber(sh:read("l"))
    assert.is_true(sh:close())
    assert.is_true(eventually(function() return not alive(pid) end))
  end)
end)
