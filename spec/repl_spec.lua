-- The REPL (`tide` with no script, `tide -i`) through a pipe and on a pseudo-terminal,
-- its session and pretty-printer in-process, and Ctrl-C in the tide binary.
local tide = require "tide"
local mockllm = require "support.mockllm"
local repl = require "tide.repl"
local pretty = require "tide.repl.pretty"
local assert_clean = require "support.clean"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local PTY = os.getenv("SPEC_PTY_BIN") or "build/spec_pty"

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local slurp = require("support.files").read
local tmpdir = require("support.files").tmpdir

local function shell_env(env)
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "='" .. v .. "'" end
  table.sort(parts)
  return table.concat(parts, " ")
end

--- Runs the REPL with `input` on a pipe; returns the exit code and the output.
local function pipe(input, env, args)
  local inp, out = tmpfile(input), os.tmpname()
  local ok, _, code = os.execute(string.format("%s %s %s <%s >%s 2>&1", shell_env(env), TIDE,
    args or "", inp, out))
  local text = slurp(out)
  os.remove(inp)
  os.remove(out)
  return ok and 0 or code, text
end

--- Plays a spec_pty script against the REPL; returns the transcript (with the
-- trailing exit=N line).
local function pty(steps, env, args)
  local script = tmpfile(table.concat(steps, "\n") .. "\n")
  local p = io.popen(string.format("%s %s %s %s 2>&1", shell_env(env), PTY, script,
    TIDE .. (args and " " .. args or "")))
  local out = p:read("a")
  p:close()
  os.remove(script)
  return (out:gsub("\r", ""))
end


