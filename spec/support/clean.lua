--- After each spec: no task, transfer, timer, child process or registry reference left
-- behind by the engine, and no LM or adapter left configured for the next spec
-- (or the next spec file: busted runs them all in one process).
local tide = require "tide"
local assert = require "luassert"

-- live_processes: the children a spec file keeps on purpose (an MCP server shared by
-- a describe block); none otherwise.
return function(live_processes)
  -- unset first, so that a failed check below leaves nothing configured either
  tide.configure{lm = false, adapter = false}
  -- let handles that are closing finish (a closed uv handle needs one more turn)
  tide.poll()
  local s = tide.stats()
  assert.are.same({tasks = 0, refs = 0, transfers = 0, timers = 0,
                   processes = type(live_processes) == "number" and live_processes or 0},
    {tasks = s.tasks, refs = s.refs, transfers = s.transfers, timers = s.timers,
     processes = s.processes})
end
