--- Saved programs in DSPy's JSON state format.
--
--   program:save("qa.json")     -- Predict, ChainOfThought or a Module
--   again:load("qa.json")       -- the same structure, built anew
--
-- The file holds one key per named predictor, named as DSPy names them ("self"
-- for a lone Predict, "predict" for a lone ChainOfThought, "technical.predict"
-- for one inside a module), each
--   {"traces": [], "train": [], "demos": [...], "lm": null,
--    "signature": {"instructions": "...", "fields": [{"prefix": "Question:", "description": "${question}"}]}}
-- and "metadata": {"dependency_versions": {...}}.  Fields are listed inputs first, as
-- DSPy lists them; the file does not name them, so loading matches them by position.
-- An LM is never written nor read: its URL and key stay out of files, and a file
-- cannot point a program at another server.
local json = require "tide.json"
local check = require "tide.check"
local core = require "tide.core"
local prediction = require "tide.prediction"

local M = {}

--- DSPy's default prefix for a field: "question" → "Question:", "some_field" →
-- "Some Field:", "camelCase" → "Camel Case:" (words already upper case kept).
function M.infer_prefix(name)
  local s = name:gsub("(.)(%u%l+)", "%1_%2"):gsub("([%l%d])(%u)", "%1_%2")
  local words = {}
  for word in s:gmatch("[^_]+") do
    if word:upper() == word then
      words[#words + 1] = word
    else
      words[#words + 1] = word:sub(1, 1):upper() .. word:sub(2):lower()
    end
  end
  return table.concat(words, " ") .. ":"
end

-- ---- writing ----------------------------------------------------------------------

-- Tables to be written as JSON arrays even when empty (cjson 2.1 writes {} for them).
local arrays = setmetatable({}, {__mode = "k"})
local function array(t)
  arrays[t] = true
  return t
end

local function is_sequence(t)
  if arrays[t] then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

--- JSON text of v, indented by two spaces per level as DSPy's files are; keys
-- sorted, so that a program saved twice gives the same file.
local function encode(v, indent, out)
  if type(v) ~= "table" then
    out[#out + 1] = json.encode(v)
    return
  end
  local pad = "\n" .. string.rep("  ", indent + 1)
  if is_sequence(v) then
    if #v == 0 then out[#out + 1] = "[]" return end
    out[#out + 1] = "["
    for i, x in ipairs(v) do
      out[#out + 1] = (i > 1 and "," or "") .. pad
      encode(x, indent + 1, out)
    end
    out[#out + 1] = "\n" .. string.rep("  ", indent) .. "]"
    return
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  if #keys == 0 then out[#out + 1] = "{}" return end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    out[#out + 1] = (i > 1 and "," or "") .. pad .. json.encode(k) .. ": "
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    encode(x, indent + 1, out)
  end
  out[#out + 1] = "\n" .. string.rep("  ", indent) .. "}"
end

--- A demo as plain fields (an Example, a Prediction or a table), `augmented` kept;
-- a Prediction's other samples (`completions`) are not the demo's.
local function plain_demo(demo)
  local out = {}
  local skip = prediction.is_prediction(demo) and "completions" or nil
  for k, v in pairs(demo) do
    if type(k) == "string" and k ~= skip and type(v) ~= "function" then out[k] = v end
  end
  return out
end

local function signature_state(sig)
  local fields = array{}
  for _, list in ipairs{sig.inputs, sig.outputs} do
    for _, f in ipairs(list) do
      fields[#fields + 1] = {prefix = f.prefix or M.infer_prefix(f.name),
                             description = f.desc or ("${" .. f.name .. "}")}
    end
  end
  return {instructions = sig.instructions, fields = fields}
end

--- One predictor's state, as DSPy's Predict.dump_state gives it.
function M.dump_predict(p)
  local demos = array{}
  for i, d in ipairs(p.demos or {}) do demos[i] = plain_demo(d) end
  return {traces = array{table.unpack(p.traces or {})}, train = array{table.unpack(p.train or {})},
          demos = demos, signature = signature_state(p.signature), lm = json.null}
end

--- The whole program's state: {name = predictor state, metadata = ...}.
function M.dump(program)
  local state = {}
  for _, np in ipairs(program:named_predictors()) do state[np[1]] = M.dump_predict(np[2]) end
  -- DSPy compares each version listed here with its own and warns on a mismatch, and
  -- fails on a name it does not know: so tide lists none and says its version apart.
  state.metadata = {dependency_versions = {}, tide = {version = core.version}}
  return state
end

local function write_file(path, text)
  local f, err = io.open(path, "w")
  if not f then error(core.error{kind = "io", message = "save: cannot open " .. err, path = path}, 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then error(core.error{kind = "io", message = "save: " .. tostring(werr), path = path}, 0) end
end

--- save(program, path): the program's state in DSPy's JSON format.
function M.save(program, path)
  check.type("save", 1, path, "string")
  local out = {}
  encode(M.dump(program), 0, out)
  out[#out + 1] = "\n"
  write_file(path, table.concat(out))
end

-- ---- reading ------------------------------------------------------------------------

local function bad(path, message)
  error(core.error{kind = "parse", message = "load: " .. path .. ": " .. message, path = path}, 0)
end

local function is_list(v)
  return type(v) == "table" and (next(v) == nil or v[1] ~= nil)
end

--- The predictor's signature with the file's instructions, prefixes and
-- descriptions; the field names and types stay the program's.
local function loaded_signature(sig, st, name, path)
  if type(st) ~= "table" or type(st.instructions) ~= "string" or not is_list(st.fields) then
    bad(path, string.format("predictor '%s': signature needs instructions and a fields list", name))
  end
  local n_in, n_out = #sig.inputs, #sig.outputs
  if #st.fields ~= n_in + n_out then
    bad(path, string.format("predictor '%s': the file has %d fields, the signature %s has %d",
      name, #st.fields, tostring(sig), n_in + n_out))
  end
  local function copy(list, offset)
    local out = {}
    for i, f in ipairs(list) do
      local saved = st.fields[offset + i]
      local g = {}
      for k, v in pairs(f) do g[k] = v end
      if type(saved.prefix) == "string" then g.prefix = saved.prefix end
      if type(saved.description) == "string" then g.desc = saved.description end
      out[i] = g
    end
    return out
  end
  return setmetatable({inputs = copy(sig.inputs, 0), outputs = copy(sig.outputs, n_in),
                       instructions = st.instructions}, getmetatable(sig))
end

local function list_of(st, key, name, path)
  local v = st[key]
  if v == nil or v == json.null then return {} end
  if not is_list(v) then bad(path, string.format("predictor '%s': %s must be a list", name, key)) end
  return v
end

--- Sets one predictor from its state (DSPy's Predict.load_state); `lm` is ignored.
function M.load_predict(p, st, name, path)
  if type(st) ~= "table" then bad(path, string.format("predictor '%s': state must be an object", name)) end
  local demos = list_of(st, "demos", name, path)
  for i, d in ipairs(demos) do
    if type(d) ~= "table" then bad(path, string.format("predictor '%s': demo %d is not an object", name, i)) end
  end
  local sig = loaded_signature(p.signature, st.signature, name, path)
  p.traces, p.train = list_of(st, "traces", name, path), list_of(st, "train", name, path)
  p.demos, p.signature = demos, sig
end

local function read_file(path)
  local f, err = io.open(path, "r")
  if not f then error(core.error{kind = "io", message = "load: cannot open " .. err, path = path}, 0) end
  local text = f:read("a")
  f:close()
  local ok, state = pcall(json.decode, text)
  if not ok or type(state) ~= "table" then bad(path, "not a JSON object") end
  return state
end

--- The names of a and not of b, sorted and quoted.
local function difference(a, b)
  local out = {}
  for k in pairs(a) do
    if b[k] == nil then out[#out + 1] = "'" .. k .. "'" end
  end
  table.sort(out)
  return table.concat(out, ", ")
end

--- load(program, path): the file's state into the program's predictors.  The file
-- must name exactly the program's predictors: nothing is set when it does not.
function M.load(program, path)
  check.type("load", 1, path, "string")
  local state = read_file(path)
  local mine, theirs = {}, {}
  for _, np in ipairs(program:named_predictors()) do mine[np[1]] = np[2] end
  for k, v in pairs(state) do
    if k ~= "metadata" then theirs[k] = v end
  end
  local missing, extra = difference(mine, theirs), difference(theirs, mine)
  if missing ~= "" or extra ~= "" then
    local parts = {}
    if missing ~= "" then parts[#parts + 1] = "no state for predictor " .. missing end
    if extra ~= "" then parts[#parts + 1] = "state for unknown predictor " .. extra end
    bad(path, table.concat(parts, "; ") .. " (a file saved for another program structure)")
  end
  -- every predictor checked first, then set: a bad file leaves the program as it was
  local staged = {}
  for name, p in pairs(mine) do
    local copy = setmetatable({signature = p.signature}, nil)
    M.load_predict(copy, theirs[name], name, path)
    staged[p] = copy
  end
  for p, copy in pairs(staged) do
    p.traces, p.train, p.demos, p.signature = copy.traces, copy.train, copy.demos, copy.signature
  end
  return program
end

return M
