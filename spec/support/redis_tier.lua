--- What the specs of tide's Redis tier (the shared cache, the shared rate limits)
-- set up alike for a describe block: a real redis-server and a mockllm; before
-- each spec an empty Redis that tide is configured to, and tide's Redis warnings
-- collected instead of printed; after it, no Redis and nothing left behind.
-- Busted's hooks are not visible from here, so the spec hands them over:
--
--   local tier = redis_tier.new()
--   setup(tier.setup) teardown(tier.teardown)
--   before_each(tier.before_each) after_each(tier.after_each)
--   -- tier.server, tier.llm; tier.warnings: this spec's warnings so far
local tide = require "tide"
local shared_redis = require "tide.shared.redis"
local redis = require "support.redis"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local M = {}

function M.new()
  local tier = {saved_warn = shared_redis.warn}
  function tier.setup()
    tier.server = redis.start()
    tier.llm = mockllm.start()
  end
  function tier.teardown()
    tide.configure{redis = false}
    shared_redis.warn = tier.saved_warn
    tier.llm:stop()
    tier.server:stop()
  end
  function tier.before_each()
    tier.llm:reset()
    tier.server:cli("FLUSHALL")
    local warnings = {}
    tier.warnings = warnings
    shared_redis.warn = function(message) warnings[#warnings + 1] = message end
    tide.configure{redis = tier.server.url}
  end
  function tier.after_each()
    tide.configure{redis = false}
    assert_clean()
  end
  return tier
end

return M
