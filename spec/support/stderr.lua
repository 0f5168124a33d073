--- What a function writes to io.stderr: for the specs that check a warning is
-- printed (or not) without letting it reach the terminal.
--
--   local stderr_of = require "support.stderr"
--   local written = stderr_of(function() ... end)

--- Replaces io.stderr while fn runs → what was written to it; fn's error is raised
-- again after io.stderr is back.
return function(fn)
  local saved, written = io.stderr, {}
  io.stderr = {write = function(_, ...)   -- luacheck: ignore 122
    for _, s in ipairs{...} do written[#written + 1] = s end
  end}
  local ok, err = pcall(fn)
  io.stderr = saved   -- luacheck: ignore 122
  if not ok then error(err, 0) end
  return table.concat(written)
end
