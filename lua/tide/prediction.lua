--- Example and Prediction: plain Lua tables of fields with a few methods.
--
--   local ex = tide.Example{question = "2+2?", answer = "4"}:with_inputs("question")
--   ex:inputs()  --> Example{question = "2+2?"}      ex:labels()  --> Example{answer = "4"}
--
-- Fields are the table's own keys, so `ex.question` and `pairs(ex)` work as on any
-- table; methods come from the metatable and never show up as fields.
local check = require "tide.check"

local M = {}

local Example = {}
Example.__index = Example
Example.__name = "tide.Example"
M.Example = Example

local input_keys = setmetatable({}, {__mode = "k"})   -- example → set of input names

local function copy_fields(src, keep)
  local out = {}
  for k, v in pairs(src) do
    if keep == nil or keep(k) then out[k] = v end
  end
  return out
end

--- tide.Example{...} (or tide.Example(other_example)) → a new example
function M.example(fields)
  check.type("Example", 1, fields, "table")
  local ex = setmetatable(copy_fields(fields), Example)
  if input_keys[fields] then input_keys[ex] = input_keys[fields] end
  return ex
end

--- ex:with_inputs("a", "b") → a copy whose inputs are a and b
function Example:with_inputs(...)
  local names = {}
  for i = 1, select("#", ...) do
    local name = select(i, ...)
    check.type("with_inputs", i, name, "string")
    names[name] = true
  end
  local ex = setmetatable(copy_fields(self), Example)
  input_keys[ex] = names
  return ex
end

local function require_inputs(self, what)
  local names = input_keys[self]
  if not names then
    check.misuse("Example:" .. what .. ": call with_inputs(...) first to say which fields are inputs")
  end
  return names
end

--- ex:inputs() → an Example of the input fields only
function Example:inputs()
  local names = require_inputs(self, "inputs")
  local ex = setmetatable(copy_fields(self, function(k) return names[k] end), Example)
  input_keys[ex] = names
  return ex
end

--- ex:labels() → an Example of the other fields
function Example:labels()
  local names = require_inputs(self, "labels")
  return setmetatable(copy_fields(self, function(k) return not names[k] end), Example)
end

--- The input names, sorted (nil before with_inputs).
function Example:input_names()
  local names = input_keys[self]
  if not names then return nil end
  local list = {}
  for k in pairs(names) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function render(t, name)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "string" then
      v = string.format("%q", #v > 80 and v:sub(1, 77) .. "..." or v)
    elseif type(v) == "table" then
      v = "{...}"
    end
    parts[#parts + 1] = string.format("%s = %s", tostring(k), tostring(v))
  end
  return name .. "{" .. table.concat(parts, ", ") .. "}"
end

function Example:__tostring()
  return render(self, "Example")
end

-- ---- Prediction ---------------------------------------------------------------

local Prediction = {}
Prediction.__index = Prediction
Prediction.__name = "tide.Prediction"
M.Prediction = Prediction

--- A prediction's fields are the signature's outputs; with n > 1 the others are
-- in `completions` (a list of field tables, the first being the prediction's own).
function M.prediction(fields, completions)
  local p = setmetatable(copy_fields(fields), Prediction)
  if completions and #completions > 1 then
    rawset(p, "completions", completions)
  end
  return p
end

function Prediction:__tostring()
  return render(self, "Prediction")
end

function M.is_prediction(v)
  return getmetatable(v) == Prediction
end

return M
