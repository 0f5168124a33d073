--- tide.Ensemble{reduce_fn, size, seed = 0}: DSPy's Ensemble — several programs
-- answer each call and reduce_fn combines their outputs.
--
--   local ens = tide.Ensemble{reduce_fn = function(outs) return tide.majority(outs, "answer") end}
--   local program = ens:compile{candidate_a, candidate_b, candidate_c}
--   program{question = "..."}           -- the three at once, then the majority
--
-- Every call runs its programs at once (tide.map; their LMs' gates bound the
-- requests) and hands reduce_fn their outputs in the programs' order; without
-- reduce_fn the call returns that list.  With size, each call uses `size`
-- programs drawn from the list (a seeded draw per ensemble, so a rerun draws the
-- same).  The compiled program is a module holding the programs as `programs`: it
-- saves and loads as one (predictors named programs[0]..., as DSPy names them).
local core = require "tide.core"
local check = require "tide.check"
local module = require "tide.module"
local rng = require "tide.optimize.rng"

local M = {}

local Ensemble = {}
Ensemble.__index = Ensemble
Ensemble.__name = "tide.Ensemble"

function M.new(opts)
  opts = check.type("Ensemble", 1, opts, "table", true) or {}
  if opts.reduce_fn ~= nil and not check.callable(opts.reduce_fn) then
    check.fail("Ensemble", "opts.reduce_fn", "a function(outputs) expected, got " .. type(opts.reduce_fn))
  end
  check.number("Ensemble", "opts.size", opts.size, {integer = true, min = 1}, true)
  check.number("Ensemble", "opts.seed", opts.seed, {integer = true}, true)
  return setmetatable({reduce_fn = opts.reduce_fn, size = opts.size, seed = opts.seed or 0}, Ensemble)
end

local Ensembled = module.new{
  init = function(self, programs, reduce_fn, size, seed)
    self.programs = programs
    -- not tables: the module walk (named_predictors, save) sees only the programs
    self.reduce = function() return reduce_fn end
    self.draw = function(list) return size and seed:sample(list, size) or list end
  end,
  forward = function(self, inputs)
    local outputs = core.map(self.draw(self.programs), function(p) return p(inputs) end)
    local reduce_fn = self.reduce()
    if reduce_fn then return reduce_fn(outputs) end
    return outputs
  end,
}

--- ens:compile(programs) → one program running them all (see above).
function Ensemble:compile(programs)
  check.type("compile", 1, programs, "table")
  if programs[1] == nil then check.fail("compile", 1, "a list of programs expected, got an empty table") end
  for i, p in ipairs(programs) do
    if not check.callable(p) then
      check.fail("compile", 1, string.format("programs[%d] is a %s, not a program", i, type(p)))
    end
  end
  if self.size and self.size > #programs then
    check.fail("compile", 1, string.format("size = %d but only %d programs", self.size, #programs))
  end
  local list = table.move(programs, 1, #programs, 1, {})
  return Ensembled(list, self.reduce_fn, self.size, rng.new(self.seed))
end

return M
