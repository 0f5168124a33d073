--- A Tree-structured Parzen Estimator over categorical choices: what Optuna's
-- TPESampler does for categorical parameters (MIPROv2's search in DSPy), in a few
-- lines of our own.
--
--   local s = tpe.new(rng, {6, 6})      -- two variables, six choices each
--   local x = s:suggest()               -- {i, j}, 1-based
--   s:tell(x, score)
--
-- The first `startup` suggestions are uniform.  Then, per variable (independently,
-- as Optuna's default), the past trials are split into the best quarter ("good")
-- and the rest; each choice gets a smoothed frequency in both, l(c) and g(c) (a
-- prior of one count each); 24 candidates are drawn from l and the one with the
-- highest l(c)/g(c) is suggested.  Deterministic for a seeded rng.
local M = {}

local Sampler = {}
Sampler.__index = Sampler

local GAMMA = 0.25
local CANDIDATES = 24

function M.new(rng, sizes, startup)
  return setmetatable({rng = rng, sizes = sizes, startup = startup or 4, history = {}}, Sampler)
end

local function draw(rng, weights, total)
  local x = rng:random() * total
  for c, w in ipairs(weights) do
    x = x - w
    if x < 0 then return c end
  end
  return #weights
end

--- One variable's choice given the trials split into good and bad.
local function pick(self, v, good, bad)
  local n = self.sizes[v]
  local l, g = {}, {}
  for c = 1, n do l[c], g[c] = 1, 1 end
  for _, t in ipairs(good) do l[t.x[v]] = l[t.x[v]] + 1 end
  for _, t in ipairs(bad) do g[t.x[v]] = g[t.x[v]] + 1 end
  local lt, gt = #good + n, #bad + n
  local best, best_ratio
  for _ = 1, CANDIDATES do
    local c = draw(self.rng, l, lt)
    local ratio = (l[c] / lt) / (g[c] / gt)
    if best_ratio == nil or ratio > best_ratio then best, best_ratio = c, ratio end
  end
  return best
end

function Sampler:suggest()
  local x = {}
  if #self.history < self.startup then
    for v, n in ipairs(self.sizes) do x[v] = self.rng:below(n) + 1 end
    return x
  end
  local sorted = table.move(self.history, 1, #self.history, 1, {})
  table.sort(sorted, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.order < b.order
  end)
  local n_good = math.max(1, math.ceil(GAMMA * #sorted))
  local good = table.move(sorted, 1, n_good, 1, {})
  local bad = table.move(sorted, n_good + 1, #sorted, 1, {})
  for v = 1, #self.sizes do x[v] = pick(self, v, good, bad) end
  return x
end

function Sampler:tell(x, score)
  self.history[#self.history + 1] = {x = x, score = score, order = #self.history + 1}
end

return M