describe("the REPL through a pipe", function()
  it("prints expressions like lua, =expr, several values, and keeps globals", function()
    local code, out = pipe("1 + 1\n=2 * 3\nx = 20\nx + 1\nreturn 'a', 2\n")
    assert.are.equal(0, code)
    assert.are.equal('2\n6\n21\n"a"\t2\n', out)
  end)

  it("continues an unfinished chunk on the next lines", function()
    local code, out = pipe("function double(n)\n  return n * 2\nend\ndouble(21)\n1 +\n2\n")
    assert.are.equal(0, code)
    assert.are.equal("42\n3\n", out)
  end)

  it("runs each input as a task: gather and sleep work at the prompt", function()
    local code, out = pipe([[
return tide.current() ~= nil
tide.gather(function() tide.sleep(0.01) return "a" end, function() return "b" end)
]])
    assert.are.equal(0, code)
    assert.are.equal('true\n"a"\t"b"\n', out)
  end)

  it("prints errors by kind and message, and goes on", function()
    local code, out = pipe([[
error("it broke")
error(tide.error{kind = "rate_limit", message = "slow down", status = 429, retry_after = 2})
this is not lua
"still here"
]])
    assert.are.equal(0, code)
    assert.matches('error %(lua%): stdin:1: it broke\n', out)
    assert.matches('error %(rate_limit%): slow down %[status = 429, retry_after = 2%]\n', out)
    assert.matches("syntax error near 'is'", out)
    assert.matches('"still here"\n$', out)
    assert.is_nil(out:find("table: 0x", 1, true))
  end)

  it("prints whatever an input raised as an error, never a table address", function()
    local code, out = pipe([[
error({kind = "mine"})
error({kind = "mine", message = "mine broke", status = 418})
error(nil)
error(42)
error({1, 2})
error(setmetatable({}, {__tostring = function() return "custom text" end}))
error({message = "only a message"})
]])
    assert.are.equal(0, code)
    assert.are.equal(table.concat({
      'error (mine): {kind = "mine"}',
      "error (mine): mine broke [status = 418]",
      "error: nil",
      "error: 42",
      "error: {1, 2}",
      "error: custom text",
      "error: only a message", ""}, "\n"), out)
  end)

  it("prints the error of a task nobody took before the next prompt", function()
    local code, out = pipe([[
tide.spawn(function() error("lost at once") end) ~= nil
"between"
t = tide.spawn(function() tide.sleep(0.01) error("kept in a global") end); tide.sleep(0.05)
tide.spawn(function() tide.sleep(0.01) error({kind = "mine", message = "lost later"}) end) ~= nil
tide.sleep(0.05)
"last"
]])
    assert.are.equal(0, code)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.same({
      "true",
      "a task failed and nobody took its error: error (lua): stdin:1: lost at once",
      '"between"',
      "true",
      "a task failed and nobody took its error: error (mine): lost later",
      '"last"',
    }, {lines[1], lines[2], lines[3], lines[4], lines[5], lines[6]})
    -- a task still held by a global is not reported while it may be taken; at the
    -- end, when the state closes, it is
    assert.matches("kept in a global", table.concat(lines, "\n", 7))
  end)

  it("reports an unfinished chunk at the end of its input, as lua does", function()
    local code, out = pipe("1 + 1\nfor i = 1, 2 do\n")
    assert.are.equal(0, code)
    assert.are.equal("2\nstdin:1: 'end' expected near <eof>\n", out)
  end)

  it("pretty-prints tables nested, with ordered keys and long strings cut", function()
    local code, out = pipe([[
{3, 2, 1, zeta = true, alpha = {beta = {1, 2}}, [10] = "ten"}
string.rep("x", 500)
tide.Prediction{score = 8, feedback = "fine"}
]])
    assert.are.equal(0, code)
    assert.matches('{3, 2, 1, %[10%] = "ten", alpha = {beta = {1, 2}}, zeta = true}\n', out)
    assert.matches('"' .. string.rep("x", 200) .. '"… %(300 bytes more%)\n', out)
    assert.matches('Prediction{feedback = "fine", score = 8}\n', out)
  end)

  it("has :help, :usage, :history and :model, and ends at :quit", function()
    local code, out = pipe(":help\n:usage\n:history\n:model\n:nope\n:quit\n'never'\n")
    assert.are.equal(0, code)
    assert.matches(":history %[n%]", out)
    assert.matches("{cache_hits = 0, calls = 0, cost = 0", out)
    assert.matches("no LM calls yet", out)
    assert.matches("no default LM", out)
    assert.matches("unknown command :nope", out)
    assert.is_nil(out:find("never", 1, true))
  end)

  it("says why TIDE_MODEL or :model cannot be used, without the library's file and line", function()
    local code, out = pipe(":model nowhere\nlm == nil\n", {TIDE_MODEL = "anthropic/x", ANTHROPIC_API_KEY = ""})
    assert.are.equal(0, code)
    assert.are.equal("cannot use TIDE_MODEL=anthropic/x: tide.LM: no API key for anthropic: set " ..
      "ANTHROPIC_API_KEY or pass api_key\ncannot use nowhere: bad argument #1 to 'LM' (model " ..
      "'nowhere' has no provider: write provider/model, e.g. 'openai/nowhere')\ntrue\n", out)
  end)

  it("runs a script first with -i, then reads the prompt", function()
    local script = tmpfile("greeting = 'hello from the script'\n")
    local code, out = pipe("greeting\n", nil, "-i " .. script)
    os.remove(script)
    assert.are.equal(0, code)
    assert.are.equal('"hello from the script"\n', out)
  end)

  describe("against mockllm", function()
    local server
    setup(function() server = mockllm.start() end)
    teardown(function() server:stop() end)
    after_each(assert_clean)

    it("calls the LM named by TIDE_MODEL as lm(...), and :model switches it", function()
      local env = {TIDE_MODEL = "openai/mock", OPENAI_API_KEY = "k", OPENAI_BASE_URL = server.url .. "/v1",
        TIDE_CACHE_DIR = tmpdir()}
      local code, out = pipe([[
lm("hi")
:model openai/other
:model
lm("again")
tide.usage().calls
:history 1
]], env)
      os.execute("rm -rf " .. env.TIDE_CACHE_DIR)
      assert.are.equal(0, code, out)
      assert.matches('^"Mock reply to: hi"\n', out)
      assert.matches("default LM: openai/other", out)
      assert.matches('"Mock reply to: again"\n2\n', out)
      assert.matches("openai/other .*user:\n    again", out)
    end)
  end)
end)

