--- Lists of examples as tide.Evaluate and the optimizers take them: each a
-- tide.Example with declared inputs, or a plain table (every field an input).
local prediction = require "tide.prediction"
local dataset = require "tide.eval.dataset"

local M = {}

--- as_examples(list, what, fail) → the list as Examples with declared inputs, checked
-- before any LM call.  `what` names the list in messages ("devset", "trainset");
-- fail(message) raises, blaming the caller's option.
function M.as_examples(list, what, fail)
  local out = {}
  for i, ex in ipairs(list) do
    if type(ex) ~= "table" then fail(string.format("%s[%d] is a %s, not an example", what, i, type(ex))) end
    if getmetatable(ex) == prediction.Example then
      if not ex:input_names() then
        fail(string.format("%s[%d] has no declared inputs: call with_inputs(...) on it", what, i))
      end
      out[i] = ex
    else
      out[i] = dataset.from_table({ex})[1]
    end
  end
  return out
end

return M
