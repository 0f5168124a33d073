--- tide.KNNFewShot{k, trainset, embedder, fewshot}: DSPy's KNNFewShot — at each call,
-- every predictor of the program gets as demos the k training examples nearest to
-- that call's inputs.
--
--   local embed = tide.Embedder("openai/text-embedding-3-small")
--   local opt = tide.KNNFewShot{k = 3, embedder = embed}
--   local compiled = opt:compile(program, {trainset = train})
--   compiled{question = "..."}   -- the 3 examples nearest the question as demos
--
-- The trainset is embedded once, on the first call (tide.retrieve.knn: batches in
-- parallel, through the embedder's cache; calls arriving meanwhile wait for it).  An
-- example's text is its input fields as DSPy's KNN writes them ("name: value" joined
-- by " | "), and a call's query the same fields of its inputs.  Each call runs a copy
-- of the program of its own, so calls in flight at once never see each other's demos;
-- the compiled program's own predictors keep no demos (a save writes them empty).
-- Without `fewshot` the nearest examples are the demos as they are (labeled); with
-- fewshot = {metric = ..., <BootstrapFewShot's options>} each call bootstraps them
-- first, as DSPy's does (tide.BootstrapFewShot over the k examples, then the call).
local check = require "tide.check"
local module = require "tide.module"
local predict = require "tide.predict"
local retrieve = require "tide.retrieve"
local program_copy = require("tide.optimize.program").copy
local run_mod = require "tide.optimize.run"
local bootstrap = require "tide.optimize.bootstrap"

local M = {}

local KNNFewShot = {}
KNNFewShot.__index = KNNFewShot
KNNFewShot.__name = "tide.KNNFewShot"

local function check_embedder(fname, arg, e)
  if type(e) ~= "table" or type(e.embed) ~= "function" then
    check.fail(fname, arg, "a tide.Embedder expected, got " .. type(e))
  end
  return e
end

-- The fewshot options: BootstrapFewShot's, checked now (its metric is required);
-- progress stays quiet unless asked for, since it would show at every call.
local function fewshot_options(fewshot)
  local o = {}
  for k, v in pairs(fewshot) do o[k] = v end
  if o.display_progress == nil then o.display_progress = false end
  bootstrap.new(o)   -- raises at the caller's line, naming the option
  return o
end

--- tide.KNNFewShot{k, trainset, embedder, fewshot} → the optimizer.
function M.new(opts)
  check.type("KNNFewShot", 1, opts, "table")
  check.number("KNNFewShot", "opts.k", opts.k, {integer = true, min = 1})
  check_embedder("KNNFewShot", "opts.embedder", opts.embedder)
  local trainset = run_mod.examples("KNNFewShot", "trainset", opts.trainset, false)
  check.type("KNNFewShot", "opts.fewshot", opts.fewshot, "table", true)
  return setmetatable({k = math.tointeger(opts.k), embedder = opts.embedder, trainset = trainset,
    fewshot = opts.fewshot and fewshot_options(opts.fewshot)}, KNNFewShot)
end

-- The fields an example is embedded by: a lone predictor's signature inputs, in its
-- order; else (a module) the inputs the trainset declares, sorted.
local function fields_of(program, trainset)
  if predict.is_predict(program) then
    local out = {}
    for i, f in ipairs(program.signature.inputs) do out[i] = f.name end
    return out
  end
  local seen, out = {}, {}
  for _, ex in ipairs(trainset) do
    for _, name in ipairs(ex:input_names()) do
      if not seen[name] then seen[name], out[#out + 1] = true, name end
    end
  end
  table.sort(out)
  return out
end

-- A call's query: its inputs' `fields` as the corpus's texts are written.
local function query_of(fields, inputs)
  local parts = {}
  for _, f in ipairs(fields) do
    local v = inputs[f]
    if v ~= nil then parts[#parts + 1] = f .. ": " .. tostring(v) end
  end
  if #parts == 0 then
    check.fail("KNNFewShot program", 1, "the inputs have none of the fields the trainset is " ..
      "searched by (" .. table.concat(fields, ", ") .. ")")
  end
  return table.concat(parts, " | ")
end

-- The compiled program: a module around the program's copy.  Its predictors are
-- the copy's, under the copy's own names (saving and loading it is saving and
-- loading the program); the search and the options are functions, which the
-- module walk does not enter.
local KNNProgram = module.new{
  init = function(self, program, knn, k, fewshot, teacher, fields)
    self.program = program
    self.fields = fields
    -- the trainset's vectors are made on the first search (concurrent first calls wait for it)
    self.nearest = function(query) return knn(query, k) end
    self.fewshot = function() return fewshot, teacher end
  end,
  named_predictors = function(self)
    return self.program:named_predictors()
  end,
  forward = function(self, args, ...)
    if type(args) ~= "table" then
      check.fail("KNNFewShot program", 1, "a table of inputs expected, got " .. type(args))
    end
    local nearest = self.nearest(query_of(self.fields, args))
    local fewshot, teacher = self.fewshot()
    local call_program
    if fewshot then
      call_program = bootstrap.new(fewshot):compile(self.program, {trainset = nearest, teacher = teacher})
    else
      call_program = program_copy(self.program)
      for _, np in ipairs(call_program:named_predictors()) do
        np[2].demos = table.move(nearest, 1, #nearest, 1, {})
      end
    end
    return call_program(args, ...)
  end,
}

--- opt:compile(program, {trainset = examples, teacher = program?}) → a new program
-- (the trainset given here, else the one given to KNNFewShot).
function KNNFewShot:compile(program, opts)
  opts = check.type("compile", 2, opts, "table", true) or {}
  local trainset = run_mod.examples("compile", "trainset", opts.trainset, false) or self.trainset
  if trainset == nil then
    check.fail("compile", "opts.trainset", "the trainset is empty: give at least one example, " ..
      "here or as KNNFewShot{trainset = ...}")
  end
  run_mod.check_program("compile", program, {trainset = trainset})
  if opts.teacher ~= nil and (type(opts.teacher) ~= "table" or type(opts.teacher.named_predictors) ~= "function") then
    check.fail("compile", "opts.teacher", "a program expected, got " .. type(opts.teacher))
  end
  local fields = fields_of(program, trainset)
  local knn = retrieve.knn(self.embedder, trainset, {fields = fields})
  return KNNProgram(bootstrap.zero_shot(program), knn, self.k, self.fewshot, opts.teacher, fields)
end

return M