describe("the REPL's session", function()
  after_each(assert_clean)

  it("completes globals, keywords, fields and methods", function()
    local env = {tide = tide, string = string, myvalue = 1, mytable = {alpha = 1, alps = 2}}
    local s = repl.new{env = env, write = function() end}
    local word, list = s:complete("x = my")
    assert.are.equal("my", word)
    assert.are.same({"mytable", "myvalue"}, list)
    word, list = s:complete("mytable.al")
    assert.are.equal("al", word)
    assert.are.same({"alpha", "alps"}, list)
    word, list = s:complete("tide.gat")
    assert.are.equal("gat", word)
    assert.are.same({"gather"}, list)
    word, list = s:complete("retu")
    assert.are.equal("retu", word)
    assert.are.same({"return"}, list)
    list = select(2, s:complete("('x'):up"))
    assert.are.same({}, list)            -- no code runs to find a value
    list = select(2, s:complete("string.rep('x', 2):upp"))
    assert.are.same({}, list)
  end)

  it("tells complete inputs from unfinished ones", function()
    local s = repl.new{env = {}, write = function() end}
    assert.are.equal("more", (s:feed("for i = 1, 2 do")))
    assert.are.equal("run", (s:feed("end")))
    assert.are.equal("none", (s:feed("   ")))
    assert.are.equal("quit", (s:feed(":quit")))
    assert.has_error(function() s:feed(42) end, "bad argument #1 to 'feed' (string expected, got number)")
  end)

  it("pretty-prints cycles, depth and error objects", function()
    local t = {name = "loop"}
    t.self = t
    assert.are.equal('{name = "loop", self = {<cycle>}}', pretty.format(t))
    assert.are.equal("{a = {b = {…}}}", pretty.format({a = {b = {c = {}}}}, {max_depth = 2}))
    assert.are.equal("error (timeout): too slow", pretty.format(tide.error("timeout", "too slow")))
    local wide = {}
    for i = 1, 30 do wide["key" .. i] = i end
    assert.matches("^{\n  key1 = 1,\n  key10 = 10,\n", pretty.format(wide))
    assert.has_error(function() pretty.format(1, 2) end,
      "bad argument #2 to 'format' (table expected, got number)")
  end)
end)

