--- tide.majority(predictions, field [, normalize]) → the prediction whose `field` is the
-- most common value, as DSPy's dspy.majority.
--
--   local votes = tide.map({1, 2, 3, 4, 5}, function(i) return qa({question = q}, {config = {rollout_id = i}}) end)
--   print(tide.majority(votes, "answer").answer)
--
-- predictions: a list of predictions (or field tables), or one prediction whose
-- `completions` hold its n samples.  Values are compared after normalize (DSPy's
-- normalize_text by default; false compares them as they are); a value that
-- normalizes to "" or nil does not vote, unless none is left.  Ties go to the value
-- seen first, and the first prediction with the winning value is returned.
local check = require "tide.check"
local metrics = require "tide.metrics"
local prediction = require "tide.prediction"

local function default_normalize(v)
  if v == nil then return nil end
  local s = metrics.normalize_text(type(v) == "string" and v or tostring(v))
  if s == "" then return nil end
  return s
end

local function as_list(predictions)
  if prediction.is_prediction(predictions) then
    local list = rawget(predictions, "completions")
    if list then return list end
    return {predictions}
  end
  return predictions
end

local function majority(predictions, field, normalize)
  check.type("majority", 1, predictions, "table")
  check.type("majority", 2, field, "string")
  if normalize == false then
    normalize = function(v) return v end
  elseif normalize == nil then
    normalize = default_normalize
  elseif not check.callable(normalize) then
    check.fail("majority", 3, "a function, false or nil expected, got " .. type(normalize))
  end
  local list = as_list(predictions)
  if #list == 0 then check.fail("majority", 1, "no predictions to vote") end
  local values, voting = {}, 0
  for i, p in ipairs(list) do
    if type(p) ~= "table" then
      check.fail("majority", 1, string.format("item %d is a %s, not a prediction", i, type(p)))
    end
    values[i] = normalize(p[field])
    if values[i] ~= nil then voting = voting + 1 end
  end
  local counts, order = {}, {}
  for i = 1, #list do
    local v = values[i]
    if v ~= nil or voting == 0 then
      local key = v == nil and "" or v
      if counts[key] == nil then order[#order + 1] = key end
      counts[key] = (counts[key] or 0) + 1
    end
  end
  local winner = order[1]
  for _, key in ipairs(order) do
    if counts[key] > counts[winner] then winner = key end
  end
  for i, p in ipairs(list) do
    if (values[i] == nil and "" or values[i]) == winner then
      if prediction.is_prediction(p) then return p end
      return prediction.prediction(p)
    end
  end
end

return majority
