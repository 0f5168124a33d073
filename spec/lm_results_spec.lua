--- What an LM call returns, over mockllm: raw with JSON's integers and nulls,
-- the answer's id and the request id, cache hits that keep raw (attempts 0),
-- and streams that are cached like calls.  Requests are counted with /__stats.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local tmpdir = require("support.files").tmpdir

local PROVIDERS = {
  {name = "openai", model = "openai/gpt-4o-mini", base = function(s) return s.url .. "/v1" end,
   id = "^chatcmpl%-", count = function(raw) return raw.usage.prompt_tokens end},
  {name = "anthropic", model = "anthropic/claude-3-5-haiku", base = function(s) return s.url end,
   id = "^msg_", count = function(raw) return raw.usage.input_tokens end},
  {name = "gemini", model = "gemini/gemini-2.5-flash", base = function(s) return s.url end,
   count = function(raw) return raw.usageMetadata.promptTokenCount end},
}

describe("LM results", function()
  local server, cache_dir, saved_cache
  setup(function()
    server = mockllm.start()
    cache_dir = tmpdir()
    saved_cache = require("tide.lm").default_cache()
  end)
  teardown(function()
    server:stop()
    require("tide.lm").set_default_cache(saved_cache)
    os.execute("rm -rf " .. cache_dir)
  end)
  before_each(function()
    server:reset()
    tide.configure{cache = {dir = cache_dir}}   -- a fresh memory over the same disk
  end)
  after_each(assert_clean)

  local function lm_for(p, opts)
    opts = opts or {}
    opts.api_key = "sk-results-test"
    opts.base_url = p.base(server)
    if opts.cache == nil then opts.cache = false end
    opts.num_retries = opts.num_retries or 0
    return tide.LM(p.model, opts)
  end

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

      if p.id then
        it("carries the provider's response id, and keeps it in history", function()
          local lm = lm_for(p)
          local r = lm:call("which answer is this")
          assert.matches(p.id, r.id)
          assert.are.equal(r.raw.id, r.id)
          assert.are.equal(r.id, lm.history[#lm.history].id)
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
