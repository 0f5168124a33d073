-- tide.LM against hostile answers from mockllm: a server that quotes the key
-- back (to every caller of a shared call, past a truncation point, JSON-escaped,
-- from a header the caller set), a byte-order mark before the JSON, absurd token
-- counts, a wrong base_url answering a web page; and n samples where the API has
-- no n.
local tide = require "tide"
local cjson = require "cjson"
local lm_server = require "support.lm_server"
local assert_clean = require "support.clean"
local history = require "tide.history"

local KEY = "sk-CANARY-hostile-4c1d9e7a2b"
local PROVIDERS = lm_server.PROVIDERS

local NO_ENV = function() return nil end

-- Every character of s written \u00XX, as JSON may write it.
local function escaped(s)
  return (s:gsub(".", function(c) return string.format("\\u%04x", c:byte()) end))
end

-- Fails when the key shows anywhere in v (plainly or JSON-escaped) and when
-- the global history holds it.
local function assert_no_key(v, key)
  key = key or KEY
  local text = type(v) == "string" and v or cjson.encode(v)
  assert.is_nil(text:find(key, 1, true), "the key is in: " .. text)
  assert.is_nil(text:lower():find(escaped(key), 1, true), "the escaped key is in: " .. text)
  local global = cjson.encode(history.entries)
  assert.is_nil(global:find(key, 1, true), "the key is in the global history")
end

local function assert_error_clean(err, key)
  assert.is_true(tide.is_error(err), tostring(err))
  assert_no_key(err.message, key)
  assert_no_key(err.body or "", key)
  assert_no_key(tostring(err), key)
end

