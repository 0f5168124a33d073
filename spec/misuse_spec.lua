--- A misused API raises at once, naming the function and the argument, and blames
-- the caller's line (tide.check), however deep in the library the check sits; a
-- callable table is taken wherever a function is.
local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local HERE = "^[^:]*misuse_spec%.lua:%d+: "

--- The message fn raises, which must start at this file's line.
local function blamed(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_string(err)
  assert.matches(HERE, err)
  return (err:gsub(HERE, ""))
end

local function callable(fn)
  return setmetatable({}, {__call = function(_, ...) return fn(...) end})
end

describe("misuse blamed on the caller's line", function()
  after_each(assert_clean)

  it("DummyLM, Module, Example", function()
    assert.are.equal("bad argument #1 to 'DummyLM' (table or function expected, got number)",
      blamed(function() local lm = tide.DummyLM(5); return lm end))
    assert.are.equal("bad argument #2 to 'DummyLM' (table expected, got string)",
      blamed(function() local lm = tide.DummyLM({"a"}, "x"); return lm end))
    assert.are.equal("bad argument #1 to 'Module' (table expected, got number)",
      blamed(function() local m = tide.Module(5); return m end))
    assert.are.equal("bad argument #1 to 'Module' (the definition needs a forward function, got nil)",
      blamed(function() local m = tide.Module{}; return m end))
    assert.are.equal("bad argument #1 to 'Example' (table expected, got string)",
      blamed(function() local e = tide.Example("x"); return e end))
    assert.are.equal("bad argument #2 to 'with_inputs' (string expected, got number)",
      blamed(function() local e = tide.Example{a = 1}:with_inputs("a", 2); return e end))
    assert.matches("^Example:inputs: call with_inputs",
      blamed(function() local e = tide.Example{a = 1}:inputs(); return e end))
  end)

  it("the adapters, the SSE parser and signatures", function()
    local sig = tide.Signature("q -> a")
    assert.are.equal("bad argument #2 to 'parse' (string expected, got number)",
      blamed(function() local r = tide.adapters.chat.parse(sig, 5); return r end))
    assert.are.equal("bad argument #2 to 'parse' (string expected, got nil)",
      blamed(function() local r = tide.adapters.json.parse(sig); return r end))
    assert.are.equal("bad argument #1 to 'format' (signature expected, got string)",
      blamed(function() local r = tide.adapters.chat.format("q -> a", {}); return r end))
    assert.are.equal("bad argument #2 to 'format' (table of inputs expected, got string)",
      blamed(function() local r = tide.adapters.json.format(sig, "q"); return r end))
    assert.are.equal("bad argument #1 to 'sse.new' (an integer >= 1 expected, got 0)",
      blamed(function() local p = require("tide.sse").new(0); return p end))
    assert.are.equal("bad argument #1 to 'Signature' (string or table expected, got number)",
      blamed(function() local s = tide.Signature(5); return s end))
    assert.are.equal("bad argument #3 to 'append' (\"input\" or \"output\" expected, got \"side\")",
      blamed(function() local s = sig:append("x", "str", "side"); return s end))
  end)

  it("an Anthropic or Gemini request of system messages only, before any I/O", function()
    local server = mockllm.start()
    for _, model in ipairs{"anthropic/claude-3-5-haiku", "gemini/gemini-2.5-flash"} do
      local lm = tide.LM(model, {api_key = "k", base_url = server.url, cache = false})
      local msg = blamed(function()
        local r = lm:call{messages = {{role = "system", content = "be brief"}}}
        return r
      end)
      assert.matches("^tide%.LM: %a+ needs a user message besides the system prompt$", msg)
    end
    assert.are.equal(0, server:stats().requests)
    server:stop()
  end)
end)

describe("callable tables wherever a function is taken", function()
  after_each(assert_clean)

  it("DummyLM answers, a Module's forward, tide.context", function()
    local lm = tide.DummyLM(callable(function(messages) return "echo " .. #messages end))
    assert.are.equal("echo 1", lm("hi"))
    local M = tide.Module{forward = callable(function(_, x) return x * 2 end)}
    assert.are.equal(42, M()(21))
    assert.are.equal("in context", tide.context({}, callable(function() return "in context" end)))
    assert.are.equal(3, tide.spawn(callable(function(a) return a end), 3):wait())
  end)
end)
