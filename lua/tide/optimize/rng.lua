--- A seeded random generator of its own, so that an optimizer is reproducible
-- with `seed` whatever else calls math.random, and leaves math.random's state alone.
--
--   local r = rng.new(7)
--   r:below(10)              --> an integer in [0, 10)
--   r:sample(list, 3)        --> 3 distinct items of list, in sampled order
--
-- splitmix64 over Lua's 64-bit integers (wrapping arithmetic): small, fast and
-- well mixed, which is all sampling demos needs.
local M = {}

local Rng = {}
Rng.__index = Rng

function M.new(seed)
  return setmetatable({state = math.tointeger(seed) or 0}, Rng)
end

--- The next 64-bit value.
function Rng:next()
  self.state = self.state + 0x9E3779B97F4A7C15
  local z = self.state
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

--- An integer in [0, n), n > 0.
function Rng:below(n)
  return math.ult(0, n) and ((self:next() >> 1) % n) or 0
end

--- A float in [0, 1), 53 bits.
function Rng:random()
  return (self:next() >> 11) * (1.0 / (1 << 53))
end

--- One item of list, uniformly.
function Rng:choice(list)
  return list[self:below(#list) + 1]
end

--- k distinct items of list (all when k >= #list), in the order drawn: a partial
-- Fisher-Yates shuffle of a copy.
function Rng:sample(list, k)
  local pool = table.move(list, 1, #list, 1, {})
  local n = #pool
  k = math.min(k, n)
  for i = 1, k do
    local j = i + self:below(n - i + 1)
    pool[i], pool[j] = pool[j], pool[i]
  end
  return table.move(pool, 1, k, 1, {})
end

return M
