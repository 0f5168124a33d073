--- Polls the loop until ok() holds, at most ~`seconds` (5 unless given): for what
-- finishes on its own time (a killed child reaped, its stderr read, a server
-- seeing a close).  → true as soon as ok() holds, else ok()'s last answer.
local tide = require "tide"

return function(ok, seconds)
  for _ = 1, (seconds or 5) * 100 do
    if ok() then return true end
    tide.sleep(0.01)
  end
  return ok()
end
