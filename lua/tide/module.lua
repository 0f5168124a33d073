--- tide.Module: composing predictors into a program.
--
--   local RAG = tide.Module{
--     init = function(self) self.answer = tide.ChainOfThought("context, question -> answer") end,
--     forward = function(self, args) return self.answer{context = ..., question = args.question} end,
--   }
--   local rag = RAG()
--   rag{question = "..."}          -- calls forward
--   rag:set_lm(lm)                  -- on every predictor inside
--
-- There is one forward: predictors inside it run in parallel when it uses
-- tide.gather, with no separate async version.
local predict = require "tide.predict"
local check = require "tide.check"
local callbacks = require "tide.callbacks"

local M = {}

local Base = {}

--- The predictors inside a module, walked in a stable (sorted) order:
-- a list of {name, predictor} with dotted names for nested modules and [i] for lists
-- (from 0, as DSPy names them: saved programs use these names).
local function walk(value, prefix, out, seen)
  if type(value) ~= "table" or seen[value] then return end
  seen[value] = true
  if predict.is_predict(value) then
    -- a ChainOfThought is DSPy's module around a Predict named "predict"
    out[#out + 1] = {value.inner_name and (prefix .. "." .. value.inner_name) or prefix, value}
    return
  end
  local mt = getmetatable(value)
  if mt ~= nil and mt.named_predictors == nil then return end   -- an LM, a task, ...: not ours
  local keys = {}
  for k in pairs(value) do
    if type(k) == "string" or math.type(k) == "integer" then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  for _, k in ipairs(keys) do
    local name = type(k) == "number" and string.format("%s[%d]", prefix, k - 1) or
      (prefix == "" and k or prefix .. "." .. k)
    walk(value[k], name, out, seen)
  end
end

function Base:named_predictors()
  local out = {}
  walk(self, "", out, {})
  return out
end

function Base:predictors()
  local list = {}
  for i, np in ipairs(self:named_predictors()) do list[i] = np[2] end
  return list
end

--- m:save(path) / m:load(path): every predictor's state in DSPy's JSON format.
function Base:save(path)
  require("tide.state").save(self, path)   -- loaded when first used
end

function Base:load(path)
  return require("tide.state").load(self, path)
end

function Base:set_lm(lm)
  for _, p in ipairs(self:predictors()) do p:set_lm(lm) end
end

--- tide.Module{init = fn, forward = fn, ...} → a class: calling it makes an
-- instance (init runs with the arguments); calling an instance runs forward.
function M.new(def)
  check.type("Module", 1, def, "table")
  if not check.callable(def.forward) then
    check.fail("Module", 1, "the definition needs a forward function, got " .. type(def.forward))
  end
  if def.init ~= nil and not check.callable(def.init) then
    check.fail("Module", 1, "init must be a function, got " .. type(def.init))
  end
  local class = {}
  for k, v in pairs(Base) do class[k] = v end
  for k, v in pairs(def) do class[k] = v end
  class.__index = class
  class.__call = function(self, ...)
    if callbacks.on then   -- the one test a call pays when no callback is configured
      local list = callbacks.list()
      if list then return callbacks.scope(list, "module", "Module", self, (...), self.forward, self, ...) end
    end
    return self:forward(...)
  end
  class.__name = "tide.Module"
  return setmetatable(class, {
    __call = function(cls, ...)
      local self = setmetatable({}, cls)
      if cls.init then cls.init(self, ...) end
      return self
    end,
  })
end

return M
