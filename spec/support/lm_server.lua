--- What the tide.LM specs share: the three wire formats pointed at mockllm,
-- and a mockllm with a private disk cache for one describe block.
local tide = require "tide"
local lm = require "tide.lm"
local mockllm = require "support.mockllm"
local tmpdir = require("support.files").tmpdir

local M = {}

-- Each wire format pointed at mockllm the way a user points an SDK at a proxy:
-- OpenAI's base URL includes /v1, the others' do not.
M.PROVIDERS = {
  {name = "openai", model = "openai/gpt-4o-mini", base = function(s) return s.url .. "/v1" end},
  {name = "anthropic", model = "anthropic/claude-3-5-haiku", base = function(s) return s.url end},
  {name = "gemini", model = "gemini/gemini-2.5-flash", base = function(s) return s.url end},
}

--- lm_for(server, p, scenario, opts) → an LM of provider p (one of PROVIDERS) on the
-- server, without cache or retries, scripted by the mockllm scenario when one is
-- given; opts' fields (e.g. a cache, api = "responses") go over those.
function M.lm_for(server, p, scenario, opts)
  local o = {api_key = "sk-spec", base_url = p.base(server), cache = false, num_retries = 0,
    headers = scenario and {["X-Mock-Scenario"] = scenario} or nil}
  for k, v in pairs(opts or {}) do o[k] = v end
  return tide.LM(p.model, o)
end

--- For a setup: a started mockllm (.server), a new directory (.dir) for the spec's
-- own files, and in it the cache directory (.cache_dir) that the default cache now
-- uses; stop() undoes all three.
function M.start()
  local dir = tmpdir()
  local env = {server = mockllm.start(), dir = dir, cache_dir = dir .. "/cache",
    saved_cache = lm.default_cache()}
  tide.configure{cache = {dir = env.cache_dir}}
  function env:stop()
    self.server:stop()
    lm.set_default_cache(self.saved_cache)   -- the next spec file's cache is its own
    os.execute("rm -rf " .. self.dir)
  end
  return env
end

return M
