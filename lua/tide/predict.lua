--- Predict and ChainOfThought: a signature, an adapter and an LM make a function
-- from inputs to typed outputs.
--
--   local critic = tide.Predict("content, context -> score: int, feedback, approved: bool")
--   local r = critic({content = draft, context = "B2B outreach"}, {lm = lm})
--   print(r.score + 1, r.feedback, r.approved)
--
-- A call takes the inputs, then the options apart: lm, config ({temperature, n,
-- rollout_id, max_tokens}), demos (few-shot examples), adapter, parse_retries,
-- fallback.  DSPy's one-table form, critic{content = ..., lm = lm, config = ...},
-- works too: there `lm`, `config` and `demos` are options unless the signature
-- has inputs of those names.  The adapter makes the call (format, LM, parse) and
-- decides what a reply that does not parse gets: asked again (parse_retries),
-- then the chat adapter falls back to the JSON adapter once, as DSPy's does.
local Signature = require "tide.signature"
local chat = require "tide.adapters.chat"
local prediction = require "tide.prediction"
local settings = require "tide.settings"
local check = require "tide.check"
local callbacks = require "tide.callbacks"
-- Loaded when first used, so that `require "tide"` costs a program none of them:
-- tide.state (save, load), tide.adapters.field_stream (stream) and
-- tide.tools.loop (set by the first predictor with tool options).
local tools

local M = {}

local Predict = {}
Predict.__index = Predict
Predict.__name = "tide.Predict"
M.Predict = Predict

