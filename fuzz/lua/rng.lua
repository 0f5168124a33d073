--- A seeded generator of numbers (xorshift64*), so a run is repeatable from its seed
-- without touching math.random's state, which the code under test may use.
local Rng = {}
Rng.__index = Rng

local function new(seed)
  local s = math.tointeger(seed) or 1
  if s == 0 then s = 0x9E3779B97F4A7C15 end
  return setmetatable({s = s}, Rng)
end

-- A 53-bit non-negative integer.
function Rng:next()
  local x = self.s
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  self.s = x
  return ((x * 0x2545F4914F6CDD1D) >> 11)
end

--- int(n) → 1..n; int(a, b) → a..b
function Rng:int(a, b)
  if b == nil then a, b = 1, a end
  return a + self:next() % (b - a + 1)
end

function Rng:chance(p) return self:next() % 1000000 < p * 1000000 end

function Rng:pick(list) return list[self:int(#list)] end

--- A size skewed small: most inputs short, some near max.
function Rng:size(max)
  local r = self:int(100)
  if r <= 60 then return self:int(0, math.min(max, 16)) end
  if r <= 90 then return self:int(0, math.min(max, 256)) end
  return self:int(0, max)
end

return {new = new}
