--- Predict and ChainOfThought: a signature, an adapter and an LM make a function
-- from inputs to typed outputs.
--
--   local critic = tide.Predict("content, context -> score: int, feedback, approved: bool")
--   local r = critic{content = draft, context = "B2B outreach"}
--   print(r.score + 1, r.feedback, r.approved)
--
-- A call table holds the inputs, plus optionally `lm`, `config` ({temperature, n,
-- rollout_id, max_tokens}) and `demos` (few-shot examples) unless the signature
-- has inputs of those names.  A reply that does not parse can be retried with
-- the error fed back (parse_retries), then falls back to the JSON adapter once,
-- as DSPy does.
local core = require "tide.core"
local Signature = require "tide.signature"
local chat = require "tide.adapters.chat"
local json = require "tide.adapters.json"
local prediction = require "tide.prediction"
local settings = require "tide.settings"
local check = require "tide.check"

local M = {}

local Predict = {}
Predict.__index = Predict
Predict.__name = "tide.Predict"
M.Predict = Predict

local CALL_OPTIONS = {lm = true, config = true, demos = true}

local function as_signature(sig, instructions, fname)
  if type(sig) == "string" then return Signature.new(sig, instructions) end
  if type(sig) == "table" and sig.inputs and sig.outputs then
    if instructions then return sig:with_instructions(instructions) end
    return sig
  end
  check.fail(fname, 1, "signature or string expected, got " .. type(sig))
end

--- tide.Predict(signature [, opts]) — opts: lm, adapter, demos, config,
-- fallback (true: retry a failed chat parse with the JSON adapter), parse_retries (0).
function M.new(sig, opts)
  opts = opts or {}
  if type(opts) == "string" then opts = {instructions = opts} end
  local self = setmetatable({
    signature = as_signature(sig, opts.instructions, "Predict"),
    lm = opts.lm,
    adapter = opts.adapter,
    demos = opts.demos or {},
    config = opts.config or {},
    fallback = opts.fallback ~= false,
    parse_retries = opts.parse_retries or 0,
  }, Predict)
  return self
end

function Predict:__tostring()
  return "tide.Predict(" .. tostring(self.signature) .. ")"
end

--- Splits a call table into the signature's inputs and the call's options.  A
-- call without options (the usual one) uses its table as the inputs, uncopied:
-- an in-flight call keeps no second table.
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

local function split_call(self, args)
  if type(args) ~= "table" then
    check.misuse("tide.Predict: call with a table of inputs, got " .. type(args))
  end
  local sig = self.signature
  local inputs, options = args, EMPTY
  for k in pairs(CALL_OPTIONS) do
    if args[k] ~= nil and not is_input(sig, k) then
      inputs, options = {}, {}
      for key, v in pairs(args) do
        if CALL_OPTIONS[key] and not is_input(sig, key) then options[key] = v else inputs[key] = v end
      end
      break
    end
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

--- The LM request for these messages with this adapter: only the options that
-- are set, since it lives as long as the call.
local function request(adapter, sig, messages, config)
  local req = {messages = messages}
  if next(config) ~= nil then
    req.temperature, req.max_tokens = config.temperature, config.max_tokens
    req.n, req.rollout_id = config.n, config.rollout_id
  end
  if adapter.response_format then req.response_format = adapter.response_format(sig) end
  return req
end

local function texts_of(r)
  return r.texts or {r.text}
end

--- One LM call for these messages with this adapter; returns the replies' texts.
local function ask(lm, adapter, sig, messages, config)
  return texts_of(lm:call(request(adapter, sig, messages, config)))
end

local function parse_all(adapter, sig, texts)
  local outputs = {}
  for i, text in ipairs(texts) do outputs[i] = adapter.parse(sig, text) end
  return outputs
end

--- After a reply that did not parse (err): first the chosen adapter again, told
-- what was wrong (parse_retries), then the JSON adapter as the last resort, as in
-- DSPy.  → the outputs, or raises the last error.  Apart from the call so that an
-- in-flight call's frame stays small.
local function recover(self, c, err, texts)
  local lm, adapter, sig, config, messages = c.lm, c.adapter, c.sig, c.config, c.messages
  local ok, outputs = false, err
  local tries = self.parse_retries
  while not ok and core.is_error(outputs, "parse") and tries > 0 do
    tries = tries - 1
    local feedback = {}
    for i, m in ipairs(messages) do feedback[i] = m end
    feedback[#feedback + 1] = {role = "assistant", content = outputs.raw or texts[1]}
    feedback[#feedback + 1] = {role = "user", content =
      "Your answer could not be parsed: " .. tostring(outputs.message) ..
      "\nAnswer again, following the format exactly."}
    local retry_config = merged(config, {rollout_id = (config.rollout_id or 0) + tries + 1})
    texts = ask(lm, adapter, sig, feedback, retry_config)
    ok, outputs = pcall(parse_all, adapter, sig, texts)
  end
  if not ok and core.is_error(outputs, "parse") and self.fallback and adapter ~= json then
    texts = ask(lm, json, sig, json.format(sig, c.inputs, c.demos), config)
    ok, outputs = pcall(parse_all, json, sig, texts)
  end
  if not ok then error(outputs, 0) end
  return outputs
end

--- predictor{inputs..., lm = , config = , demos = } → Prediction
function Predict:__call(args)
  local inputs, options = split_call(self, args)
  local lm = options.lm or self.lm or settings.get("lm")
  if lm == nil then
    check.misuse("tide.Predict: no LM: pass lm = ..., or tide.configure{lm = ...}")
  end
  local adapter = self.adapter or settings.get("adapter") or chat
  local config = merged(self.config, options.config)
  local demos = options.demos or self.demos
  local sig = self.signature
  local messages = adapter.format(sig, inputs, demos)
  -- called here, not through ask(): one frame less on every in-flight call's stack
  local texts = texts_of(lm:call(request(adapter, sig, messages, config)))
  local ok, outputs = pcall(parse_all, adapter, sig, texts)
  if not ok then
    outputs = recover(self, {lm = lm, adapter = adapter, sig = sig, config = config,
      messages = messages, inputs = inputs, demos = demos}, outputs, texts)
  end
  return prediction.prediction(outputs[1], outputs)
end

--- The predictors of this module: itself.
function Predict:named_predictors()
  return {{"self", self}}
end

function Predict:set_lm(lm)
  self.lm = lm
end

--- tide.ChainOfThought(signature [, opts]): Predict with a `reasoning` output
-- before the others.
function M.chain_of_thought(sig, opts)
  local p = M.new(sig, opts)
  p.signature = p.signature:prepend("reasoning", {type = "str", desc = "${reasoning}"}, "output")
  return p
end

function M.is_predict(v)
  return getmetatable(v) == Predict
end

return M