-- The options of the one-table form (DSPy's), and of p(inputs, opts).
local CALL_OPTIONS = {lm = true, config = true, demos = true}
local OPTIONS = {lm = "table", config = "table", demos = "table", adapter = "table",
                 parse_retries = "number", fallback = "boolean", callbacks = "table"}
local OPTION_NAMES   -- "adapter, callbacks, ...": for the unknown-option message
do
  local names = {}
  for k in pairs(OPTIONS) do names[#names + 1] = k end
  table.sort(names)
  OPTION_NAMES = table.concat(names, ", ")
end
local RETRIES_RANGE = {integer = true, min = 0}   -- parse_retries, made once
-- The tool loop's options besides tools, which need it.
local LOOP_OPTIONS = {"max_iters", "tool_choice", "limit", "timeout"}

local function as_signature(sig, instructions, fname)
  if type(sig) == "string" then return Signature.new(sig, instructions) end
  if type(sig) == "table" and sig.inputs and sig.outputs then
    if instructions then return sig:with_instructions(instructions) end
    return sig
  end
  check.fail(fname, 1, "signature or string expected, got " .. type(sig))
end

--- An adapter is a table with call(lm, sig, inputs, opts) (tide.adapters.chat, .json).
local function check_adapter(fname, arg, adapter)
  if adapter ~= nil and (type(adapter) ~= "table" or type(adapter.call) ~= "function") then
    check.fail(fname, arg, "an adapter (tide.adapters.chat or .json) expected, got " .. type(adapter))
  end
end

--- The tool loop's options of tide.Predict's opts (tide.tools.loop.options), or nil
-- without opts.tools (a misuse when it has the loop's other options).
local function tool_options(opts)
  if opts.tools ~= nil then
    tools = tools or require "tide.tools.loop"
    return tools.options("Predict", opts)
  end
  for _, k in ipairs(LOOP_OPTIONS) do
    if opts[k] ~= nil then check.fail("Predict", "opts." .. k, "it needs opts.tools") end
  end
  return nil
end

--- tide.Predict(signature [, opts]) — opts: lm, adapter, demos, config,
-- parse_retries (0: how often a reply that does not parse is asked again), fallback
-- (false: not the adapter's fallback after that; the chat adapter's is the JSON adapter),
-- tools (with max_iters, tool_choice, limit, timeout: the tool loop, tide/tools/loop.lua).
function M.new(sig, opts)
  if type(opts) == "string" then opts = {instructions = opts} end
  opts = check.type("Predict", 2, opts, "table", true) or {}
  check.number("Predict", "opts.parse_retries", opts.parse_retries, RETRIES_RANGE, true)
  check_adapter("Predict", "opts.adapter", opts.adapter)
  local self = setmetatable({
    signature = as_signature(sig, opts.instructions, "Predict"),
    lm = opts.lm,
    adapter = opts.adapter,
    demos = opts.demos or {},
    config = opts.config or {},
    fallback = opts.fallback ~= false,
    parse_retries = opts.parse_retries or 0,
    tool_loop = tool_options(opts),   -- nil without opts.tools
  }, Predict)
  return self
end

function Predict:__tostring()
  return "tide.Predict(" .. tostring(self.signature) .. ")"
end

--- Splits a call into the signature's inputs and the call's options.  A call
-- without options (the usual one) uses its table as the inputs, uncopied: an
-- in-flight call keeps no second table.
local EMPTY = {}   -- shared by every call that has no options or config: only ever read

local is_input = Signature.is_input

--- Levenshtein distance between two short names, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = {[0] = i}
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- sig may be any {inputs = , outputs = } table, not only a Signature
local function has_field(sig, name)
  for _, list in ipairs({sig.inputs, sig.outputs}) do
    for _, f in ipairs(list) do
      if f.name == name then return true end
    end
  end
  return false
end

--- The message for a missing input: it names the keys the call had that the
-- signature does not know, closest first ("missing input 'question' (got
-- 'qestion')"), since a missing input is most often a misspelt one.
local function missing_input(sig, name, args)
  local stray = {}
  for k in pairs(args) do
    if type(k) == "string" and not CALL_OPTIONS[k] and not has_field(sig, k) then
      stray[#stray + 1] = k
    end
  end
  table.sort(stray, function(a, b)
    local da, db = distance(a, name), distance(b, name)
    if da ~= db then return da < db end
    return a < b
  end)
  local got = ""
  if #stray > 0 then
    local shown = {}
    for i = 1, math.min(3, #stray) do shown[i] = "'" .. stray[i] .. "'" end
    got = string.format(" (got %s%s)", table.concat(shown, ", "), #stray > 3 and ", ..." or "")
  end
  return string.format("tide.Predict: missing input '%s'%s for %s", name, got, tostring(sig))
end

--- The options of p(inputs, opts), checked.
local function checked_options(opts)
  check.type("predictor", 2, opts, "table")
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then
      check.fail("predictor", 2, string.format("unknown option '%s'; the options are %s",
        tostring(k), OPTION_NAMES))
    end
    if type(v) ~= want then check.type("predictor", "opts." .. k, v, want) end
  end
  check.number("predictor", "opts.parse_retries", opts.parse_retries, RETRIES_RANGE, true)
  check_adapter("predictor", "opts.adapter", opts.adapter)
  return opts
end

--- DSPy's form: the options (lm, config, demos) among the inputs.
local function split_table(sig, args)
  for k in pairs(CALL_OPTIONS) do
    if args[k] ~= nil and not is_input(sig, k) then
      local inputs, options = {}, {}
      for key, v in pairs(args) do
        if CALL_OPTIONS[key] and not is_input(sig, key) then options[key] = v else inputs[key] = v end
      end
      return inputs, options
    end
  end
  return args, EMPTY
end

local function split_call(self, args, opts)
  if type(args) ~= "table" then
    check.misuse("tide.Predict: call with a table of inputs, got " .. type(args))
  end
  local sig = self.signature
  local inputs, options
  if opts == nil then
    inputs, options = split_table(sig, args)
  else
    inputs, options = args, checked_options(opts)
  end
  for _, f in ipairs(sig.inputs) do
    if inputs[f.name] == nil and not f.optional then
      check.misuse(missing_input(sig, f.name, inputs))
    end
  end
  return inputs, options
end

--- a's fields under b's; a itself when b adds none.
local function merged(a, b)
  a = a or EMPTY
  if b == nil or next(b) == nil then return a end
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  for k, v in pairs(b) do out[k] = v end
  return out
end

--- What the adapter is told for a call with options: the predictor's own
-- demos, config, parse_retries and fallback under the call's.
local function call_options(self, options)
  local fallback = options.fallback
  if fallback == nil then fallback = self.fallback end
  return {demos = options.demos or self.demos, config = merged(self.config, options.config),
          parse_retries = options.parse_retries or self.parse_retries, fallback = fallback}
end

--- The call itself, once the inputs and options are known.  Apart from __call,
-- which tail-calls it, so that a call in flight keeps only this small frame: a
-- coroutine's stack keeps the size of the deepest point it reached (spec/
-- memory_spec.lua bounds what a waiting Predict and panel critic hold).
local function answer(sig, lm, adapter, inputs, c, tool_loop)
  if tool_loop then return tools.run(lm, adapter, sig, inputs, c, tool_loop) end
  local outputs = adapter.call(lm, sig, inputs, c)
  return prediction.prediction(outputs[1], outputs)
end

--- answer, for a call the callbacks hear of (tide.callbacks.entered): the call
-- closes with this frame, on the answer or on an error, so that a call in flight
-- holds no frame more than without callbacks.
local function answer_heard(self, lm, adapter, inputs, c, call)
  local _ <close> = call
  if self.tool_loop then
    call.outputs = tools.run(lm, adapter, self.signature, inputs, c, self.tool_loop)
  else
    local outputs = adapter.call(lm, self.signature, inputs, c)
    call.outputs = prediction.prediction(outputs[1], outputs)
  end
  return call.outputs
end

--- An optimizer's compile collects what each predictor did under a trace (a
-- list set as the task setting `compile_trace`, inherited by the tasks it spawns): one
-- {predictor, inputs, prediction} per call, in the order they finished.
local function traced(trace, predictor, inputs, pred)
  trace[#trace + 1] = {predictor, inputs, pred}
  return pred
end

-- The LM and adapter a call uses: its options', else the predictor's, else the
-- configured ones (the chat adapter by default); no LM anywhere is a misuse.
local function lm_and_adapter(self, options)
  local lm = options.lm or self.lm or settings.get("lm")
  if lm == nil then
    check.misuse("tide.Predict: no LM: pass lm = ..., or tide.configure{lm = ...}")
  end
  return lm, options.adapter or self.adapter or settings.get("adapter") or chat
end

--- p(inputs [, opts]) or p{inputs..., lm = , config = , demos = } → Prediction
function Predict:__call(args, opts)
  local inputs, options = split_call(self, args, opts)
  local lm, adapter = lm_and_adapter(self, options)
  -- a call without options hands the adapter the predictor: it has the fields asked for
  local c = options == EMPTY and self or call_options(self, options)
  if callbacks.on then   -- the one test a call pays when no callback is configured
    local list = callbacks.list(options.callbacks, "predictor")
    if list then
      local name = self.inner_name and "ChainOfThought" or "Predict"
      local call = callbacks.entered(list, "module", name, self, inputs)
      if call == nil then   -- the main flow
        return callbacks.run(list, "module", name, self, inputs, Predict.respond, self, lm, adapter, inputs, c)
      end
      return Predict.respond(self, lm, adapter, inputs, c, call)
    end
  end
  return Predict.respond(self, lm, adapter, inputs, c)
end

--- The answer of a call whose LM, adapter and options are known (call: the
-- callbacks' call, closed once it is answered).
function Predict.respond(self, lm, adapter, inputs, c, call)
  local trace = settings.get("compile_trace")
  if call then
    if trace then return traced(trace, self, inputs, answer_heard(self, lm, adapter, inputs, c, call)) end
    return answer_heard(self, lm, adapter, inputs, c, call)
  end
  if trace then return traced(trace, self, inputs, answer(self.signature, lm, adapter, inputs, c, self.tool_loop)) end
  return answer(self.signature, lm, adapter, inputs, c, self.tool_loop)
end

--- for ev in p:stream(inputs [, opts]) do ... end — the output fields' text as it
-- arrives, {field = name, chunk = text}, then {prediction = ...}; inputs and
-- options as for a call (tide.adapters.field_stream).  With tools, each model
-- turn streams and {status = "tool_call" | "tool_result", ...} events come
-- between them (tide.tools.loop's stream).
function Predict:stream(args, opts)
  local inputs, options = split_call(self, args, opts)
  local lm, adapter = lm_and_adapter(self, options)
  local c = options == EMPTY and self or call_options(self, options)
  if self.tool_loop then   -- each turn streamed, the calls' status between them
    return tools.stream(lm, adapter, self.signature, inputs, c, self.tool_loop)
  end
  return require("tide.adapters.field_stream").stream(self.signature, lm, adapter, inputs, c)
end

--- The predictors of this module: itself, named as DSPy names it: "self" for a
-- Predict, "predict" for a ChainOfThought (DSPy's is a module holding a Predict
-- of that name).
function Predict:named_predictors()
  return {{self.inner_name or "self", self}}
end

--- p:save(path) / p:load(path): the predictor's demos and signature text in DSPy's
-- JSON state format (tide.state).
function Predict:save(path)
  require("tide.state").save(self, path)
end

function Predict:load(path)
  return require("tide.state").load(self, path)
end

function Predict:set_lm(lm)
  self.lm = lm
end

local REASONING_PREFIX = "Reasoning: Let's think step by step in order to"

--- tide.ChainOfThought(signature [, opts]): Predict with a `reasoning` output
-- before the others.
function M.chain_of_thought(sig, opts)
  local p = M.new(sig, opts)
  p.signature = p.signature:prepend("reasoning", {type = "str", desc = "${reasoning}"}, "output")
  -- DSPy's prefix for the field (saved programs carry it); the new signature's own field
  p.signature.outputs[1].prefix = REASONING_PREFIX
  p.inner_name = "predict"
  return p
end

function M.is_predict(v)
  return getmetatable(v) == Predict
end

return M
