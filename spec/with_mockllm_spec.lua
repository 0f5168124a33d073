-- scripts/with_mockllm, the offline path the README shows: the REPL's `lm` talks to
-- the mock server, Ctrl-C reaches the command and not the server, the command's
-- exit status passes through, and a rerun finds its answers in the disk cache.
local mockllm = require "support.mockllm"

local WRAPPER = "scripts/with_mockllm"
local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local PTY = os.getenv("SPEC_PTY_BIN") or "build/spec_pty"
local GAME = os.getenv("GAME_BIN") or "build/game"
local files = require "support.files"
local tmpdir = files.tmpdir

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end


-- The environment of a run: no model of the caller's, a private cache and state.
local function env_prefix(env)
  -- (and no preloaded sanitizer runtime for bash under `make check`: the binaries
  -- it runs are instrumented themselves)
  local parts = {"env -u TIDE_MODEL -u MOCKLLM_URL -u OPENAI_API_KEY -u OPENAI_BASE_URL -u LD_PRELOAD"}
  local keys = {}
  for k in pairs(env) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "='" .. env[k] .. "'" end
  return table.concat(parts, " ")
end

--- Runs `cmd` under the wrapper; returns the exit status and the output.
local function run(cmd, env)
  local out = os.tmpname()
  local ok, _, code = os.execute(string.format("%s %s %s >%s 2>&1", env_prefix(env or {}),
    WRAPPER, cmd, out))
  local text = files.read(out)
  os.remove(out)
  return ok and 0 or code, text
end

--- A loopback port that nobody listens on now: a mockllm's, once it has stopped.
local function free_port()
  local s = mockllm.start()
  local port = s.port
  s:stop()
  return port
end

describe("scripts/with_mockllm", function()
  local cache, state
  before_each(function()
    cache, state = tmpdir(), tmpdir()
  end)
  after_each(function()
    os.execute("rm -rf " .. cache .. " " .. state)
  end)

  it("gives the REPL an `lm` on the mock server, which survives a Ctrl-C; :quit exits 0", function()
    local script = tmpfile(table.concat({
      "expect > ", "ready",
      [[send lm("hi")\r]],
      "expect Mock reply to: hi", "expect > ", "ready",
      [[send \x03]],                           -- at the prompt: drops the line
      "expect ^C", [[expect \n> ]], "ready",
      [[send lm("again")\r]],
      "expect Mock reply to: again", "expect > ", "ready",
      [[send :quit\r]],
      "wait",
    }, "\n") .. "\n")
    local p = io.popen(string.format("%s %s %s %s %s 2>&1",
      env_prefix{TIDE_CACHE_DIR = cache, XDG_STATE_HOME = state}, PTY, script, WRAPPER, TIDE))
    local out = p:read("a"):gsub("\r", "")
    p:close()
    os.remove(script)
    assert.matches('"Mock reply to: hi"', out)
    assert.matches("replies come from the local mock server at http://127%.0%.0%.1:%d+", out)
    assert.matches('"Mock reply to: again"', out)   -- the server outlived the Ctrl-C
    assert.matches("exit=0\n$", out)                  -- the wrapper's, after :quit
  end)

  it("passes the command's exit status through, and its arguments as they are", function()
    local code, out = run([[sh -c 'echo "$MOCKLLM_URL|$1"; exit 7' sh "two words"]])
    assert.are.equal(7, code)
    assert.matches("^http://127%.0%.0%.1:%d+|two words\n$", out)
    code = run("true")
    assert.are.equal(0, code)
  end)

  it("keeps the port from run to run, so a rerun is answered from the disk cache", function()
    local port = free_port()
    local script = tmpfile([[
local tide = require "tide"
local lm = assert(require("tide.script").lm(nil, "rerun.lua"))
local r = lm:call{messages = {{role = "user", content = "the same question"}}}
local stats = tide.request{url = os.getenv("MOCKLLM_URL") .. "/__stats"}.body
print(os.getenv("MOCKLLM_URL"), r.text, r.cached, stats:match('"requests":(%d+)'))
]])
    local env = {TIDE_CACHE_DIR = cache, MOCKLLM_PORT = tostring(port)}
    local code1, out1 = run(TIDE .. " " .. script, env)
    local code2, out2 = run(TIDE .. " " .. script, env)
    os.remove(script)
    assert.are.equal(0, code1, out1)
    assert.are.equal(0, code2, out2)
    local url = "http://127.0.0.1:" .. port
    assert.matches(url .. "\tMock reply to: the same question\tfalse\t1\n", out1, 1, true)
    -- the second run's server (on the same port) never saw a request
    assert.matches(url .. "\tMock reply to: the same question\ttrue\t0\n", out2, 1, true)
  end)

  it("reruns the README's offline evaluation from the cache: every row cached", function()
    local env = {TIDE_CACHE_DIR = cache, MOCKLLM_PORT = tostring(free_port())}
    local out = cache .. "/critics.jsonl"
    local cmd = string.format("%s eval scripts/eval_critics.lua --data scripts/data/drafts.jsonl " ..
      "--out %s --overwrite --progress none", TIDE, out)
    local cjson = require "cjson"
    local function rows()
      local list = {}
      for line in (files.read(out) or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
      return list
    end
    local code, text = run(cmd, env)
    assert.are.equal(0, code, text)
    local first = rows()
    assert.is_true(#first > 0)
    for _, r in ipairs(first) do assert.is_false(r.cached) end
    code, text = run(cmd, env)
    assert.are.equal(0, code, text)
    local second = rows()
    assert.are.equal(#first, #second)
    for _, r in ipairs(second) do assert.is_true(r.cached, cjson.encode(r)) end
  end)

  it("takes another port when the usual one is taken, and still runs", function()
    local busy = mockllm.start()
    local script = tmpfile([[
local tide = require "tide"
print(os.getenv("MOCKLLM_PORT"))
print(tide.request{url = os.getenv("MOCKLLM_URL") .. "/health"}.body)
]])
    local code, out = run(TIDE .. " " .. script, {MOCKLLM_PORT = tostring(busy.port)})
    busy:stop()
    os.remove(script)
    assert.are.equal(0, code, out)
    local port = tonumber(out:match("^(%d+)\n"))
    assert.is_truthy(port, out)
    assert.are_not.equal(busy.port, port)
    assert.matches('"ok"', out)
  end)

  it("runs the example game, which prints mockllm's in-flight counts unasked #slow", function()
    local code, out = run(GAME)
    assert.are.equal(0, code, out)
    assert.matches("frame %d+: verdict: score", out)
    local frames = tonumber(out:match("frames_with_requests_in_flight=(%d+)"))
    assert.is_truthy(frames, out)
    assert.is_true(frames >= 2, out)
    assert.matches("peak_in_flight=3", out)
    assert.matches("loop_closed=yes", out)
  end)
end)
