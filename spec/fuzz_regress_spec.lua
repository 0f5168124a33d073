-- Regressions from fuzzing (fuzz/RESULTS.md names each finding).  mockllm's are
-- sent as raw bytes over a loopback socket (bash's /dev/tcp: curl cannot send a
-- malformed chunked body); the reply parsers' are called directly.
local mockllm = require "support.mockllm"

-- Sends the bytes of `parts` on one connection, pausing between parts so each
-- arrives in its own read, and returns what the server answered before closing.
local function raw_exchange(port, parts)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local cmds = {"exec 3<>/dev/tcp/127.0.0.1/" .. port}
  for i, bytes in ipairs(parts) do
    local path = string.format("%s/%d", dir, i)
    local fh = assert(io.open(path, "wb"))
    fh:write(bytes)
    fh:close()
    cmds[#cmds + 1] = "cat " .. path .. " >&3"
    if i < #parts then cmds[#cmds + 1] = "sleep 0.2" end
  end
  cmds[#cmds + 1] = "timeout 5 cat <&3"
  local p = assert(io.popen("bash -c '" .. table.concat(cmds, "; ") .. "' 2>/dev/null", "r"))
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. dir)
  return out
end

local HEAD = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" ..
             "Transfer-Encoding: chunked\r\n\r\n"

describe("mockllm's request framing after fuzzing", function()
  local server
  setup(function() server = mockllm.start{lenient = true} end)   -- raw keyless requests
  teardown(function() server:stop() end)

  -- M1: a chunk-size line over 4 KiB was refused when it came in pieces and
  -- accepted when it came in one read.
  it("refuses a long chunk extension however the bytes arrive", function()
    local ext = "5;" .. string.rep("a", 5000)
    local whole = raw_exchange(server.port, {HEAD .. ext .. "\r\nhello\r\n0\r\n\r\n"})
    local split = raw_exchange(server.port, {HEAD .. ext:sub(1, 4000), ext:sub(4001) ..
                                             "\r\nhello\r\n0\r\n\r\n"})
    assert.matches("^HTTP/1.1 400", whole)
    assert.matches("malformed chunked body", whole)
    assert.matches("^HTTP/1.1 400", split)
  end)

  -- M2: trailer lines were read without a bound while the blank line never came.
  it("answers endless trailers with 400 instead of buffering them", function()
    local trailers = string.rep("X-Pad: " .. string.rep("p", 60) .. "\r\n", 1200)  -- ~82 KiB
    local out = raw_exchange(server.port, {HEAD .. "0\r\n" .. trailers})
    assert.matches("^HTTP/1.1 400", out)
  end)

  it("still frames a chunked request with a short extension and trailers", function()
    local body = '{"messages":[{"role":"user","content":"hi"}]}'
    local out = raw_exchange(server.port, {HEAD .. string.format("%x;x=1\r\n", #body) .. body ..
                                           "\r\n0\r\nX-T: 1\r\n\r\n"})
    assert.matches("^HTTP/1.1 200", out)
  end)
end)

-- The reply parsers' findings (L1-L4), fixed in lua/tide/adapters/ (coerce, chat).
describe("the reply parsers after fuzzing", function()
  local coerce = require "tide.adapters.coerce"

  -- Runs fn under a budget of Lua VM instructions: a parser that went back to a
  -- quadratic scan in Lua raises "over budget" instead of taking minutes.  Counted,
  -- not timed, so the spec does not depend on the machine's speed.
  local function within_instructions(budget, fn)
    local co = coroutine.create(fn)
    debug.sethook(co, function() error("over budget: more than " .. budget .. " instructions", 0) end,
      "", budget)
    local ok, a, b = coroutine.resume(co)
    assert(ok, a)
    return a, b
  end

  -- For the scans that run inside string.find/match (C, where instructions are not
  -- counted): CPU seconds, with a bound 1 000 times what the linear code takes, so
  -- it only catches a return of the backtracking (minutes), never a slow machine.
  local function cpu_seconds(fn)
    local t0 = os.clock()
    local a, b = fn()
    return os.clock() - t0, a, b
  end

  -- L1: 300 000 '[' overflowed Lua's stack: an untyped "stack overflow" escaped.
  it("coerce.literal returns nil and a message for nesting past its bound", function()
    local v, msg = coerce.literal(string.rep("[", 300000))
    assert.is_nil(v)
    assert.matches("nesting deeper than", msg)
  end)

  -- L2: every '{' started a scan to the end of the reply: 64 KiB of '{' took minutes.
  it("coerce.first_object is linear in unbalanced braces", function()
    -- one pass over 64 Ki characters: a few hundred thousand instructions; the
    -- quadratic scan needed billions
    local v = within_instructions(20000000, function()
      return coerce.first_object(string.rep("{", 65536))
    end)
    assert.is_nil(v)
  end)

  -- L3: trim by s:match("^%s*(.-)%s*$") was quadratic in a run of inner blanks.
  it("coercing a field with a long run of blanks is linear", function()
    local secs, v = cpu_seconds(function()
      return coerce.value("1" .. string.rep(" ", 65536) .. "x", {kind = "int", text = "int"})
    end)
    assert.is_nil(v)
    assert.is_true(secs < 5, "backtracking is back: " .. secs .. " s")
  end)

  -- L4: the code-fence pattern backtracked through every split of a blank run.
  it("a reply of a fence and many blank lines is read at once", function()
    local secs = cpu_seconds(function()
      return coerce.first_object("```\n" .. string.rep("\n", 20000))
    end)
    assert.is_true(secs < 5, "backtracking is back: " .. secs .. " s")
    assert.are.same({a = 1}, coerce.first_object("```json\n\n  {\"a\": 1}\n\n```\n"))
  end)
end)
