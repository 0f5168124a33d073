--- Azure OpenAI: OpenAI's chat completions on a deployment of the caller's
-- resource.  POST {base}/openai/deployments/{deployment}/chat/completions
-- ?api-version={version}, the key in an `api-key` header.  The model string's
-- name is the deployment's (azure/my-gpt4o); everything but the URL and the
-- key's header is openai.lua's.
local openai = require "tide.providers.openai"
local common = require "tide.providers.common"

local M = setmetatable({}, {__index = openai})   -- parse, classify, streams: OpenAI's

--- The path of a deployment's chat completions: the deployment name is
-- percent-encoded (it goes into the path), the version into the query.
local function path_of(cfg)
  return "/openai/deployments/" .. common.percent(cfg.model) .. "/chat/completions?api-version="
    .. common.percent(cfg.api_version)
end

--- build(cfg, req) → {url, headers, body}
function M.build(cfg, req)
  return openai.build(cfg, req, path_of(cfg), "api-key")
end

return M
