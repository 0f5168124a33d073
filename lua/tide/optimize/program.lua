--- Copies of programs for optimizers: compile returns a new program and leaves its
-- input as it was.
--
-- A copy has its own predictors (own demos and config tables) and its own module
-- tables; what is not the program's own state — LMs, adapters, signatures (values,
-- never mutated), functions, anything with a metatable of its own that is not a
-- predictor or a module — is shared.
local predict = require "tide.predict"

local M = {}

local function is_module(v)
  local mt = getmetatable(v)
  return mt == nil or mt.named_predictors ~= nil
end

local function copy_predictor(p)
  local c = {}
  for k, v in pairs(p) do c[k] = v end
  c.demos = table.move(p.demos or {}, 1, #(p.demos or {}), 1, {})
  local config = {}
  for k, v in pairs(p.config or {}) do config[k] = v end
  c.config = config
  return setmetatable(c, getmetatable(p))
end

local function copy(v, seen)
  if type(v) ~= "table" then return v end
  if seen[v] then return seen[v] end
  if predict.is_predict(v) then
    seen[v] = copy_predictor(v)
    return seen[v]
  end
  if not is_module(v) then return v end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do c[copy(k, seen)] = copy(x, seen) end
  return setmetatable(c, getmetatable(v))
end

--- copy(program) → a copy of the program with predictors of its own (a predictor
-- reached twice is copied once, so the copy keeps the program's sharing).
function M.copy(program)
  return copy(program, {})
end

return M
