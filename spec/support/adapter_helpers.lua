--- What the adapter specs share: message constructors and the parse-error check.
local tide = require "tide"

local M = {}

function M.lines(t) return table.concat(t, "\n") end
function M.user(content) return {role = "user", content = content} end
function M.assistant(content) return {role = "assistant", content = content} end
function M.system(content) return {role = "system", content = content} end

--- parse_error(adapter, sig, text) → the typed parse error adapter.parse raises,
-- checked to carry the adapter's name and the raw reply.
function M.parse_error(adapter, sig, text)
  local ok, err = pcall(adapter.parse, sig, text)
  assert(not ok, "expected a parse error for: " .. text)
  assert(tide.is_error(err, "parse"), tostring(err))
  assert(err.adapter == adapter.name, "adapter " .. tostring(err.adapter))
  assert(err.raw == text, "the error does not carry the raw reply")
  return err
end

return M
