--- What the specs of tide's Redis tier (the shared cache, the shared rate limits)
-- set up alike for a describe block: a real redis-server and a mockllm; before
-- each spec an empty Redis that tide is configured to, and tide's Redis warnings
-- collected instead of printed; after it, no Redis and nothing left behind.
-- new() registers those hooks through busted's API:
--
--   local tier = redis_tier.new()
--   -- tier.server, tier.llm; tier.warnings: this spec's warnings so far
local tide = require "tide"
local shared_redis = require "tide.shared.redis"
local redis = require "support.redis"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local M = {}

function M.new()
  local busted = require "busted"
  local tier = {saved_warn = shared_redis.warn}
  busted.setup(function()
    tier.server = redis.start()
    tier.llm = mockllm.start()
  end)
  busted.teardown(function()
    tide.configure{redis = false}
    shared_redis.warn = tier.saved_warn
    tier.llm:stop()
    tier.server:stop()
  end)
  busted.before_each(function()
    tier.llm:reset()
    tier.server:cli("FLUSHALL")
    local warnings = {}
    tier.warnings = warnings
    shared_redis.warn = function(message) warnings[#warnings + 1] = message end
    tide.configure{redis = tier.server.url}
  end)
  busted.after_each(function()
    tide.configure{redis = false}
    assert_clean()
  end)
  return tier
end

return M