describe("tide.LM against hostile servers", function()
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
    if opts.api_key == nil then opts.api_key = KEY end
    opts.base_url = opts.base_url or p.base(server)
    if opts.cache == nil then opts.cache = false end
    opts.headers = opts.headers or {}
    if scenario then opts.headers["X-Mock-Scenario"] = scenario end
    if opts.num_retries == nil then opts.num_retries = 0 end
    opts.env = NO_ENV
    return tide.LM(p.model, opts)
  end

  local function unique(tag) return tag .. "-" .. tostring(math.random(1, 1e9)) end

  -- The byte at which the key starts in the raw error body of route p, with no pad.
  local function key_offset(p)
    local lm = lm_for(p, "echo_key=1", {api_key = "sk-probe-offset-0000"})
    local _, err = pcall(lm.call, lm, "probe")
    -- the probe key is redacted too: find where the mark stands instead
    return assert(err.body:find("[redacted]", 1, true), err.body) - 1
  end

  describe("a server that quotes the key in its error", function()
    for _, p in ipairs(PROVIDERS) do
      it(p.name .. ": every caller of a shared call gets a redacted error, as does the history", function()
        local lm = lm_for(p, "echo_key=1;latency=50", {cache = true})
        local prompt = unique("shared")
        -- What each caller sees when its call raises (a shared error table changed
        -- later would hide what a caller printed or logged at that moment).
        local function seen(err)
          return {kind = err.kind, message = err.message, body = err.body, text = tostring(err)}
        end
        local errs = tide.map({1, 2, 3, 4, 5}, function()
          local ok, err = pcall(lm.call, lm, prompt)
          assert.is_false(ok)
          return seen(err)
        end)
        assert.are.equal(1, server:stats().requests)   -- one request, five callers
        assert.are.equal(5, #errs)
        for _, err in ipairs(errs) do
          assert.are.equal("auth", err.kind)
          assert.matches("Incorrect API key provided: %[redacted%]", err.message)
          assert_no_key(err.message)
          assert_no_key(err.body)
          assert_no_key(err.text)
        end
        assert.are.equal(5, #lm.history)
        assert_no_key(lm.history)
      end)

      it(p.name .. ": a key straddling the 200- and 2000-byte cuts leaves nothing of itself", function()
        local at = key_offset(p)
        -- the brief's pads, and the pads that put the key across each cut of the body
        for _, pad in ipairs{190, 1990, 200 - at - 5, 2000 - at - 5} do
          local lm = lm_for(p, "echo_key=1;echo_pad=" .. pad)
          local ok, err = pcall(lm.call, lm, "straddle " .. pad)
          assert.is_false(ok)
          assert_error_clean(err)
          -- nor its start: the prefix cut off from the rest
          assert.is_nil(err.body:find("sk-", 1, true), "pad " .. pad .. ": " .. err.body)
          assert.is_nil(err.message:find("sk-", 1, true), "pad " .. pad .. ": " .. err.message)
        end
        assert_no_key(history.entries)
      end)

      it(p.name .. ": a key written \\u00XX-escaped in the JSON is redacted", function()
        local lm = lm_for(p, "echo_key=escaped")
        local ok, err = pcall(lm.call, lm, "escaped")
        assert.is_false(ok)
        assert.are.equal("auth", err.kind)
        assert.matches("%[redacted%]", err.body)
        assert_error_clean(err)
        assert_no_key(lm.history)
      end)
    end
  end)

  describe("keys the caller passed in headers or secrets", function()
    local cases = {
      {"Authorization: Bearer", {Authorization = "Bearer " .. KEY}},
      {"authorization (lower case)", {authorization = "Bearer " .. KEY}},
      {"api-key", {["api-key"] = KEY}},
      {"X-Api-Key (mixed case)", {["X-Api-Key"] = KEY}},
      {"x-goog-api-key", {["x-goog-api-key"] = KEY}},
    }
    for _, case in ipairs(cases) do
      it("redacts a key passed as " .. case[1], function()
        local headers = {["X-Mock-Scenario"] = "echo_key=1"}
        for k, v in pairs(case[2]) do headers[k] = v end
        local lm = tide.LM("openai_compatible/m", {base_url = server.url .. "/v1", headers = headers,
          cache = false, num_retries = 0, env = NO_ENV})
        local ok, err = pcall(lm.call, lm, "header key")
        assert.is_false(ok)
        assert.matches("Incorrect API key provided: %[redacted%]", err.message)
        assert_error_clean(err)
        assert_no_key(lm.history)
        for _, v in pairs(lm) do assert_no_key(type(v) == "table" and v or tostring(v)) end
      end)
    end

    it("redacts the caller's `secrets`, kept off the LM object", function()
      local secret = "internal-tenant-token-77e1"
      -- mockllm's 404 quotes the path back: here it holds the secret
      local lm = tide.LM("openai_compatible/m", {base_url = server.url .. "/" .. secret,
        secrets = {secret}, cache = false, num_retries = 0, env = NO_ENV})
      local ok, err = pcall(lm.call, lm, "secret in the path")
      assert.is_false(ok)
      assert.are.equal("not_found", err.kind)
      assert.matches("%[redacted%]", err.message)
      assert_error_clean(err, secret)
      assert_no_key(lm.history, secret)
      local seen = {}
      local function walk(v)
        if type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do walk(k); walk(x) end
        elseif type(v) == "string" then
          assert.is_nil(v:find(secret, 1, true), "the secret is on the LM")
        end
      end
      walk(lm)
    end)

    it("refuses secrets that are not strings", function()
      assert.has_error(function()
        tide.LM("openai_compatible/m", {base_url = "http://h/v1", secrets = {42}, env = NO_ENV})
      end, "bad argument 'opts.secrets[1]' to 'LM' (string expected, got number)")
    end)
  end)

  describe("a JSON body that starts with a byte-order mark", function()
    for _, p in ipairs(PROVIDERS) do
      it(p.name .. ": is read, the first time", function()
        local lm = lm_for(p, "bom=1", {num_retries = 2})
        local r = lm:call("with a BOM")
        assert.matches("with a BOM", r.text)
        assert.are.equal(1, r.attempts)
        assert.are.equal(1, server:stats().requests)
      end)
    end
  end)

  describe("token counts that are not counts", function()
    for _, p in ipairs(PROVIDERS) do
      for _, kind in ipairs{"huge", "negative", "float", "string"} do
        it(p.name .. ": usage=" .. kind .. " is dropped with a note, never stored or subtracted", function()
          local price = {input = 1, output = 1}
          lm_for(p, nil, {price = price}):call(unique("a real count first"))
          local before = tide.usage()
          assert.is_true(before.total > 0 and before.cost > 0)
          local lm = lm_for(p, "usage=" .. kind, {cache = true, price = price})
          local prompt = unique("absurd counts " .. kind)
          local r = lm:call(prompt)   -- the disk cache wrote it: no "Cannot serialise number"
          for _, field in ipairs{"input", "output", "total"} do
            assert.are.equal("integer", math.type(r.usage[field]), field)
            assert.are.equal(0, r.usage[field], field)
          end
          assert.matches("counted as 0: input, output", r.usage.note, 1, true)
          assert.are.equal(0, r.cost)
          assert.are.same({input = 0, output = 0, total = 0, calls = 1, cache_hits = 0, cost = 0}, lm.usage)
          local after = tide.usage()
          assert.are.equal(before.total, after.total)   -- not lowered, not infinite
          assert.are.equal(before.cost, after.cost)
          assert.are.equal(0, lm.history[1].usage.input)
          tide.configure{cache = {dir = cache_dir}}   -- a fresh memory: read back from the disk
          local again = lm:call(prompt)
          assert.is_true(again.cached)
          assert.are.equal(r.text, again.text)
          assert.are.equal(2, server:stats().requests)
        end)
      end
    end

    for _, p in ipairs(PROVIDERS) do
      it(p.name .. ": a stream's absurd counts are dropped the same way", function()
        local lm = lm_for(p, "usage=huge", {price = {input = 1, output = 1}})
        local it, final = lm:stream("stream absurd counts")
        for _ in it do end
        assert.are.equal(0, final.usage.input)
        assert.are.equal(0, final.usage.total)
        assert.matches("counted as 0: input, output", final.usage.note, 1, true)
        assert.are.equal(0, final.cost)
        assert.are.equal(0, lm.usage.cost)
      end)
    end

    it("keeps max_cost working when a server reports negative counts", function()
      local p = PROVIDERS[1]
      local lm = lm_for(p, nil, {price = {input = 1e6, output = 1e6}, max_cost = 1})
      local liar = lm_for(p, "usage=negative", {price = {input = 1e6, output = 1e6}, max_cost = 1})
      -- the liar's calls cannot lower its spending below zero...
      liar:call("negative one")
      liar:call("negative two")
      assert.are.equal(0, liar.usage.cost)
      -- ...so one real call still spends the budget, and the next is refused
      lm:call("a real call")
      local ok, err = pcall(lm.call, lm, "over budget")
      assert.is_false(ok)
      assert.are.equal("budget", err.kind)
      assert.are.equal(3, server:stats().requests)
    end)
  end)

  describe("a wrong base_url", function()
    it("answering a 404 web page: the error names the URL and says to check base_url and /v1", function()
      local lm = lm_for(PROVIDERS[1], "status=404;fault=html", {base_url = server.url})
      local ok, err = pcall(lm.call, lm, "where am I")
      assert.is_false(ok)
      assert.are.equal("not_found", err.kind)
      assert.are.equal(server.url .. "/chat/completions", err.url)
      assert.matches(server.url .. "/chat/completions: check base_url", err.message, 1, true)
      assert.matches("usually ends in /v1", err.message, 1, true)
      assert.are.equal(1, server:stats().requests)
      -- with /v1 already there, the advice about /v1 is left out
      lm = lm_for(PROVIDERS[1], "status=404;fault=html")
      ok, err = pcall(lm.call, lm, "where am I")
      assert.matches("check base_url", err.message, 1, true)
      assert.is_nil(err.message:find("/v1,", 1, true))
      -- a versioned base for Anthropic is the mistake the other way round
      lm = lm_for(PROVIDERS[2], "status=404;fault=html", {base_url = server.url .. "/v1"})
      ok, err = pcall(lm.call, lm, "where am I")
      assert.matches(server.url .. "/v1/v1/messages: check base_url", err.message, 1, true)
      assert.matches("anthropic's base_url has no version", err.message, 1, true)
    end)

    it("a JSON 404 (a model the server does not have) gets no base_url advice", function()
      local lm = lm_for(PROVIDERS[1], "status=404")
      local ok, err = pcall(lm.call, lm, "no such model")
      assert.is_false(ok)
      assert.are.equal("not_found", err.kind)
      assert.is_nil(err.message:find("check base_url", 1, true))
    end)

    it("without a scheme is refused at tide.LM", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(tide.LM, "openai_compatible/m", {base_url = "localhost:8000/v1", env = NO_ENV})
      assert.is_false(ok)
      assert.are.equal(string.format("spec/lm_hostile_spec.lua:%d: bad argument 'opts.base_url' to 'LM' "
        .. "('localhost:8000/v1' is not an http:// or https:// URL: write http://localhost:8000/v1 "
        .. "(or https://))", line), err)
      assert.has_error(function()
        tide.LM("openai/m", {base_url = "ftp://h/v1", api_key = "k"})
      end, "bad argument 'opts.base_url' to 'LM' ('ftp://h/v1' is not an http:// or https:// URL)")
      assert.has_error(function()
        tide.LM("openai/m", {api_key = "k", env = function(name)
          return name == "OPENAI_BASE_URL" and "127.0.0.1:9/v1" or nil end})
      end, "bad argument 'OPENAI_BASE_URL' to 'LM' ('127.0.0.1:9/v1' is not an http:// or https:// "
        .. "URL: write http://127.0.0.1:9/v1 (or https://))")
    end)
  end)

  describe("n samples from Anthropic, which has no n", function()
    it("makes n calls at once and returns every text", function()
      local lm = lm_for(PROVIDERS[2], "latency=30", {cache = true, price = {input = 1, output = 1}})
      local prompt = unique("three samples")
      local r = lm:call{prompt = prompt, n = 3}
      assert.are.equal(3, #r.texts)
      for _, text in ipairs(r.texts) do assert.matches("three samples", text) end
      assert.are.equal(r.texts[1], r.text)
      assert.are.equal(3, server:stats().requests)   -- the in-flight sharing did not merge them
      assert.are.equal(3 * lm.history[1].usage.total, r.usage.total)
      assert.near((r.usage.input + r.usage.output) / 1e6, r.cost, 1e-12)
      assert.are.equal(3, lm.usage.calls)
      -- the same n again: every sample from the cache
      local again = lm:call{prompt = prompt, n = 3}
      assert.is_true(again.cached)
      assert.are.same(r.texts, again.texts)
      assert.are.equal(3, server:stats().requests)
      -- and the first sample is the call n = 1 makes
      assert.is_true(lm:call(prompt).cached)
    end)

    it("sends n to OpenAI as it is: one request", function()
      local lm = lm_for(PROVIDERS[1])
      local r = lm:call{prompt = "two choices", n = 2}
      assert.are.equal(1, server:stats().requests)
      assert.is_true(#r.texts >= 1)
      local log = server:get_json("/__log").requests
      assert.are.equal(1, #log)
    end)

    it("refuses an n that is not a positive integer", function()
      local lm = lm_for(PROVIDERS[2])
      assert.has_error(function() lm:call{prompt = "x", n = 0} end,
        "bad argument 'n' to 'call' (an integer >= 1 and <= 128 expected, got 0)")
      assert.has_error(function() lm:call{prompt = "x", n = 2.5} end,
        "bad argument 'n' to 'call' (an integer >= 1 and <= 128 expected, got 2.5)")
      assert.are.equal(0, server:stats().requests)
    end)
  end)
end)
