local tide = require "tide"
local cjson = require "cjson"
local lm_server = require "support.lm_server"
local assert_clean = require "support.clean"

local CANARY = "sk-CANARY-7f3a9c1e5b"
local PROVIDERS = lm_server.PROVIDERS

describe("tide.LM", function()
  local env, server, cache_dir
  setup(function()
    env = lm_server.start()
    server, cache_dir = env.server, env.cache_dir
  end)
  teardown(function() env:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function lm_for(p, scenario, opts)
    opts = opts or {}
    opts.api_key = opts.api_key or CANARY
    opts.base_url = p.base(server)
    opts.cache = opts.cache or false
    if scenario then opts.headers = {["X-Mock-Scenario"] = scenario} end
    if opts.num_retries == nil then opts.num_retries = 2 end
    return tide.LM(p.model, opts)
  end

  local function unique(tag) return tag .. "-" .. tostring(math.random(1, 1e9)) end

  for _, p in ipairs(PROVIDERS) do
    describe(p.name, function()
      it("answers with text, a finish reason and integer usage", function()
        local lm = lm_for(p)
        local text = lm("Name three colours.")
        assert.matches("Name three colours", text)
        local r = lm:call{messages = {{role = "system", content = "Be brief."},
                                      {role = "user", content = "hi"}}, temperature = 0}
        assert.is_string(r.text)
        assert.are.equal("stop", r.finish_reason)
        assert.are.equal("integer", math.type(r.usage.input))
        assert.are.equal(r.usage.input + r.usage.output, r.usage.total)
        assert.is_false(r.cached)
        assert.are.equal(2, lm.usage.calls)
        assert.are.equal(2, #lm.history)
        assert.are.equal(2, server:stats().requests)
      end)

      it("retries a 429 after the server's delay, then succeeds #slow", function()
        local key = unique(p.name .. "-429")
        local lm = lm_for(p, "fail_first=2;status=429;retry_after=1;key=" .. key, {num_retries = 3})
        local r = lm:call("retry me")
        assert.are.equal(3, r.attempts)
        local log = server:get_json("/__log").requests
        local times = {}
        for _, e in ipairs(log) do
          if e.key == key then times[#times + 1] = e.t end
        end
        assert.are.equal(3, #times)
        assert.is_true(times[2] - times[1] >= 1.0, "first retry came too early")
        assert.is_true(times[3] - times[2] >= 1.0, "second retry came too early")
      end)

      it("stops retrying at the deadline, whatever num_retries allows", function()
        local lm = lm_for(p, "status=503;retry_after=1", {num_retries = 10, deadline = 0.5})
        local ok, err = pcall(lm.call, lm, "deadline")
        assert.is_false(ok)
        assert.are.equal("server", err.kind)
        assert.are.equal(1, server:stats().requests)   -- a 1 s wait would pass the deadline
      end)

      it("gives up after num_retries with a rate_limit error", function()
        local lm = lm_for(p, "status=429;retry_after=0", {num_retries = 2})
        local ok, err = pcall(lm.call, lm, "always limited")
        assert.is_false(ok)
        assert.are.equal("rate_limit", err.kind)
        assert.are.equal(3, err.attempts)
        assert.are.equal(3, server:stats().requests)
      end)

      for _, status in ipairs({500, 503, 529}) do
        it("retries a " .. status .. " as a server error", function()
          local lm = lm_for(p, "status=" .. status, {num_retries = 1})
          local ok, err = pcall(lm.call, lm, "server trouble")
          assert.is_false(ok)
          assert.are.equal("server", err.kind)
          assert.are.equal(status, err.status)
          assert.are.equal(2, server:stats().requests)
        end)
      end

      for status, kind in pairs({[400] = "bad_request", [401] = "auth", [403] = "auth",
                                 [404] = "not_found"}) do
        it("does not retry a " .. status .. " (" .. kind .. ")", function()
          local lm = lm_for(p, "status=" .. status)
          local ok, err = pcall(lm.call, lm, "client trouble")
          assert.is_false(ok)
          assert.are.equal(kind, err.kind)
          assert.are.equal(1, server:stats().requests)
          assert.is_nil(tostring(err):find(CANARY, 1, true))
        end)
      end

      it("classifies a context-window error", function()
        local lm = lm_for(p, "error=context_window")
        local ok, err = pcall(lm.call, lm, "too long")
        assert.is_false(ok)
        assert.are.equal("context_window", err.kind)
      end)

      it("times out, retries, and reports a timeout", function()
        local lm = lm_for(p, "fault=hang", {timeout = 0.2, num_retries = 1})
        local ok, err = pcall(lm.call, lm, "slow")
        assert.is_false(ok)
        assert.are.equal("timeout", err.kind)
        assert.are.equal(2, err.attempts)
      end)

      it("takes a per-call timeout over the LM's", function()
        local lm = lm_for(p, "fault=hang", {timeout = 30, num_retries = 0})
        local ok, err = pcall(lm.call, lm, {prompt = "slow", timeout = 0.1})
        assert.is_false(ok)
        assert.are.equal("timeout", err.kind)
      end)

      it("reports a dropped connection as a transport error", function()
        local lm = lm_for(p, "fault=drop", {num_retries = 0})
        local ok, err = pcall(lm.call, lm, "dropped")
        assert.is_false(ok)
        assert.are.equal("transport", err.kind)
        assert.are.equal("protocol", err.cause)
      end)

      it("reports a stream's dropped connection the same way, after its retries", function()
        local lm = lm_for(p, "fault=drop", {num_retries = 1})
        local ok, err = pcall(function() for _ in lm:stream("dropped") do end end)
        assert.is_false(ok)
        assert.are.equal("transport", err.kind)
        assert.are.equal("protocol", err.cause)
        assert.are.equal(2, err.attempts)
      end)

      it("reports malformed JSON as a parse error #slow", function()
        local lm = lm_for(p, "fault=malformed")
        local ok, err = pcall(lm.call, lm, "garbled")
        assert.is_false(ok)
        assert.are.equal("parse", err.kind)
      end)

      it("reports a blocked answer as content_filter and no text as empty", function()
        local ok, err = pcall(lm_for(p, "fault=blocked").call, lm_for(p, "fault=blocked"), "blocked")
        assert.is_false(ok)
        assert.are.equal("content_filter", err.kind)
        local lm = lm_for(p, "fault=no_text")
        ok, err = pcall(lm.call, lm, "nothing")
        assert.is_false(ok)
        assert.are.equal("empty", err.kind)
      end)

      it("streams the answer in pieces that add up to the whole, keeping usage", function()
        local lm = lm_for(p)
        local whole = lm("stream this answer please")
        local pieces = {}
        local it, final = lm:stream("stream this answer please")
        for piece in it do pieces[#pieces + 1] = piece end
        assert.is_true(#pieces > 1)
        assert.are.equal(whole, table.concat(pieces))
        assert.are.equal(whole, final.text)
        assert.is_true(final.usage.total > 0)
        assert.are.equal("stop", final.finish_reason)
        assert.are.equal(whole, lm.history[#lm.history].response)
      end)

      it("turns a mid-stream error event into a typed error", function()
        local lm = lm_for(p, "fault=stream_error")
        local ok, err = pcall(function()
          for _ in lm:stream("break mid-way") do end
        end)
        assert.is_false(ok)
        assert.is_true(tide.is_error(err))
        assert.is_true(err.kind == "server" or err.kind == "rate_limit")
      end)
    end)
  end

  describe("the parallel-request gate", function()
    it("holds 200 calls to at most max_parallel_requests in flight, all succeeding", function()
      local lm = lm_for(PROVIDERS[1], "latency=20", {max_parallel_requests = 8})
      local prompts = {}
      for i = 1, 200 do prompts[i] = "gate " .. i end
      local answers = tide.map(prompts, function(q) return lm(q) end)
      assert.are.equal(200, #answers)
      local s = server:stats()
      assert.are.equal(200, s.requests)
      assert.are.equal(8, s.peak_in_flight)
    end)
  end)

  describe("rate buckets", function()
    it("rpm spaces the requests the server sees #slow", function()
      local lm = lm_for(PROVIDERS[1], nil, {rpm = 120})   -- 2 per second, bursts of 2
      tide.map({"r1", "r2", "r3", "r4"}, function(q) return lm(q) end)
      local log = server:get_json("/__log").requests
      assert.are.equal(4, #log)
      assert.is_true(log[4].t - log[1].t >= 0.9, "4 calls at 2/s took less than a second")
    end)
  end)

  describe("the cache", function()
    it("serves a repeated call without a request, with zero usage, and marks the hit", function()
      local lm = lm_for(PROVIDERS[1], nil, {cache = true})
      local prompt = unique("cache me")
      local first = lm:call(prompt)
      local second = lm:call(prompt)
      assert.are.equal(first.text, second.text)
      assert.is_true(second.cached)
      assert.are.same({input = 0, output = 0, total = 0}, second.usage)
      assert.are.equal(1, server:stats().requests)
      assert.are.equal(1, lm.usage.cache_hits)
    end)

    it("survives a restart on disk, in private files that hold no key", function()
      local prompt = unique("on disk")
      lm_for(PROVIDERS[1], nil, {cache = true}):call(prompt)
      tide.configure{cache = {dir = cache_dir}}   -- a fresh memory: only the disk is left
      local again = lm_for(PROVIDERS[1], nil, {cache = true}):call(prompt)
      assert.is_true(again.cached)
      assert.are.equal(1, server:stats().requests)
      local p = io.popen("find " .. cache_dir .. " -type f -name '*.json' -exec stat -c '%a' {} + | sort -u")
      assert.are.equal("600", p:read("a"):gsub("%s+$", ""))
      p:close()
      p = io.popen("stat -c '%a' " .. cache_dir .. "/*/ | sort -u")
      assert.are.equal("700", p:read("a"):gsub("%s+$", ""))
      p:close()
      p = io.popen("grep -rl " .. CANARY .. " " .. cache_dir)
      assert.are.equal("", p:read("a"))
      p:close()
    end)

    it("rollout_id and cache = false force a fresh sample", function()
      local lm = lm_for(PROVIDERS[1], nil, {cache = true})
      local prompt = unique("fresh")
      lm:call(prompt)
      assert.is_false(lm:call{prompt = prompt, rollout_id = 1}.cached)
      assert.is_false(lm:call{prompt = prompt, cache = false}.cached)
      assert.are.equal(3, server:stats().requests)
    end)

    it("makes concurrent identical calls once", function()
      local lm = lm_for(PROVIDERS[1], "latency=50", {cache = true})
      local prompt = unique("together")
      local r = tide.map({1, 2, 3, 4, 5}, function() return lm(prompt) end)
      assert.are.equal(5, #r)
      assert.are.equal(1, server:stats().requests)
    end)
  end)

  describe("usage, cost and history", function()
    it("adds up usage and cost, and stops at max_cost", function()
      local lm = lm_for(PROVIDERS[1], nil, {price = {input = 1e6, output = 1e6}, max_cost = 1})
      local r = lm:call("a priced call")
      assert.are.equal(r.usage.total * 1.0, r.cost)
      assert.are.equal(r.cost, lm.usage.cost)
      local ok, err = pcall(lm.call, lm, "over budget")
      assert.is_false(ok)
      assert.are.equal("budget", err.kind)
      assert.are.equal(1, server:stats().requests)
    end)

    it("inspect_history prints the calls readably, without the key", function()
      local lm = lm_for(PROVIDERS[2])
      lm:call{messages = {{role = "system", content = "You are terse."},
                          {role = "user", content = "history question"}}}
      local out = {}
      tide.inspect_history(1, function(s) out[#out + 1] = s end)
      local text = table.concat(out)
      assert.matches("anthropic/claude%-3%-5%-haiku", text)
      assert.matches("system:\n    You are terse%.", text)
      assert.matches("history question", text)
      assert.matches("response %(stop%)", text)
      assert.is_nil(text:find(CANARY, 1, true))
      assert.is_nil(cjson.encode(lm.history):find(CANARY, 1, true))
      assert.is_nil(tostring(lm):find(CANARY, 1, true))
    end)
  end)

  describe("configuration errors", function()
    it("names the variable when a key is missing", function()
      assert.has_error(function()
        tide.LM("openai/gpt-4o-mini", {env = function() return nil end})
      end, "tide.LM: no API key for openai: set OPENAI_API_KEY or pass api_key")
    end)

    it("refuses out-of-range options, naming the option and its range, at the caller's line", function()
      local cases = {
        {{timeout = 0}, "'opts.timeout'", "a number > 0 and <= 86400 expected, got 0"},
        {{timeout = 1e300}, "'opts.timeout'", "a number > 0 and <= 86400 expected, got 1e+300"},
        {{timeout = 0 / 0}, "'opts.timeout'", "expected, got nan"},
        {{timeout = "5"}, "'opts.timeout'", "expected, got string"},
        {{deadline = -1}, "'opts.deadline'", "a number > 0 and <= 86400 expected, got -1"},
        {{num_retries = 0 / 0}, "'opts.num_retries'", "an integer >= 0 and <= 100 expected, got nan"},
        {{num_retries = 1.5}, "'opts.num_retries'", "an integer >= 0 and <= 100 expected, got 1.5"},
        {{num_retries = 1000}, "'opts.num_retries'", "an integer >= 0 and <= 100 expected, got 1000"},
        {{max_parallel_requests = 0}, "'opts.max_parallel_requests'", "an integer >= 1 and <= 1000000"},
        {{max_parallel_requests = math.huge}, "'opts.max_parallel_requests'", "got inf"},
        {{rpm = -1}, "'opts.rpm'", "a number >= 0 expected, got -1"},
        {{tpm = math.huge}, "'opts.tpm'", "a number >= 0 expected, got inf"},
        {{max_cost = -0.5}, "'opts.max_cost'", "a number >= 0 expected, got -0.5"},
        {{max_body = 1e300}, "'opts.max_body'", "an integer >= 1 and <= 1099511627776 expected, got 1e+300"},
        {{max_body = 0}, "'opts.max_body'", "got 0"},
        {{price = {input = -1}}, "'opts.price.input'", "a number >= 0 expected, got -1"},
        {{base_url = "http://h/v1\0evil"}, "'opts.base_url'", "a NUL, CR or LF byte in it"},
        {{headers = {["X-Team"] = "a\0b"}}, "'opts.headers['X-Team']'", "a NUL, CR or LF byte in it"},
        {{headers = {["X-Team"] = "a\r\nX-Injected: 1"}}, "'opts.headers['X-Team']'", "a NUL, CR or LF"},
        {{api_key = "sk-\0"}, "'opts.api_key'", "a NUL, CR or LF byte in it"},
      }
      for _, case in ipairs(cases) do
        local opts = case[1]
        if opts.api_key == nil then opts.api_key = "k" end
        if opts.base_url == nil then opts.base_url = "http://127.0.0.1:9/v1" end
        local line = debug.getinfo(1, "l").currentline + 1
        local _, err = pcall(tide.LM, "openai/x", opts)
        local want = string.format("spec/lm_spec.lua:%d: bad argument %s to 'LM' (", line, case[2])
        assert.are.equal(want, err:sub(1, #want))
        assert.matches(case[3], err, 1, true)
      end
      -- the limits themselves are valid
      local lm = tide.LM("openai/x", {api_key = "k", timeout = 86400, num_retries = 100, max_body = 1 << 40,
        max_parallel_requests = 1, rpm = 0, deadline = 0.5, max_cost = 0})
      assert.are.equal(100, lm.num_retries)
      assert.are.equal("integer", math.type(lm.num_retries))
    end)

    it("blames the caller's line for a bad call", function()
      local lm = lm_for(PROVIDERS[1])
      local line = debug.getinfo(1, "l").currentline + 1
      local _, err = pcall(lm.call, lm, {prompt = "x", timeout = -1})
      assert.are.equal(string.format("spec/lm_spec.lua:%d: bad argument 'timeout' to 'call' "
        .. "(a number > 0 and <= 86400 expected, got -1)", line), err)
      line = debug.getinfo(1, "l").currentline + 1
      _, err = pcall(lm, 42)
      assert.are.equal(string.format("spec/lm_spec.lua:%d: bad argument #1 to 'call' "
        .. "(a prompt string or a table expected, got number)", line), err)
      line = debug.getinfo(1, "l").currentline + 1
      _, err = pcall(tide.LM, "openai/x", {env = function() return nil end})
      assert.are.equal(string.format("spec/lm_spec.lua:%d: tide.LM: no API key for openai: set "
        .. "OPENAI_API_KEY or pass api_key", line), err)
      assert.are.equal(0, server:stats().requests)
    end)

    it("raises at once on bad arguments", function()
      assert.has_error(function() tide.LM(42) end, "bad argument #1 to 'LM' (string expected, got number)")
      assert.has_error(function() tide.LM("openai/x", {api_key = "k", num_retries = -1}) end)
      local lm = lm_for(PROVIDERS[1])
      assert.has_error(function() lm:call{} end)
      assert.has_error(function() lm(42) end)
    end)
  end)
end)

describe("tide.DummyLM", function()
  after_each(assert_clean)

  it("answers from a list, in order, with usage and history", function()
    local lm = tide.DummyLM{"first", "second"}
    assert.are.equal("first", lm("a"))
    assert.are.equal("second", lm("b"))
    assert.has_error(function() lm("c") end)
    assert.are.equal(3, #lm.history)
    assert.is_true(lm.usage.total > 0)
  end)

  it("answers from a table keyed by prompt text, or from a function", function()
    local keyed = tide.DummyLM{["capital of France"] = "Paris"}
    assert.are.equal("Paris", keyed("What is the capital of France?"))
    local fn = tide.DummyLM(function(messages) return "echo: " .. messages[#messages].content end)
    assert.are.equal("echo: hi", fn("hi"))
    local pieces = {}
    for piece in fn:stream("streamed") do pieces[#pieces + 1] = piece end
    assert.are.same({"echo: streamed"}, pieces)
  end)
end)
