--- tide.errors: the catalogue of error kinds matches what the sources raise, and
-- real failures over mockllm carry kinds from it with its retryable answer.
local tide = require "tide"
local errors = require "tide.errors"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

-- The checkout's root: tide.errors lives at <root>/lua/tide/errors.lua.
local ROOT = package.searchpath("tide.errors", package.path):gsub("lua/tide/errors%.lua$", "")

local function files(dir, ext)
  local list = {}
  local p = io.popen(string.format("find '%s%s' -name '*.%s' | sort", ROOT, dir, ext))
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  return list
end

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

--- Adds name → "file" to found for every capture of pattern in text.
local function collect(found, text, pattern, where)
  for name in text:gmatch(pattern) do
    found[name] = found[name] or where
  end
end

--- The kinds the C core raises: error_push/error_raise(L, "kind", ...) and the
-- like, the string literals a function named *kind* returns (the transfer
-- error's kind), and the kind the REPL's interrupt hands to tide.error.
-- mockllm is a program of its own: its errors are not tide's.
local function c_kinds()
  local found = {}
  for _, path in ipairs(files("engine", "c")) do
    if not path:find("/mockllm/", 1, true) then
      local text = read(path)
      local short = path:sub(#ROOT + 1)
      collect(found, text, 'error_[%w_]*%s*%(%s*[%w_]+%s*,%s*"([%w_]+)"', short)
      for body in text:gmatch("[%w_]*kind[%w_]*%s*%b()%s*(%b{})") do
        collect(found, body, 'return%s+"([%w_]+)"', short)
      end
      collect(found, text, '"error"%s*%)%s*;%s*lua_pushliteral%s*%(%s*L%s*,%s*"([%w_]+)"', short)
    end
  end
  return found
end

--- The kinds the Lua library raises: `kind = "x"` fields, the literals of a
-- `kind = a and "x" or "y"` choice, tide.error("x", ...), and tables named
-- *KIND* (status → kind).  Comment lines are skipped: they quote kinds of
-- other things (a signature type's kind).
local function lua_kinds()
  local found, causes = {}, {}
  for _, path in ipairs(files("lua", "lua")) do
    local short = path:sub(#ROOT + 1)
    local lines = {}
    for line in read(path):gmatch("[^\n]*") do
      if not line:match("^%s*%-%-") then lines[#lines + 1] = line end
    end
    local text = table.concat(lines, "\n")
    collect(found, text, 'kind%s*=%s*"([%w_]+)"', short)
    collect(found, text, '%.error%(%s*"([%w_]+)"%s*[,)]', short)
    for _, line in ipairs(lines) do
      if line:find("kind%s*=[^=]") then
        collect(found, line, 'and%s+"([%w_]+)"', short)
        collect(found, line, 'or%s+"([%w_]+)"', short)
      end
    end
    for body in text:gmatch("[%w_]*KIND[%w_]*%s*=%s*(%b{})") do
      collect(found, body, '=%s*"([%w_]+)"', short)
    end
    -- a transport error's cause (other kinds, such as mcp, may carry causes of their own)
    if text:find('"transport"', 1, true) then
      collect(causes, text, 'cause%s*=%s*"([%w_]+)"', short)
    end
  end
  return found, causes
end

describe("tide.errors, the catalogue of error kinds", function()
  it("lists every kind the C core raises", function()
    local found = c_kinds()
    -- the scan itself still works (files moved, functions renamed)
    for _, k in ipairs{"cancelled", "deadlock", "lua", "io", "dns", "reset"} do
      assert.is_not_nil(found[k], "the C scan no longer finds '" .. k .. "'")
    end
    for name, where in pairs(found) do
      assert.is_not_nil(errors.kinds[name],
        string.format("%s raises kind '%s', which tide.errors does not list", where, name))
    end
  end)

  it("lists every kind the Lua library raises, and every transport cause", function()
    local found, causes = lua_kinds()
    for _, k in ipairs{"parse", "transport", "context_window", "bad_request", "server", "lua"} do
      assert.is_not_nil(found[k], "the Lua scan no longer finds '" .. k .. "'")
    end
    for name, where in pairs(found) do
      assert.is_not_nil(errors.kinds[name],
        string.format("%s raises kind '%s', which tide.errors does not list", where, name))
    end
    local listed = {}
    for _, c in ipairs(errors.kinds.transport.causes) do listed[c] = true end
    for cause, where in pairs(causes) do
      assert.is_true(listed[cause] == true,
        string.format("%s gives cause '%s', which tide.errors.kinds.transport does not list", where, cause))
    end
  end)

  it("lists no kind that nothing raises, and says what each means", function()
    local c, lua = c_kinds(), lua_kinds()
    for _, name in ipairs(errors.names()) do
      assert.is_true(c[name] ~= nil or lua[name] ~= nil, "tide.errors lists '" .. name ..
        "', which neither the C core nor the Lua library raises")
      local entry = errors.kinds[name]
      assert.is_string(entry.meaning)
      assert.is_true(entry.retryable == true or entry.retryable == false or entry.retryable == "varies")
    end
    -- a transfer's kind is a transport error's cause, and is listed itself
    for _, cause in ipairs(errors.kinds.transport.causes) do
      assert.is_true(cause == "incomplete" or errors.kinds[cause] ~= nil)
    end
  end)

  it("is tide.errors, sorted by names()", function()
    assert.are.equal(errors, tide.errors)
    local names = errors.names()
    assert.is_true(#names >= 20)
    for i = 2, #names do assert.is_true(names[i - 1] < names[i]) end
  end)
end)

describe("tide.errors.retryable", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  local function failed_call(scenario)
    local lm = tide.LM("openai/mock", {base_url = server.url .. "/v1", api_key = "k",
      cache = false, num_retries = 0, headers = {["x-mock-scenario"] = scenario}})
    local ok, err = pcall(lm.call, lm, "hi")
    assert.is_false(ok)
    return err
  end

  it("answers from the error's own flag, else its kind's entry", function()
    local limited = failed_call("status=429")
    assert.are.equal("rate_limit", limited.kind)
    assert.is_true(errors.retryable(limited))
    local refused = failed_call("status=401")
    assert.are.equal("auth", refused.kind)
    assert.is_false(errors.retryable(refused))
    local failed = failed_call("status=500")
    assert.are.equal("server", failed.kind)
    assert.is_true(errors.retryable(failed))
    -- the error's own flag wins over the kind's usual answer
    assert.is_false(errors.retryable(tide.error{kind = "server", message = "x", retryable = false}))
    assert.is_true(errors.retryable(tide.error{kind = "timeout", message = "x"}))
    assert.is_false(errors.retryable(tide.error{kind = "mine", message = "x"}))
    assert.is_false(errors.retryable("a string"))
  end)
end)
