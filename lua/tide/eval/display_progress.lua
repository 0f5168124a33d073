--- The display_progress option that tide.Evaluate and the optimizers both take:
-- true (a bar on a terminal, else lines), false, "bar", "lines" or "none".
local progress = require "tide.eval.progress"

local M = {}

local VALID = {[true] = true, [false] = true, bar = true, lines = true, none = true}

--- Why `v` is not a display_progress value, or nil (nil is the default, true).
function M.problem(v)
  if VALID[v == nil and true or v] then return nil end
  return "true, false, 'bar', 'lines' or 'none' expected, got " .. tostring(v)
end

--- A display_progress value → the progress module's mode.
function M.mode(v)
  if v == nil or v == true then return progress.detect() end
  if v == false then return "none" end
  return v
end

return M
