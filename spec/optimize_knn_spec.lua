-- tide.KNNFewShot against mockllm: /v1/embeddings (hashed bag-of-words vectors: texts
-- sharing words are near) for the search, and the prompt-dependent mock-task (the
-- word reversed, right only when the prompt holds demos) for the calls.
local tide = require "tide"
local cjson = require "cjson"
local task = require "support.optimize_task"
local cache_mod = require "tide.cache"

-- Phrases in pairs: a query sharing a word with a pair has that pair as its nearest.
local PHRASES = {"apple pie", "stone wall", "river bank", "apple tart", "stone path", "river boat"}

local function trainset()
  local out = {}
  for i, p in ipairs(PHRASES) do
    out[i] = tide.Example{word = p, answer = p:reverse()}:with_inputs("word")
  end
  return out
end

-- The text of an LM call's messages, and of its last user message alone.
local function texts(entry)
  local all = {}
  for _, m in ipairs(entry.messages) do all[#all + 1] = tostring(m.content) end
  return table.concat(all, "\n"), tostring(entry.messages[#entry.messages].content)
end

describe("tide.KNNFewShot", function()
  local env = task.env()   -- env.server, env.lm

  local function embedder(opts)
    local o = {api_key = "sk-spec-embeddings-key", base_url = env.server.url .. "/v1",
      cache = cache_mod.new{memory = 1000, dir = false}, num_retries = 0}
    for k, v in pairs(opts or {}) do o[k] = v end
    return tide.Embedder("openai/text-embedding-3-small", o)
  end

  local function paths()
    local count = {}
    for _, e in ipairs(env.server:get_json("/__log").requests) do
      count[e.path] = (count[e.path] or 0) + 1
    end
    return count
  end

  it("gives each call its k nearest examples as demos, calls in flight at once each their own", function()
    local lm = task.lm(env.server, {cache = false, headers = {["X-Mock-Scenario"] = "latency=100"}})
    local e = embedder()
    -- a module that waits before its predictor runs: demos set on a shared predictor
    -- would be the other call's by then
    local Slow = tide.Module{
      init = function(self) self.answer = tide.Predict("word -> answer", {lm = lm}) end,
      forward = function(self, args)
        tide.sleep(0.05)
        return self.answer{word = args.word}
      end,
    }
    local program = Slow()
    local compiled = tide.KNNFewShot{k = 2, embedder = e}:compile(program, {trainset = trainset()})
    assert.are.equal(0, env.server:stats().requests)          -- nothing embedded before a call
    assert.are.equal("kaol revir", compiled{word = "river loak"}.answer)   -- demos teach the task
    -- the two queries' vectors cached, so the calls below send only their chat requests
    e:embed{"word: apple cake", "word: stone bridge"}
    env.server:reset()
    local before = #lm.history
    local a, b = tide.gather(function() return compiled{word = "apple cake"} end,
      function() return compiled{word = "stone bridge"} end)
    local s = env.server:stats()
    assert.are.equal(2, s.requests)
    assert.are.equal(2, s.peak_in_flight)                     -- both calls in flight at once
    assert.are.same({["/v1/chat/completions"] = 2}, paths())
    assert.are.equal("ekac elppa", a.answer)
    assert.are.equal("egdirb enots", b.answer)
    assert.are.equal(before + 2, #lm.history)
    local seen = 0
    for i = before + 1, before + 2 do
      local all, question = texts(lm.history[i])
      if question:find("apple cake", 1, true) then
        seen = seen + 1
        assert.truthy(all:find("apple pie", 1, true))
        assert.truthy(all:find("apple tart", 1, true))
        assert.falsy(all:find("stone", 1, true))
        assert.falsy(all:find("river", 1, true))
      else
        assert.truthy(question:find("stone bridge", 1, true))
        seen = seen + 10
        assert.truthy(all:find("stone wall", 1, true))
        assert.truthy(all:find("stone path", 1, true))
        assert.falsy(all:find("apple", 1, true))
        assert.falsy(all:find("river", 1, true))
      end
    end
    assert.are.equal(11, seen)
    -- neither the program passed in nor the compiled program keeps a call's demos
    assert.are.same({}, program.answer.demos)
    assert.are.same({}, compiled.program.answer.demos)
  end)

  it("embeds the trainset once, on the first call, in parallel batches", function()
    local lm = task.lm(env.server)
    local e = embedder{cache = false, batch_size = 2,
      headers = {["X-Mock-Scenario"] = "latency=50"}}
    local compiled = tide.KNNFewShot{k = 1, embedder = e, trainset = trainset()}
      :compile(tide.Predict("word -> answer", {lm = lm}))
    assert.are.equal(0, env.server:stats().requests)
    -- two first calls at once: the trainset's 3 batches once, then each call's query
    tide.gather(function() return compiled{word = "apple"} end,
      function() return compiled{word = "stone"} end)
    local count = paths()
    assert.are.equal(5, count["/v1/embeddings"])
    assert.are.equal(3, env.server:stats().peak_in_flight)   -- the 3 batches together
    env.server:reset()
    compiled{word = "river"}
    assert.are.equal(1, paths()["/v1/embeddings"])            -- the query alone
  end)

  it("bootstraps each call's nearest examples when fewshot is given", function()
    local lm = task.lm(env.server, {cache = false})
    local opt = tide.KNNFewShot{k = 2, embedder = embedder(),
      fewshot = {metric = task.metric, max_bootstrapped_demos = 1, max_labeled_demos = 1}}
    local program = tide.ChainOfThought("word -> answer", {lm = lm})
    local compiled = opt:compile(program, {trainset = trainset()})
    local before = #lm.history
    local pred = compiled{word = "apple cake"}
    assert.are.equal("ekac elppa", pred.answer)
    -- the teacher over the 2 nearest, then the call itself
    assert.are.equal(3, paths()["/v1/chat/completions"])
    assert.are.equal(before + 3, #lm.history)
    local all, question = texts(lm.history[before + 3])
    assert.truthy(question:find("apple cake", 1, true))
    assert.truthy(all:find("reversed read", 1, true))        -- an augmented demo, reasoning kept
    assert.falsy(all:find("stone", 1, true))
    assert.are.same({}, compiled.program.demos)
  end)

  it("saves and loads its predictors' state under the program's names, demos empty", function()
    local lm = task.lm(env.server)
    local QA = tide.Module{
      init = function(self) self.answer = tide.ChainOfThought("word -> answer", {lm = lm}) end,
      forward = function(self, args) return self.answer{word = args.word} end,
    }
    local program = QA()
    program.answer.demos = {trainset()[1]}
    local compiled = tide.KNNFewShot{k = 1, embedder = embedder()}:compile(program, {trainset = trainset()})
    assert.are.equal("ekac elppa", compiled{word = "apple cake"}.answer)
    local path = os.tmpname()
    compiled:save(path)
    local f = assert(io.open(path))
    local st = cjson.decode(f:read("a"))
    f:close()
    assert.is_table(st["answer.predict"])
    assert.are.equal(0, #st["answer.predict"].demos)
    assert.are.same({"answer.predict"}, (function()
      local names = {}
      for _, np in ipairs(compiled:named_predictors()) do names[#names + 1] = np[1] end
      return names
    end)())
    -- the same file loads into the plain program and back into the compiled one
    local plain = QA():load(path)
    assert.are.same({}, plain.answer.demos)
    assert.are.equal(compiled, compiled:load(path))
    os.remove(path)
    assert.are.equal(1, #program.answer.demos)                -- the input keeps its demos
  end)

  it("refuses bad input before any call, naming the argument", function()
    local e = embedder()
    local lm = task.lm(env.server)
    local program = tide.Predict("word -> answer", {lm = lm})
    assert.has_error(function() tide.KNNFewShot{k = 0, embedder = e} end)
    assert.matches("opts.k", select(2, pcall(tide.KNNFewShot, {k = 0, embedder = e})))
    assert.matches("opts.k", select(2, pcall(tide.KNNFewShot, {embedder = e})))
    assert.matches("opts.embedder", select(2, pcall(tide.KNNFewShot, {k = 2})))
    assert.matches("opts.embedder", select(2, pcall(tide.KNNFewShot, {k = 2, embedder = "x"})))
    assert.matches("opts.trainset", select(2, pcall(tide.KNNFewShot, {k = 2, embedder = e, trainset = {}})))
    assert.matches("opts.metric", select(2, pcall(tide.KNNFewShot, {k = 2, embedder = e, fewshot = {}})))
    local opt = tide.KNNFewShot{k = 2, embedder = e}
    assert.matches("opts.trainset", select(2, pcall(opt.compile, opt, program)))
    assert.matches("opts.trainset", select(2, pcall(opt.compile, opt, program, {trainset = {}})))
    assert.matches("program", select(2, pcall(opt.compile, opt, 42, {trainset = trainset()})))
    local compiled = opt:compile(program, {trainset = trainset()})
    assert.matches("none of the fields", select(2, pcall(compiled, {other = "x"})))
    assert.matches("table of inputs", select(2, pcall(compiled, "apple")))
    assert.are.equal(0, env.server:stats().requests)
  end)
end)
