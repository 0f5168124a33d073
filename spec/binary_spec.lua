-- The tide binary, run as a user would run it.
local tide = require "tide"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"

local function run(args, stdin)
  local out = os.tmpname()
  local cmd = string.format("%s %s >%s 2>&1", TIDE, args, out)
  if stdin then cmd = string.format("printf '%%s' %q | %s", stdin, cmd) end
  local ok, _, code = os.execute(cmd)
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(out)
  return ok and 0 or code, text
end

local function script(source)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  return path
end

describe("the tide binary", function()
  it("runs a script whose main chunk is a task, with arg like lua", function()
    local path = script([[
      local tide = require "tide"
      local nargs = select("#", ...)
      local a, b = tide.gather(function() tide.sleep(0.01) return arg[1] end,
                               function() return nargs end)
      print(a, b, arg[0] ~= nil, tide.current() ~= nil)
    ]])
    local code, out = run(path .. " first second")
    os.remove(path)
    assert.are.equal(0, code)
    assert.are.equal("first\t2\ttrue\ttrue\n", out)
  end)

  it("runs -e code as a task", function()
    local code, out = run([[-e 'local t = require "tide"; t.sleep(0.01); print(t.current() ~= nil)']])
    assert.are.equal(0, code)
    assert.are.equal("true\n", out)
  end)

  it("reads the script from standard input with -", function()
    local code, out = run("-", "print(1 + 1)")
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
  end)

  it("keeps running until the tasks the script left behind are done", function()
    local code, out = run([[-e 'local t = require "tide"; t.spawn(function() t.sleep(0.02) print("late") end)']])
    assert.are.equal(0, code)
    assert.are.equal("late\n", out)
  end)

  it("prints an uncaught error with its traceback and exits non-zero", function()
    local path = script([[
      local tide = require "tide"
      local function inner() error("it broke") end
      tide.gather(function() tide.sleep(0) inner() end)
    ]])
    local code, out = run(path)
    os.remove(path)
    assert.are_not.equal(0, code)
    assert.matches("lua: .*it broke", out)
    assert.matches("stack traceback:", out)
    assert.matches(":2: in %a+ .*inner", out)
  end)

  it("says so when a task failed and nobody ever took its error", function()
    local code, out = run([[-e 'require("tide").spawn(function() error("lost in the background") end)']])
    assert.are.equal(0, code)
    assert.matches("a task failed and nobody took its error: .*lost in the background", out)
  end)

  it("reports a syntax error and exits non-zero", function()
    local code, out = run([[-e 'this is not lua']])
    assert.are_not.equal(0, code)
    assert.matches("syntax error", out)
  end)

  it("prints its version and help", function()
    local code, out = run("--version")
    assert.are.equal(0, code)
    assert.matches("^tide %d+%.%d+%.%d+", out)
    assert.matches(tide.version, out, 1, true)
    code, out = run("-h")
    assert.are.equal(0, code)
    assert.matches("usage: tide", out)
  end)

  it("lists in --help the environment it reads, and where eval's flags are", function()
    local code, out = run("--help")
    assert.are.equal(0, code)
    assert.matches("tide eval PROGRAM%.lua %-%-data FILE %-%-out FILE", out)
    assert.matches("(tide eval --help)", out, 1, true)
    assert.matches("Exit status: 0, 1 after an error, 2 for a usage error, 130 after Ctrl-C", out, 1, true)
    local vars = {"TIDE_MODEL", "TIDE_CACHE_DIR", "MOCKLLM_URL", "XDG_STATE_HOME"}
    -- every key and base-URL variable the providers read (their table is the truth)
    for _, name in ipairs(require("tide.providers").key_variables()) do vars[#vars + 1] = name end
    local path = assert(package.searchpath("tide.providers", package.path))
    local source = assert(require("support.files").read(path))
    for name in source:gmatch('base_env = "([%w_]+)"') do vars[#vars + 1] = name end
    assert.is_true(#vars >= 10)
    for _, name in ipairs(vars) do
      assert.truthy(out:find(name, 1, true), name .. " is not in tide --help")
    end
  end)

  it("refuses unknown options with the usage; with no arguments it is the REPL", function()
    local code, out = run("--bogus")
    assert.are.equal(2, code)   -- a usage error, as for tide eval
    assert.matches("unknown option '%-%-bogus'", out)
    assert.matches("%-%-help for the options", out)
    code, out = run("-e")
    assert.are.equal(2, code)
    assert.matches("'%-e' needs an argument", out)
    code, out = run("", "1 + 1\n")   -- standard input is a pipe: plain lines (spec/repl_spec.lua)
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
  end)

  it("loads C modules such as lua-cjson (the Lua API is exported)", function()
    local code, out = run([[-e 'print(require("cjson").encode({1, 2}))']])
    assert.are.equal(0, code)
    assert.are.equal("[1,2]\n", out)
  end)
end)

describe("the module under stock lua5.4", function()
  it("require 'tide' works from plain lua5.4 with the paths README gives", function()
    local cmd = [[lua5.4 -e 'local t = require "tide"; print(t.gather({function() t.sleep(0.01) return "ok" end})[1])' 2>&1]]
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    assert.are.equal("ok\n", out)
  end)
end)