describe("the REPL on a terminal", function()
  local server, state
  setup(function()
    server = mockllm.start()
    state = tmpdir()
  end)
  teardown(function()
    server:stop()
    os.execute("rm -rf " .. state)
  end)
  after_each(assert_clean)

  it("edits lines, continues chunks, recalls history, completes with Tab, exits on Ctrl-D", function()
    local out = pty({
      "expect > ", "ready",
      [[send x = 4\x7f5\r]],                 -- backspace: x = 5
      "expect > ", "ready",
      [[send  + 1\x01x\r]],                  -- Ctrl-A then type at the start: "x + 1"
      "expect 6", "expect > ", "ready",
      [[send if x then\r]],
      "expect >> ", "ready",
      [[send   "yes" end\r]],
      [[expect \n> ]], "ready",
      [[send if x then return "yes" end\r]],
      "expect yes", "expect > ", "ready",
      [[send \e[A\e[A\e[A\r]],               -- up three times: "x + 1" again
      "expect 6", "expect > ", "ready",
      [[send tide.gat\t]],                   -- Tab completes the field
      "expect her", [[send (function() return "done" end)\r]],
      "expect done", "expect > ", "ready",
      [[send \x04]],
      "wait",
    }, {XDG_STATE_HOME = state})
    assert.matches("tide %d+%.%d+%.%d+ %(Lua 5%.4%)", out)
    assert.matches('"yes"', out)
    assert.matches('"done"', out)
    assert.matches("exit=0\n$", out)
    -- the history file, private, with the multi-line chunk as one entry
    local hist = assert(slurp(state .. "/tide/history"))
    assert.matches("x\\040%+\\0401", hist)
    assert.matches("tide%.gather%(function%(%)", hist)
    local p = io.popen("stat -c %a " .. state .. "/tide/history")
    assert.are.equal("600", p:read("l"))
    p:close()
  end)

  it("drops the line on Ctrl-C at the prompt, and a half-typed chunk", function()
    local out = pty({
      "expect > ", "ready",
      [[send "first"]], [[expect first"]],
      -- "\n> ": a fresh prompt at the start of a line, never the tail of ">> "
      [[send \x03]],
      "expect ^C", [[expect \n> ]], "ready",
      [[send for i = 1, 2 do\r]],
      "expect >> ", "ready",
      [[send \x03]],
      "expect ^C", [[expect \n> ]], "ready",
      [[send "second"\r]],
      "expect second", "expect > ", "ready",
      [[send \x04]],
      "wait",
    }, {XDG_STATE_HOME = state})
    assert.matches("^C", out, 1, true)
    assert.is_nil(out:find('"first"\n"first"', 1, true))   -- never run
    assert.matches('"second"\n"second"\n', out)            -- echoed, then printed once
    assert.is_nil(out:find("syntax error", 1, true))       -- the chunk was dropped
    assert.matches("exit=0\n$", out)
  end)

  it("drops the chunk, not the session, on Ctrl-D at the continuation prompt", function()
    local out = pty({
      "expect > ", "ready",
      [[send for i = 1, 2 do\r]],
      "expect >> ", "ready",
      [[send \x04]],
      [[expect \n> ]], "ready",
      [[send "still here"\r]],
      "expect here", "expect > ", "ready",
      [[send \x04]],
      "wait",
    }, {XDG_STATE_HOME = state})
    assert.matches('"still here"\n"still here"\n', out)   -- echoed, then printed
    assert.is_nil(out:find("expected near", 1, true))      -- dropped, not run
    assert.matches("exit=0\n$", out)
  end)

  it("cancels the running input on Ctrl-C: the request is closed, the session goes on", function()
    server:reset()
    local cache = tmpdir()
    local out = pty({
      "expect > ", "ready",
      [[send slow = tide.LM("openai/mock", {headers = {["X-Mock-Scenario"] = "latency=60000"}})\r]],
      "expect > ", "ready",
      [[send do local _ <close> = setmetatable({}, {__close = function() print("unwound") end}); ]] ..
        [[return tide.gather(function() return slow("one") end, function() return slow("two") end) end\r]],
      "until " .. server.port .. [[ /__stats "in_flight":2]],
      [[send \x03]],
      "expect unwound", "expect cancelled", "expect > ", "ready",
      [[send 1 + 1\r]],
      "expect 2", "expect > ", "ready",
      [[send \x04]],
      "wait",
    }, {XDG_STATE_HOME = state, TIDE_CACHE_DIR = cache, OPENAI_API_KEY = "k",
        OPENAI_BASE_URL = server.url .. "/v1"})
    os.execute("rm -rf " .. cache)
    assert.matches("exit=0\n$", out)
    local s = server:wait_for(function(st) return st.in_flight == 0 and st.aborted >= 2 end)
    assert.are.equal(0, s.in_flight)
    assert.are.equal(2, s.aborted)      -- the server saw both requests closed
    assert.are.equal(0, s.completed)
  end)
end)

describe("Ctrl-C on Lua code that never waits", function()
  it("stops a busy loop at the prompt and the session goes on", function()
    local state = tmpdir()
    local out = pty({
      "expect > ", "ready",
      [[send print("spinning") while true do end\r]],
      "expect spinning",
      [[send \x03]],
      "expect cancelled", "expect > ", "ready",
      [[send local n = 0; for i = 1, 3e6 do n = n + 1 end; return n\r]],
      "expect 3000000", "expect > ", "ready",   -- long loops run on when nobody presses it
      [[send \x04]],
      "wait",
    }, {XDG_STATE_HOME = state})
    os.execute("rm -rf " .. state)
    assert.matches("exit=0\n$", out)
  end)

  it("stops a busy script: <close> variables run, exit status 130", function()
    local marker = os.tmpname()
    local script = tmpfile(string.format([[
local _ <close> = setmetatable({}, {__close = function()
  local f = assert(io.open(%q, "w")); f:write("closed"); f:close()
end})
io.stdout:write("spinning\n"); io.stdout:flush()
while true do end
]], marker))
    local out, statusf = os.tmpname(), os.tmpname()
    os.remove(statusf)
    os.remove(marker)
    os.execute(string.format(
      "( %s %s >%s 2>&1 & p=$!; while ! grep -q spinning %s; do sleep 0.01; done; kill -INT $p; wait $p; echo $? >%s )",
      TIDE, script, out, out, statusf))
    assert.are.equal("130\n", slurp(statusf))
    assert.are.equal("closed", slurp(marker))
    assert.matches("interrupted", slurp(out))
    for _, p in ipairs({marker, script, out, statusf}) do os.remove(p) end
  end)
end)

describe("Ctrl-C in a script run by the tide binary", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  it("cancels the main task: it unwinds through gather, closes <close> variables, exits 130", function()
    server:reset()
    local marker = os.tmpname()
    os.remove(marker)
    local script = tmpfile(string.format([[
local tide = require "tide"
local done = {}
local _ <close> = setmetatable({}, {__close = function()
  local f = assert(io.open(%q, "w"))
  f:write("finished: ", #done, "\n")
  f:close()
end})
tide.gather(
  function() done[#done + 1] = tide.request{url = %q}.status end,
  function() return tide.request{url = %q, headers = {["X-Mock-Scenario"] = "latency=60000"}} end,
  function() return tide.request{url = %q, headers = {["X-Mock-Scenario"] = "latency=60000"}} end)
print("not reached")
]], marker, server.url .. "/health", server.url .. "/v1/chat/completions",
      server.url .. "/v1/chat/completions"))
    local pidf, statusf, out = os.tmpname(), os.tmpname(), os.tmpname()
    os.remove(statusf)
    -- tide runs as a background job of a subshell that records its pid and status
    os.execute(string.format("( %s %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s ) &",
      TIDE, script, out, pidf, statusf, statusf, statusf))
    local s = server:wait_for(function(st) return st.in_flight == 2 end, 1000)
    assert.are.equal(2, s.in_flight)
    local pid
    for _ = 1, 500 do
      pid = tonumber(slurp(pidf) or "")
      if pid then break end
      tide.sleep(0.01)
    end
    assert.truthy(pid)
    os.execute("kill -INT " .. pid)
    local status
    for _ = 1, 1000 do
      status = slurp(statusf)
      if status then break end
      tide.sleep(0.01)
    end
    local output = slurp(out)
    assert.are.equal("130\n", status, output)
    assert.matches("interrupted", output)
    assert.is_nil(output:find("not reached", 1, true))
    assert.are.equal("finished: 1\n", slurp(marker))   -- what finished before Ctrl-C was written
    s = server:wait_for(function(st) return st.aborted >= 2 end)
    assert.are.equal(2, s.aborted)
    assert.are.equal(0, s.in_flight)
    for _, p in ipairs({marker, script, pidf, statusf, out}) do os.remove(p) end
  end)
end)
