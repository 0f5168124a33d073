--- tide.Parallel{limit, max_errors, return_failed_examples}: (module, example) pairs
-- run at once, as DSPy's dspy.Parallel.
--
--   local par = tide.Parallel{limit = 16, max_errors = 5}
--   local results = par({{qa, ex1}, {summarize, ex2}, ...})
--
-- An example is a tide.Example (its inputs are passed: with_inputs), a table of
-- inputs, or a list of arguments.  results[i] is pair i's prediction, or its error
-- object when it failed; more failures than max_errors stop the run with a
-- `max_errors` error.  With return_failed_examples = true the call also returns the
-- failed examples and their errors.
local core = require "tide.core"
local check = require "tide.check"
local prediction = require "tide.prediction"

local Parallel = {}
Parallel.__index = Parallel
Parallel.__name = "tide.Parallel"

local COUNT = {integer = true, min = 1}

local function new(opts)
  opts = check.type("Parallel", 1, opts, "table", true) or {}
  check.number("Parallel", "limit", opts.limit, COUNT, true)
  check.number("Parallel", "max_errors", opts.max_errors, {integer = true, min = 0}, true)
  return setmetatable({limit = opts.limit, max_errors = opts.max_errors,
                       return_failed_examples = opts.return_failed_examples == true}, Parallel)
end

--- Whether t is a non-empty list and nothing else: a list of arguments.
local function is_argument_list(t)
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local function run_pair(pair)
  local module, example = pair[1], pair[2]
  if getmetatable(example) == prediction.Example and example:input_names() then
    return module(example:inputs())
  end
  if is_argument_list(example) then return module(table.unpack(example, 1, #example)) end
  return module(example)
end

function Parallel:__call(pairs_list)
  check.type("Parallel", 1, pairs_list, "table")
  for i, pair in ipairs(pairs_list) do
    if type(pair) ~= "table" or not check.callable(pair[1]) or type(pair[2]) ~= "table" then
      check.fail("Parallel", 1, string.format("item %d must be {module, example}", i))
    end
  end
  local errors = 0
  local results = core.map(pairs_list, function(pair)
    local ok, r = pcall(run_pair, pair)
    if ok then return r end
    if core.is_error(r, "cancelled") then error(r, 0) end
    errors = errors + 1
    if self.max_errors ~= nil and errors > self.max_errors then
      error(core.error{kind = "max_errors", message = string.format(
        "tide.Parallel: %d pairs failed, more than max_errors = %d; the last: %s",
        errors, self.max_errors, core.is_error(r) and r.message or tostring(r))}, 0)
    end
    return core.is_error(r) and r or core.error{kind = "lua", message = tostring(r)}
  end, {limit = self.limit})
  if not self.return_failed_examples then return results end
  local failed, errs = {}, {}
  for i, r in ipairs(results) do
    if core.is_error(r) then
      failed[#failed + 1] = pairs_list[i][2]
      errs[#errs + 1] = r
    end
  end
  return results, failed, errs
end

function Parallel:__tostring()
  return string.format("tide.Parallel(limit = %s)", tostring(self.limit or "none"))
end

return new
