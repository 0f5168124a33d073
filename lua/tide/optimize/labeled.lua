--- tide.LabeledFewShot{k = 16, seed = 0}: DSPy's simplest optimizer — each predictor
-- of the program gets up to k examples of the trainset as its demos.
--
--   local compiled = tide.LabeledFewShot{k = 8}:compile(program, {trainset = train})
--
-- The demos are sampled (seeded: the same seed gives the same demos), or the first k
-- with sample = false.  Every predictor draws its own sample, in the program's
-- predictor order, as DSPy's does.  compile returns a copy: the program passed in
-- keeps its demos.
local check = require "tide.check"
local rng = require "tide.optimize.rng"
local program_copy = require("tide.optimize.program").copy

local M = {}

local LabeledFewShot = {}
LabeledFewShot.__index = LabeledFewShot
LabeledFewShot.__name = "tide.LabeledFewShot"

local K_RANGE = {integer = true, min = 0}

function M.new(opts)
  opts = check.type("LabeledFewShot", 1, opts, "table", true) or {}
  check.number("LabeledFewShot", "opts.k", opts.k, K_RANGE, true)
  check.number("LabeledFewShot", "opts.seed", opts.seed, {integer = true}, true)
  return setmetatable({k = opts.k or 16, seed = opts.seed or 0}, LabeledFewShot)
end

local function check_program(program)
  if type(program) ~= "table" or type(program.named_predictors) ~= "function" then
    check.fail("compile", 1, "a program (tide.Predict, tide.ChainOfThought or a tide.Module) " ..
      "expected, got " .. type(program))
  end
end

--- opt:compile(program, {trainset = examples, sample = true}) → a new program.
function LabeledFewShot:compile(program, opts)
  check_program(program)
  check.type("compile", 2, opts, "table")
  local trainset = check.type("compile", "opts.trainset", opts.trainset, "table")
  for i, ex in ipairs(trainset) do
    if type(ex) ~= "table" then
      check.fail("compile", "opts.trainset", string.format("item %d is a %s, not an example", i, type(ex)))
    end
  end
  local compiled = program_copy(program)
  local r = rng.new(self.seed)
  local n = math.min(self.k, #trainset)
  for _, np in ipairs(compiled:named_predictors()) do
    if opts.sample == false then
      np[2].demos = table.move(trainset, 1, n, 1, {})
    else
      np[2].demos = r:sample(trainset, n)
    end
  end
  return compiled
end

return M
