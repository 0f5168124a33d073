-- tide.ProgramOfThought against mockllm (its replies scripted with reply=), and the
-- sandbox that runs the generated Lua.
local tide = require "tide"
local mockllm = require "support.mockllm"
local sandbox = require "tide.modules.sandbox"

local function encode(text)
  return (text:gsub("[^%w_]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function reply(code)
  return "[[ ## reasoning ## ]]\nCompute it.\n\n[[ ## generated_code ## ]]\n```lua\n" .. code ..
    "\n```\n\n[[ ## answer ## ]]\n395\n\n[[ ## completed ## ]]"
end

local function text_of(entry)
  local parts = {}
  for _, m in ipairs(entry.messages) do parts[#parts + 1] = m.content end
  return table.concat(parts, "\n")
end

describe("the ProgramOfThought sandbox", function()
  it("gives FINAL's value, a returned value or the printed lines as the output", function()
    assert.are.equal('{"answer": 395}', sandbox.run("local x = 17 * 23 + 4\nFINAL({answer = x})"))
    assert.are.equal("6", sandbox.run("return 1 + 2 + 3"))
    assert.are.equal("a\t1\nb", sandbox.run("print('a', 1) print('b')"))
    assert.are.equal('"ELPPA"', sandbox.run("FINAL(('apple'):reverse():upper())"))
  end)

  it("has no io, os, require, load, debug or coroutine", function()
    for _, name in ipairs({"io", "os", "require", "load", "dofile", "debug", "coroutine",
                           "getmetatable", "collectgarbage"}) do
      local out, err = sandbox.run("return " .. name .. ".x")
      assert.is_nil(out)
      assert.matches("attempt to index a nil value %(global '" .. name .. "'%)", err)
    end
    assert.is_nil(sandbox.run("return string.dump"):match("function"))
  end)

  it("stops an endless loop at its budget, even inside pcall", function()
    local out, err = sandbox.run("while true do end", {budget = 100000})
    assert.is_nil(out)
    assert.are.equal("the code ran past its budget of 100000 instructions", err)
    out, err = sandbox.run("while true do pcall(function() while true do end end) end", {budget = 100000})
    assert.is_nil(out)
    assert.matches("budget", err)
  end)

  it("refuses a huge string through the string metatable, and restores it after", function()
    local out, err = sandbox.run("return ('x'):rep(1e9)")
    assert.is_nil(out)
    assert.matches("over the sandbox's", err)
    assert.are.equal("xxx", ("x"):rep(3))            -- the host's strings are as they were
    assert.is_function(("").dump)
    assert.is_nil(debug.gethook())
  end)

  it("refuses a finalizer, which would run after the budget is off", function()
    local out, err = sandbox.run("setmetatable({}, {__gc = function() while true do end end})")
    assert.is_nil(out)
    assert.matches("__gc is not allowed in the sandbox", err)
    assert.are.equal("1", sandbox.run("return #setmetatable({1}, {__index = {}})"))
  end)

  it("names a syntax error and code that gives nothing", function()
    local _, err = sandbox.run("local = 1")
    assert.matches("^syntax error: ", err)
    _, err = sandbox.run("local x = 1")
    assert.are.equal("the code neither called FINAL(...) nor returned nor printed a value", err)
  end)
end)

describe("tide.ProgramOfThought", function()
  local server = mockllm.serve()

  local function lm(text)
    return tide.LM("openai/gpt-4o-mini", {api_key = "sk-spec", base_url = server.url .. "/v1",
      cache = false, num_retries = 0, headers = {["X-Mock-Scenario"] = "reply=" .. encode(text)}})
  end

  it("writes code, runs it and answers from its output", function()
    local model = lm(reply("local x = 17 * 23 + 4\nFINAL({answer = x})"))
    local pot = tide.ProgramOfThought("question -> answer: int", {lm = model})
    local r = pot{question = "What is 17 * 23 + 4?"}
    assert.are.equal(395, r.answer)
    assert.are.equal(2, #model.history)
    local first = text_of(model.history[1])
    assert.truthy(first:find("Generating executable Lua code that programmatically computes the " ..
      "correct `generated_code`.", 1, true))
    assert.truthy(first:find("calling the preloaded function `FINAL()`", 1, true))
    local answer = text_of(model.history[2])
    assert.truthy(answer:find("[[ ## code_output ## ]]\n{\"answer\": 395}", 1, true))
    assert.truthy(answer:find("Given the final code `question`, `final_generated_code`, " ..
      "`code_output`, provide the final `answer`.", 1, true))
    local names = {}
    for i, np in ipairs(pot:named_predictors()) do names[i] = np[1] end
    assert.are.same({"code_generate.predict", "code_regenerate.predict", "generate_answer.predict"}, names)
  end)

  it("hands failing code and its error back, then gives up with a code error", function()
    local model = lm(reply("error('boom')"))
    local pot = tide.ProgramOfThought("question -> answer", {lm = model, max_iters = 3})
    local ok, err = pcall(pot, {question = "q"})
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "code"))
    assert.matches("still failed after 3 tries: code:1: boom", err.message)
    assert.are.equal("error('boom')", err.code)
    assert.are.equal(3, server:stats().requests)   -- generate, then regenerate twice
    local again = text_of(model.history[2])
    assert.truthy(again:find("[[ ## previous_code ## ]]\nerror('boom')", 1, true))
    assert.truthy(again:find("[[ ## error ## ]]\ncode:1: boom", 1, true))
  end)

  it("returns the variable a last assignment sets", function()
    local pot = tide.ProgramOfThought("question -> answer: int",
      {lm = lm(reply("local a = 390\nlocal result = a + 5"))})
    assert.are.equal(395, pot{question = "q"}.answer)
  end)
end)
