-- Secrets stay secret: a canary key goes through every path that shows or writes
-- something — answers, errors, history, usage, cache files, crash output, a task's
-- unobserved failure, an echoed key in a server's error text — and is found nowhere.
local tide = require "tide"
local mockllm = require "support.mockllm"
local redact = require "tide.redact"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local CANARY = "sk-CANARY-secrets-5b7e2d91"
local files = require "support.files"
local sh, write = files.sh, files.write

describe("redact.value", function()
  it("replaces every occurrence, in strings and nested tables, leaving the rest", function()
    local t = {message = "bad key sk-abcdef1234 (sk-abcdef1234)", nested = {raw = "x sk-abcdef1234"},
               n = 3}
    t.self = t
    redact.value(t, {"sk-abcdef1234"})
    assert.are.equal("bad key [redacted] ([redacted])", t.message)
    assert.are.equal("x [redacted]", t.nested.raw)
    assert.are.equal(3, t.n)
    assert.are.equal("no secret here", redact.value("no secret here", {"sk-abcdef1234"}))
    assert.are.equal("abc", redact.value("abc", {"a"}))   -- too short to look for
  end)
end)

describe("redact.value on JSON text", function()
  local KEY = "sk-abcdef1234"
  local function esc(s) return (s:gsub(".", function(c) return string.format("\\u%04X", c:byte()) end)) end

  it("finds a key written \\u00XX-escaped, wholly or in part, and \\/", function()
    local body = '{"error":{"message":"bad key ' .. esc(KEY) .. '"}}'
    assert.are.equal('{"error":{"message":"bad key [redacted]"}}', redact.value(body, {KEY}))
    local half = '{"m":"' .. KEY:sub(1, 4) .. esc(KEY:sub(5)) .. '"}'
    assert.are.equal('{"m":"[redacted]"}', redact.value(half, {KEY}))
    assert.are.equal('{"m":"[redacted]"}', redact.value('{"m":"a\\/b-secret-1"}', {"a/b-secret-1"}))
    local t = {body = body}
    redact.value(t, {KEY})
    assert.are.equal('{"error":{"message":"bad key [redacted]"}}', t.body)
  end)

  it("leaves a text without the key as it is, escapes and all", function()
    local body = '{"m":"\\u003chtml\\u003e \\\\u0073k"}'
    assert.are.equal(body, redact.value(body, {KEY}))
    -- an escaped backslash is not the start of an escape: \\u0073 is "\\" then "u0073"
    local tricky = '{"m":"sk-abcdef12\\\\u0033\\\\u0034"}'
    assert.are.equal(tricky, redact.value(tricky, {KEY}))
  end)
end)

describe("redact.source", function()
  -- Each line, redacted, and still Lua that compiles.
  local cases = {
    {'k = "sk-proj-abcdefghijklmnop"', 'k = "[redacted]"'},
    {'t["api_key"] = "hunter2-secret-value"', 't["api_key"] = "[redacted]"'},
    {"t['X-Api-Key'] = 'abcdefgh1234'", "t['X-Api-Key'] = '[redacted]'"},
    {'lm = tide.LM("anthropic/c", {api_key = [[sk-ant-api03-xyzxyzxyzxyz]]})',
     'lm = tide.LM("anthropic/c", {api_key = "[redacted]"})'},
    {'k = [==[AIzaSyA-1234567890abcdefghijklmno]==]', 'k = "[redacted]"'},
    {'k = "sk-" .. "proj-" .. "abcdef123456"', 'k = "[redacted]" .. "[redacted]" .. "[redacted]"'},
    {'k = os.getenv("X") or ("AIza" .. "SyBBBBBBBBBBBB")', 'k = os.getenv("X") or ("[redacted]" .. "[redacted]")'},
    {'h = {Authorization = "Bearer abcdefghijkl"}', 'h = {Authorization = "[redacted]"}'},
    {'x = "\\115k-escaped-key-123456"', 'x = "[redacted]"'},
    {'if k == "sk-abcdefghijklmnopq" then end', 'if k == "[redacted]" then end'},
    {'f() -- sk-a-key-in-a-comment-xyz', 'f() -- [redacted]'},
    -- what is not a key stays
    {'print("sk-learn", "hello", \'world\', [[long]])', 'print("sk-learn", "hello", \'world\', [[long]])'},
    {'api = "https://api.openai.com/v1" .. path', 'api = "https://api.openai.com/v1" .. path'},
  }
  for _, case in ipairs(cases) do
    it("redacts " .. case[1], function()
      local out = redact.source(case[1])
      assert.are.equal(case[2], out)
      assert.is_not_nil(load(out), "no longer Lua: " .. out)
    end)
  end

  it("redacts the secrets of the LMs made so far (a header's key), wherever they stand", function()
    local key = "team-token-" .. tostring(math.random(1e6, 9e6))
    require("tide").LM("openai_compatible/m", {base_url = "http://127.0.0.1:9/v1",
      headers = {["api-key"] = key}, env = function() return nil end})
    assert.are.equal('print("the key is [redacted]")', redact.source('print("the key is ' .. key .. '")'))
  end)
end)

