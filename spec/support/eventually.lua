--- Polls the loop until ok() holds, at most ~5 s: for what finishes on its own
-- time (a killed child reaped, its stderr read, a server seeing a close).
-- → true as soon as ok() holds, else ok()'s last answer.
local tide = require "tide"

return function(ok)
  for _ = 1, 500 do
    if ok() then return true end
    tide.sleep(0.01)
  end
  return ok()
end
