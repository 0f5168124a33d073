--- After each spec: no task, transfer, timer, socket or registry reference left
-- behind by the engine.
local tide = require "tide"
local assert = require "luassert"

return function()
  -- let handles that are closing finish (a closed uv handle needs one more turn)
  tide.poll()
  local s = tide.stats()
  assert.are.same({tasks = 0, refs = 0, transfers = 0, timers = 0},
    {tasks = s.tasks, refs = s.refs, transfers = s.transfers, timers = s.timers})
end
