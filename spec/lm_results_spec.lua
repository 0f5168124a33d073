--- What an LM call returns, over mockllm: raw with JSON's integers and nulls,
-- the answer's id and the request id, cache hits that keep raw (attempts 0),
-- and streams that are cached like calls.  Requests are counted with /__stats.
local tide = require "tide"
local cjson = require "cjson"
local lm_server = require "support.lm_server"
local assert_clean = require "support.clean"

local PROVIDERS = {
  {name = "openai", model = "openai/gpt-4o-mini", base = function(s) return s.url .. "/v1" end,
   id = "^chatcmpl%-", request_id = "^req_%x+$", thinking = "openai/o3",
   count = function(raw) return raw.usage.prompt_tokens end},
  {name = "anthropic", model = "anthropic/claude-3-5-haiku", base = function(s) return s.url end,
   id = "^msg_", request_id = "^req_%w+$", count = function(raw) return raw.usage.input_tokens end},
  {name = "gemini", model = "gemini/gemini-2.0-flash", base = function(s) return s.url end,
   id = "^%w+$", thinking = "gemini/gemini-2.5-flash",
   count = function(raw) return raw.usageMetadata.promptTokenCount end},
}

describe("LM results", function()
  local env, server, cache_dir
  setup(function()
    env = lm_server.start()
    server, cache_dir = env.server, env.cache_dir
  end)
  teardown(function() env:stop() end)
  before_each(function()
    server:reset()
    tide.configure{cache = {dir = cache_dir}}   -- a fresh memory over the same disk
  end)
  after_each(assert_clean)

  local function lm_for(p, opts) return lm_server.lm_for(server, p, nil, opts) end

  local function unique(tag) return tag .. "-" .. tostring(math.random(1, 1e9)) end

  --- Reads a whole stream → its pieces and its final table.
  local function drain(lm, req)
    local pieces = {}
    local it, final, s, closer = lm:stream(req)
    for piece in it, final, s, closer do pieces[#pieces + 1] = piece end
    return pieces, final
  end

  for _, p in ipairs(PROVIDERS) do
    describe(p.name, function()
      it("raw keeps JSON's integers as integers and null as tide.json.null", function()
        local r = lm_for(p):call("count my tokens")
        assert.are.equal("integer", math.type(p.count(r.raw)))
        assert.are.equal(r.usage.input, p.count(r.raw))
        if p.name == "openai" then
          assert.are.equal(tide.json.null, r.raw.choices[1].logprobs)
          assert.are.equal("integer", math.type(r.raw.created))
        elseif p.name == "anthropic" then
          assert.are.equal(tide.json.null, r.raw.stop_sequence)
        end
      end)

      it("carries the response id and the request id header, and keeps both in history", function()
        local lm = lm_for(p)
        local r = lm:call("which answer is this")
        assert.matches(p.id, r.id)
        assert.are.equal(r.raw.id or r.raw.responseId, r.id)
        local entry = lm.history[#lm.history]
        assert.are.equal(r.id, entry.id)
        if p.request_id then
          assert.matches(p.request_id, r.request_id)
          assert.are.equal(r.request_id, entry.request_id)
          local out = {}
          lm:inspect_history(1, function(s) out[#out + 1] = s end)
          assert.matches("request " .. r.request_id, table.concat(out), 1, true)
        else
          assert.is_nil(r.request_id)   -- the Gemini API sends no request id header
        end
        -- a stream's final has them too, and each request its own request id
        local _, final = drain(lm, "which stream is this")
        assert.matches(p.id, final.id)
        assert.are_not.equal(r.id, final.id)
        if p.request_id then
          assert.matches(p.request_id, final.request_id)
          assert.are_not.equal(r.request_id, final.request_id)
        end
      end)

      if p.request_id then
        it("a failed call's error and history entry carry the request id", function()
          local lm = lm_for(p, {headers = {["X-Mock-Scenario"] = "status=500"}})
          local ok, err = pcall(lm.call, lm, "fail with an id")
          assert.is_false(ok)
          assert.are.equal("server", err.kind)
          assert.matches(p.request_id, err.request_id)
          assert.are.equal(err.request_id, lm.history[#lm.history].request_id)
          -- a stream's error too
          ok, err = pcall(drain, lm, "fail a stream with an id")
          assert.is_false(ok)
          assert.matches(p.request_id, err.request_id)
        end)
      end

      it("usage.cached is the part of input read from the prompt cache", function()
        local lm = lm_for(p, {headers = {["X-Mock-Scenario"] = "cached=3"}})
        local r = lm:call("some words that make a prompt of a few tokens")
        assert.are.equal(3, r.usage.cached)
        assert.are.equal("integer", math.type(r.usage.cached))
        assert.is_true(r.usage.input >= 3)
        assert.are.equal(r.usage.input + r.usage.output, r.usage.total)
        local _, final = drain(lm, "some words that make a prompt of a few tokens")
        assert.are.equal(3, final.usage.cached)
        assert.are.equal(6, lm.usage.cached)   -- the LM's totals add them up
      end)

      if p.thinking then
        it("usage.reasoning is the part of output a thinking model spent thinking", function()
          local lm = tide.LM(p.thinking, {api_key = "k", base_url = p.base(server), cache = false})
          local r = lm:call("think about this")
          assert.are.equal("integer", math.type(r.usage.reasoning))
          assert.is_true(r.usage.reasoning > 0)
          assert.is_true(r.usage.output > r.usage.reasoning)   -- the answer's tokens besides
          assert.are.equal(r.usage.input + r.usage.output, r.usage.total)
          local _, final = drain(lm, "think about this")
          assert.are.equal(r.usage.reasoning, final.usage.reasoning)
          assert.are.equal(2 * r.usage.reasoning, lm.usage.reasoning)
        end)
      else
        it("usage.reasoning is absent where the provider does not count thinking apart", function()
          assert.is_nil(lm_for(p):call("no thinking count").usage.reasoning)
        end)
      end

      it("a cache hit returns the cached raw and id, attempts = 0, cached = true", function()
        local lm = lm_for(p, {cache = true})
        local prompt = unique("hit me")
        local first = lm:call(prompt)
        assert.are.equal(1, first.attempts)
        local hit = lm:call(prompt)
        assert.is_true(hit.cached)
        assert.are.equal(0, hit.attempts)
        assert.are.same(first.raw, hit.raw)
        assert.are.equal(first.id, hit.id)
        assert.is_nil(hit.request_id)           -- no request was made
        assert.are.same({input = 0, output = 0, total = 0}, hit.usage)
        -- and from the disk, with raw's integers still integers
        tide.configure{cache = {dir = cache_dir}}
        local disk = lm:call(prompt)
        assert.is_true(disk.cached)
        assert.are.same(first.raw, disk.raw)
        assert.are.equal("integer", math.type(p.count(disk.raw)))
        assert.are.equal(0, disk.attempts)
        assert.are.equal(1, server:stats().requests)
      end)

      it("a complete stream is cached: the same call and stream afterwards are hits", function()
        local lm = lm_for(p, {cache = true})
        local prompt = unique("stream then call")
        local pieces, final = drain(lm, prompt)
        assert.is_true(#pieces > 1, "mockllm streams in several pieces")
        assert.is_false(final.cached)
        assert.are.equal(1, final.attempts)
        assert.are.equal(1, server:stats().requests)
        local r = lm:call(prompt)
        assert.is_true(r.cached)
        assert.are.equal(final.text, r.text)
        assert.are.equal(final.finish_reason, r.finish_reason)
        assert.are.equal(final.id, r.id)
        -- a hit replays as a stream of one piece
        local again, again_final = drain(lm, prompt)
        assert.are.same({final.text}, again)
        assert.is_true(again_final.cached)
        assert.are.equal(0, again_final.attempts)
        assert.are.equal(1, server:stats().requests)
        assert.are.equal(2, lm.usage.cache_hits)
        assert.is_true(lm.history[#lm.history].cached)
      end)

      it("a call's answer serves a later stream, raw included", function()
        local lm = lm_for(p, {cache = true})
        local prompt = unique("call then stream")
        local r = lm:call(prompt)
        local pieces, final = drain(lm, prompt)
        assert.are.same({r.text}, pieces)
        assert.is_true(final.cached)
        assert.are.same(r.raw, final.raw)
        assert.are.equal(1, server:stats().requests)
        -- cache = false and a rollout_id stream afresh
        drain(lm, {prompt = prompt, cache = false})
        drain(lm, {prompt = prompt, rollout_id = "other"})
        assert.are.equal(3, server:stats().requests)
      end)

      it("a cut stream is not cached", function()
        local lm = lm_for(p, {cache = true, headers = {["X-Mock-Scenario"] = "fault=stream_cut"}})
        local prompt = unique("cut")
        assert.is_false(pcall(drain, lm, prompt))
        assert.is_false(pcall(drain, lm, prompt))
        assert.are.equal(2, server:stats().requests)
      end)
    end)
  end

  it("OpenAI's insufficient_quota is a quota error, not retried, with its request id", function()
    local lm = lm_for(PROVIDERS[1], {num_retries = 3,
      headers = {["X-Mock-Scenario"] = "error=insufficient_quota"}})
    local ok, err = pcall(lm.call, lm, "spend more")
    assert.is_false(ok)
    assert.are.equal("quota", err.kind)
    assert.are.equal(429, err.status)
    assert.is_false(err.retryable)
    assert.is_false(tide.errors.retryable(err))
    assert.matches("^req_", err.request_id)
    assert.are.equal(1, server:stats().requests)
  end)

  it("n samples made as n calls sum their cached tokens and keep the first's ids", function()
    local lm = lm_for(PROVIDERS[2], {headers = {["X-Mock-Scenario"] = "cached=3"}})
    local r = lm:call{prompt = "two samples of a prompt with some words in it", n = 2}
    assert.are.equal(2, #r.texts)
    assert.are.equal(6, r.usage.cached)
    assert.matches("^msg_", r.id)
    assert.matches("^req_", r.request_id)
    assert.are.equal(2, server:stats().requests)
  end)

  it("reads a cache entry written before raw and id were kept", function()
    local p = PROVIDERS[1]
    local lm = lm_for(p, {cache = true})
    local prompt = unique("old entry")
    local first = lm:call(prompt)
    -- strip raw and id from the one entry on disk, as an older tide wrote it
    local list = io.popen("grep -rl '" .. prompt .. "' " .. cache_dir)
    local path = list:read("l")
    list:close()
    local f = assert(io.open(path))
    local entry = cjson.decode(f:read("a"))
    f:close()
    assert.is_table(entry.raw)
    entry.raw, entry.id = nil, nil
    f = assert(io.open(path, "w"))
    f:write(cjson.encode(entry))
    f:close()
    tide.configure{cache = {dir = cache_dir}}
    local old = lm:call(prompt)
    assert.is_true(old.cached)
    assert.are.equal(first.text, old.text)
    assert.is_nil(old.raw)
    assert.is_nil(old.id)
    assert.are.equal(0, old.attempts)
    assert.are.equal(1, server:stats().requests)
  end)
end)