describe("the REPL's history", function()
  it("keeps typed lines with their keys redacted", function()
    local repl = require "tide.repl"
    local session = repl.new{write = function() end}
    local action, _, text = session:feed('lm = tide.LM("openai/x", {api_key = "' .. CANARY .. '"})')
    assert.are.equal("run", action)
    assert.are.equal('lm = tide.LM("openai/x", {api_key = "[redacted]"})', text)
    -- a key from the providers' variables, wherever it stands in the line
    local env = {OPENAI_API_KEY = CANARY}
    local source = redact.value('print("' .. CANARY .. '")', redact.known_keys(function(k)
      return env[k] end))
    assert.are.equal('print("[redacted]")', source)
  end)
end)

describe("a canary key", function()
  local server, dir
  setup(function()
    server = mockllm.start()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/home " .. dir .. "/state " .. dir .. "/cache"))
  end)
  teardown(function()
    server:stop()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("an LM error that quotes the key carries [redacted] instead", function()
    -- the key in the path: mockllm's 404 text quotes the path back
    local lm = tide.LM("openai/gpt-4o-mini", {api_key = CANARY, base_url = server.url .. "/" .. CANARY,
                                             cache = false, num_retries = 0})
    local ok, err = pcall(lm.call, lm, "hi")
    assert.is_false(ok)
    assert.are.equal("not_found", err.kind)
    assert.is_nil(tostring(err):find(CANARY, 1, true))
    assert.matches("%[redacted%]", err.message)
    for _, entry in ipairs(lm.history) do
      assert.is_nil(require("cjson").encode(entry):find(CANARY, 1, true))
    end
  end)

  it("appears nowhere tide writes: output, errors, crash output, history, cache", function()
    local script = dir .. "/script.lua"
    write(script, string.format([[
      local tide = require "tide"
      local url = %q
      local lm = tide.LM("openai/gpt-4o-mini", {base_url = url .. "/v1", num_retries = 1})
      tide.configure{lm = lm}
      print(lm("hello"))
      print(lm)
      for _, sc in ipairs{"status=401", "status=500", "fault=malformed", "fault=hang"} do
        local bad = tide.LM("openai/gpt-4o-mini", {base_url = url .. "/v1", num_retries = 0,
          timeout = 0.3, cache = false, headers = {["X-Mock-Scenario"] = sc}})
        local ok, err = pcall(bad.call, bad, "x")
        print(sc, err)
        for k, v in pairs(err) do print("", k, v) end
      end
      local echo = tide.LM("openai/gpt-4o-mini", {base_url = url .. "/" .. os.getenv("OPENAI_API_KEY"),
        num_retries = 0, cache = false})
      print(pcall(echo.call, echo, "x"))
      local r = tide.critics.panel(){content = "draft", context = "B2B", requirements = "cta"}
      print(r)
      tide.inspect_history(20)
      print(require("cjson").encode(tide.usage()))
      tide.spawn(function() error(tide.error{kind = "server", message = "nobody waits for me"}) end)
      error("the script fails at the end")
    ]], server.url))
    local env = string.format("env -i PATH=\"$PATH\" HOME=%s/home XDG_STATE_HOME=%s/state " ..
      "TIDE_CACHE_DIR=%s/cache OPENAI_API_KEY=%s LUA_PATH=%q LUA_CPATH=%q",
      dir, dir, dir, CANARY, os.getenv("LUA_PATH") or "", os.getenv("LUA_CPATH") or "")
    local out = sh(env .. " " .. TIDE .. " " .. script)
    assert.matches("Mock reply to: hello", out)          -- the calls did run
    assert.matches("the script fails at the end", out)   -- and the crash was printed
    assert.matches("%[redacted%]", out)                   -- the echoed key was caught
    assert.is_nil(out:find(CANARY, 1, true), "the key is in the output:\n" .. out)
    -- every file tide wrote under the home, state and cache directories
    local written = sh("find " .. dir .. "/home " .. dir .. "/state " .. dir .. "/cache -type f | wc -l")
    assert.is_true(tonumber(written) >= 1, "the cache wrote nothing")
    assert.are.equal("", sh("grep -rl '" .. CANARY .. "' " .. dir .. "/home " .. dir ..
      "/state " .. dir .. "/cache"))
  end)

  it("cache directories are 0700 and cache files 0600", function()
    local modes = sh("find " .. dir .. "/cache -mindepth 1 -printf '%y %m\\n' | sort -u")
    assert.matches("d 700", modes)
    assert.matches("f 600", modes)
    assert.is_nil(modes:find("d 7[1-7]"))
    assert.is_nil(modes:find("f 6[1-7]"))
  end)

  it("mockllm listens on loopback only by default", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", server.url)
    local listening = sh("ss -ltnH 2>/dev/null | grep ':" .. server.port .. " ' || true")
    if listening ~= "" then assert.matches("127%.0%.0%.1:" .. server.port, listening) end
  end)
end)
