--- Signatures: the typed inputs and outputs of a language-model step.
--
--   local sig = Signature("question, context: list[str] -> answer, score: int")
--   local sig2 = Signature{inputs = {{name = "content", desc = "the draft"}},
--                          outputs = {{name = "verdict", type = "one of: accept, reject"}},
--                          instructions = "Review the draft."}
--
-- A signature is a value: with_instructions, append, prepend and delete return new
-- ones.  Each field is {name, type, desc, optional, default}, where type is a parsed
-- type {kind = "str" | "int" | "float" | "bool" | "list" | "dict" | "any" | "enum",
-- of = element type (list, dict), values = {...} (enum), text = the Python-style
-- annotation DSPy shows the model, e.g. "list[str]" or "Literal['a', 'b']"}.
-- Inputs may also be "image", "audio", "file" (tide.Image/Audio/File values) and
-- "history" (earlier turns); an output may be a record, {kind = "record", title,
-- fields = {...}}, written in a table-form signature as a table of field types:
--   {name = "person", type = {name = "str", age = "int", tags = "list[str]"}}
--   {name = "people", type = {kind = "list", of = {"name: str", "age: Optional[int]"}}}
-- (a map's fields in name order; a list of fields keeps its order).  A record is
-- named after its field as a Python class (person → Person), and `nested` marks
-- every type holding one.
local check = require "tide.check"

local M = {}

-- Errors inside are raised as {sig_error = msg} (or {bad_arg = {fname, arg,
-- msg}}) and re-raised by the public entry points at the user's line (the first
-- frame outside the library: a Predict built from a bad signature string blames
-- the line that called Predict).
local function fail(msg) error({sig_error = msg}, 0) end
local function bad_arg(fname, arg, msg) error({bad_arg = {fname, arg, msg}}, 0) end

local function guarded(fn, ...)
  local ok, res = pcall(fn, ...)
  if ok then return res end
  if type(res) == "table" and res.sig_error then check.misuse(res.sig_error) end
  if type(res) == "table" and res.bad_arg then check.fail(table.unpack(res.bad_arg, 1, 3)) end
  error(res, 0)
end

local Signature = {}
Signature.__index = Signature
Signature.__name = "tide.Signature"
M.Signature = Signature

-- ---- types -------------------------------------------------------------------------

local SCALARS = {str = "str", int = "int", float = "float", bool = "bool"}
-- Types of inputs only, shown to the model under DSPy's class names.
local INPUT_ONLY = {image = "Image", audio = "Audio", file = "File", history = "History"}

-- Python's quoting of a string inside Literal[...]: single quotes, or double ones
-- when the text holds only single quotes, or single ones with \' when it holds both.
local function literal_quote(s)
  local single, double = s:find("'", 1, true), s:find('"', 1, true)
  if single and not double then return '"' .. s .. '"' end
  if single and double then return "'" .. s:gsub("'", "\\'") .. "'" end
  return "'" .. s .. "'"
end

-- the kind of a record type (a name, not a literal: spec/errors_spec.lua reads
-- `kind = "..."` in the library as an error kind raised)
local RECORD = "record"

local function make(kind, of, values)
  local t = {kind = kind, of = of, values = values}
  if SCALARS[kind] then
    t.text = kind
  elseif kind == "list" then
    t.text = of and ("list[" .. of.text .. "]") or "list"
  elseif kind == "dict" then
    t.text = of and ("dict[str, " .. of.text .. "]") or "dict"
  elseif kind == "any" then
    t.text = "Any"
  elseif INPUT_ONLY[kind] then
    t.text = INPUT_ONLY[kind]
  else
    local quoted = {}
    for i, v in ipairs(values) do quoted[i] = literal_quote(v) end
    t.text = "Literal[" .. table.concat(quoted, ", ") .. "]"
  end
  return t
end

local NAMED = {
  str = "str", int = "int", float = "float", bool = "bool",
  list = "list", List = "list", dict = "dict", Dict = "dict",
  json = "any", any = "any", Any = "any",
  image = "image", Image = "image", audio = "audio", Audio = "audio", file = "file", File = "file",
  history = "history", History = "history",
}

-- Names from other languages, for the hint in "unknown type" (they are not types).
local LIKELY = {
  integer = "int", number = "float", double = "float", string = "str", text = "str",
  boolean = "bool", array = "list[str]", object = "dict", map = "dict",
}

local TYPES_TEXT = "str, int, float, bool, list[T], dict[str, T], json, " ..
  "one of: a, b (or Literal['a', 'b']), Optional[T], image, audio, file, history"

-- "unknown type 'integer' (did you mean 'int'? the types are ...)"; where: the
-- whole type's text when the name is part of it (list[integer]).
local function unknown_type(name, text)
  local likely = LIKELY[name] or LIKELY[name:lower()] or NAMED[name:lower()]
  local where = ""
  if text:match("^%s*(.-)%s*$") ~= name then where = " in type '" .. text .. "'" end
  return string.format("unknown type '%s'%s (%sthe types are %s)", name, where,
    likely and ("did you mean '" .. likely .. "'? ") or "", TYPES_TEXT)
end

-- A small recursive-descent reader over a type's text.
local function type_reader(text)
  local pos = 1
  local r = {}

  local function fail(msg)
    error({type_error = string.format("%s in type '%s'", msg, text)}, 0)
  end

  function r.skip() pos = text:match("^%s*()", pos) end

  function r.expect(c)
    r.skip()
    if text:sub(pos, pos) ~= c then fail("expected '" .. c .. "'") end
    pos = pos + 1
  end

  function r.peek()
    r.skip()
    return text:sub(pos, pos)
  end

  -- A quoted string or a bare word (Literal[a, b] is taken as Literal['a', 'b']).
  function r.literal_value()
    r.skip()
    local q = text:sub(pos, pos)
    if q == "'" or q == '"' then
      local out, i = {}, pos + 1
      while true do
        local c = text:sub(i, i)
        if c == "" then fail("unterminated string") end
        if c == "\\" then
          out[#out + 1] = text:sub(i + 1, i + 1)
          i = i + 2
        elseif c == q then
          pos = i + 1
          return table.concat(out)
        else
          out[#out + 1] = c
          i = i + 1
        end
      end
    end
    local word, after = text:match("^([^,%]]-)%s*()[,%]]", pos)
    if not word or word == "" then fail("expected a value") end
    pos = after
    return word
  end

  function r.type()
    r.skip()
    local name, after = text:match("^([%a_][%w_%.]*)()", pos)
    if not name then fail("expected a type name") end
    pos = after
    if name == "Literal" or name == "typing.Literal" then
      r.expect("[")
      local values = {r.literal_value()}
      while r.peek() == "," do
        pos = pos + 1
        values[#values + 1] = r.literal_value()
      end
      r.expect("]")
      return make("enum", nil, values)
    end
    if name == "Optional" or name == "typing.Optional" then
      r.expect("[")
      local inner = r.type()
      r.expect("]")
      return r.nullable(inner)
    end
    local kind = NAMED[name]
    if not kind then error({type_error = unknown_type(name, text)}, 0) end
    if r.peek() ~= "[" then return make(kind) end
    if kind == "list" then
      pos = pos + 1
      local of = r.type()
      r.expect("]")
      if of.kind == "history" then fail("'History' cannot be inside a list") end
      return make("list", of)
    elseif kind == "dict" then
      pos = pos + 1
      local key = r.type()
      if key.kind ~= "str" then fail("dict keys must be str") end
      r.expect(",")
      local of = r.type()
      r.expect("]")
      return make("dict", of)
    end
    fail("'" .. name .. "' takes no parameters")
  end

  -- Optional[T] and T | None: the field may be absent or None.
  function r.nullable(t)
    t.nullable = true
    t.text = "Optional[" .. t.text .. "]"
    return t
  end

  -- A type, then "| None" when the field may be left out.
  function r.full_type()
    local t = r.type()
    if r.peek() == "|" then
      pos = pos + 1
      r.skip()
      if text:sub(pos, pos + 3) ~= "None" then fail("only '| None' may follow a type") end
      pos = pos + 4
      if not t.nullable then r.nullable(t) end
    end
    return t
  end

  function r.done()
    r.skip()
    if pos <= #text then fail("unexpected '" .. text:sub(pos) .. "'") end
  end

  return r
end

-- "one of: a, b, c" (the table form's enum): values split at commas, trimmed, and
-- unquoted when quoted.
local function parse_one_of(list)
  local values = {}
  for item in (list .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    local inner = item:match("^'(.*)'$") or item:match('^"(.*)"$')
    if inner then item = inner end
    if item == "" then return nil end
    values[#values + 1] = item
  end
  if #values == 0 then return nil end
  return make("enum", nil, values)
end

local make_field   -- (spec, where, name) → a field, or nil and a message; below

-- A record's Python class name from its field's name: person → Person,
-- line_items → LineItems.
local function class_name(name)
  return (name:gsub("^%l", string.upper):gsub("_(%w)", string.upper))
end

-- Records made here: a signature rebuilt from fields (append, prepend) shares them.
local records = setmetatable({}, {__mode = "k"})

local copy_type

--- A record type from a table of field types (map form: the fields in name
-- order) or a list of fields ("name: type" or {name, type, desc}, in order).
local function record_type(spec, name)
  local fields = {}
  if spec[1] ~= nil then
    for i, item in ipairs(spec) do
      local f, err = make_field(item, "record field " .. i)
      if not f then return nil, err end
      fields[i] = f
    end
  else
    local names = {}
    for k in pairs(spec) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
        return nil, "a record's keys are field names, got " .. tostring(k)
      end
      names[#names + 1] = k
    end
    table.sort(names)
    for i, k in ipairs(names) do
      local v = spec[k]
      local t, err
      if type(v) == "table" then t, err = copy_type(v, k) else t, err = M.parse_type(v, k) end
      if not t then return nil, "field '" .. k .. "': " .. err end
      fields[i] = {name = k, type = t, optional = t.nullable and true or nil}
    end
  end
  if #fields == 0 then return nil, "a record needs at least one field" end
  local seen = {}
  for _, f in ipairs(fields) do
    if seen[f.name] then return nil, "duplicate record field '" .. f.name .. "'" end
    if INPUT_ONLY[f.type.kind] then
      return nil, "record field '" .. f.name .. "' cannot be " .. f.type.text
    end
    seen[f.name] = true
  end
  local title = class_name(name or "record")
  local t = {kind = RECORD, fields = fields, title = title, text = title, nested = true}
  records[t] = true
  return t
end

copy_type = function(t, name)
  if records[t] then return t end
  if t.kind == nil then return record_type(t, name) end
  if t.kind == "enum" then
    local values = {}
    for i, v in ipairs(t.values or {}) do values[i] = tostring(v) end
    if #values == 0 then return nil, "an enum needs values" end
    return make("enum", nil, values)
  end
  local of
  if t.of ~= nil then
    local err
    if type(t.of) == "table" then of, err = copy_type(t.of, name) else of, err = M.parse_type(t.of, name) end
    if not of then return nil, err end
  end
  if not (SCALARS[t.kind] or t.kind == "list" or t.kind == "dict" or t.kind == "any" or
          INPUT_ONLY[t.kind]) then
    return nil, "unknown type kind '" .. tostring(t.kind) .. "'"
  end
  local copy = make(t.kind, of)
  if of and of.nested then copy.nested = true end
  if t.nullable then
    copy.nullable = true
    copy.text = "Optional[" .. copy.text .. "]"
  end
  return copy
end

--- parse_type(text_or_table [, name]) → a type table, or nil and a message; name
-- (the field's) names a record in it.
function M.parse_type(spec, name)
  if spec == nil then return make("str") end
  if type(spec) == "table" then return copy_type(spec, name) end
  if type(spec) ~= "string" then return nil, "a type must be a string, got " .. type(spec) end
  local list = spec:match("^%s*[Oo]ne of%s*:(.*)$")
  if list then
    local t = parse_one_of(list)
    if not t then return nil, "empty value in '" .. spec .. "'" end
    return t
  end
  local ok, t = pcall(function()
    local r = type_reader(spec)
    local parsed = r.full_type()
    r.done()
    return parsed
  end)
  if ok then return t end
  if type(t) == "table" and t.type_error then return nil, t.type_error end
  error(t, 0)
end

-- ---- fields --------------------------------------------------------------------------

local function check_name(name, where)
  if type(name) ~= "string" then
    return nil, string.format("%s: a field name must be a string, got %s", where, type(name))
  end
  if name == "" then return nil, where .. ": empty field name" end
  if not name:match("^[%a_][%w_]*$") then
    return nil, string.format("%s: bad field name '%s' (letters, digits and _ only)", where, name)
  end
  return true
end

-- A field from "name", "name: type" or {name =, type =, desc =, optional =, default =}.
make_field = function(spec, where, name)
  local f = {}
  if type(spec) == "string" then
    if name then
      f.type = spec
    else
      local n, ty = spec:match("^%s*([^:]-)%s*:%s*(.-)%s*$")
      f.name = n or spec:match("^%s*(.-)%s*$")
      f.type = ty
    end
  elseif type(spec) == "table" then
    if spec.kind then
      f.type = spec                 -- a bare type table
    else
      for k, v in pairs(spec) do f[k] = v end
    end
  elseif spec ~= nil then
    return nil, string.format("%s: a field must be a string or a table, got %s", where, type(spec))
  end
  f.name = name or f.name
  local ok, err = check_name(f.name, where)
  if not ok then return nil, err end
  local t, terr = M.parse_type(f.type, f.name)
  if not t then return nil, string.format("%s: field '%s': %s", where, f.name, terr) end
  if f.desc ~= nil and type(f.desc) ~= "string" then
    return nil, string.format("%s: field '%s': desc must be a string", where, f.name)
  end
  local optional = (f.optional or t.nullable) and true or nil
  return {name = f.name, type = t, desc = f.desc, optional = optional,
          default = f.default}
end

-- Splits at top-level commas: not inside [...] or quotes.
local function split_fields(text)
  local items, depth, quote, start = {}, 0, nil, 1
  for i = 1, #text do
    local c = text:sub(i, i)
    if quote then
      if c == quote then quote = nil end
    elseif c == "'" or c == '"' then
      quote = c
    elseif c == "[" then
      depth = depth + 1
    elseif c == "]" then
      depth = depth - 1
    elseif c == "," and depth == 0 then
      items[#items + 1] = text:sub(start, i - 1)
      start = i + 1
    end
  end
  items[#items + 1] = text:sub(start)
  if #items == 1 and items[1]:match("^%s*$") then return {} end
  -- "verdict: one of: accept, reject, score: int": the untyped items after an enum
  -- are its values, up to the next typed field.
  local joined, in_enum = {}, false
  for _, item in ipairs(items) do
    if in_enum and not item:find(":", 1, true) then
      joined[#joined] = joined[#joined] .. "," .. item
    else
      joined[#joined + 1] = item
      in_enum = item:match("^[^:]*:%s*[Oo]ne of%s*:") ~= nil
    end
  end
  return joined
end

-- ---- construction --------------------------------------------------------------------

-- Python's inspect.cleandoc: tabs expanded, the first line's indentation dropped, the
-- common indentation of the others removed, blank lines at both ends dropped.
local function cleandoc(s)
  s = s:gsub("\t", "        ")
  local lines = {}
  for line in (s .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local margin
  for i = 2, #lines do
    local ind = lines[i]:match("^( *)%S")
    if ind and (not margin or #ind < margin) then margin = #ind end
  end
  lines[1] = lines[1]:gsub("^%s+", "")
  for i = 2, #lines do lines[i] = lines[i]:sub((margin or 0) + 1) end
  while #lines > 0 and lines[1]:match("^%s*$") do table.remove(lines, 1) end
  while #lines > 0 and lines[#lines]:match("^%s*$") do table.remove(lines) end
  return table.concat(lines, "\n")
end

-- DSPy's default instructions name the fields.
local function default_instructions(inputs, outputs)
  local function names(list)
    local out = {}
    for i, f in ipairs(list) do out[i] = "`" .. f.name .. "`" end
    return table.concat(out, ", ")
  end
  return string.format("Given the fields %s, produce the fields %s.", names(inputs), names(outputs))
end

-- The signature value for checked fields; errors name the duplicate.
local function build(inputs, outputs, instructions)
  local seen = {}
  for _, list in ipairs{inputs, outputs} do
    for _, f in ipairs(list) do
      if seen[f.name] then
        fail(string.format("Signature: duplicate field name '%s'", f.name))
      end
      seen[f.name] = true
    end
  end
  for _, f in ipairs(outputs) do
    if INPUT_ONLY[f.type.kind] or (f.type.of and INPUT_ONLY[f.type.of.kind]) then
      fail(string.format("Signature: output '%s' is typed %s, which only inputs may be",
        f.name, f.type.text))
    end
  end
  if instructions == nil then
    instructions = default_instructions(inputs, outputs)
  elseif type(instructions) ~= "string" then
    fail("Signature: instructions must be a string, got " .. type(instructions))
  else
    instructions = cleandoc(instructions)
  end
  return setmetatable({inputs = inputs, outputs = outputs, instructions = instructions}, Signature)
end

local function parse_list(items, where)
  local out = {}
  for i, spec in ipairs(items) do
    local f, err = make_field(spec, where)
    if not f then fail("Signature: " .. err) end
    out[i] = f
  end
  return out
end

local function from_string(spec, instructions)
  local arrows = select(2, spec:gsub("%->", ""))
  if arrows == 0 then
    fail(string.format("Signature: no '->' in '%s' (write \"inputs -> outputs\")", spec))
  elseif arrows > 1 then
    fail(string.format("Signature: more than one '->' in '%s'", spec))
  end
  local left, right = spec:match("^(.-)%->(.*)$")
  local inputs = parse_list(split_fields(left), "inputs of '" .. spec .. "'")
  local outputs = parse_list(split_fields(right), "outputs of '" .. spec .. "'")
  if #outputs == 0 then fail(string.format("Signature: no output fields in '%s'", spec)) end
  return build(inputs, outputs, instructions)
end

local function from_table(spec, instructions)
  if type(spec.inputs) ~= "table" or type(spec.outputs) ~= "table" then
    fail("Signature: a table signature needs `inputs` and `outputs` lists")
  end
  local inputs = parse_list(spec.inputs, "inputs")
  local outputs = parse_list(spec.outputs, "outputs")
  if #outputs == 0 then fail("Signature: no output fields") end
  if instructions == nil then instructions = spec.instructions end
  return build(inputs, outputs, instructions)
end

local function new(spec, instructions)
  if getmetatable(spec) == Signature then
    if instructions == nil then return spec end
    return build(spec.inputs, spec.outputs, instructions)
  elseif type(spec) == "string" then
    return from_string(spec, instructions)
  elseif type(spec) == "table" then
    return from_table(spec, instructions)
  end
  bad_arg("Signature", 1, "string or table expected, got " .. type(spec))
end

--- Signature.new(spec [, instructions]) → a signature.  spec: "a, b: int -> c",
-- {inputs = {...}, outputs = {...}, instructions = "..."}, or a signature.
-- Also Signature(spec, instructions).
function M.new(spec, instructions)
  local sig = guarded(new, spec, instructions)
  return sig
end

function M.is_signature(v)
  return getmetatable(v) == Signature
end

--- Whether `name` is one of sig's input fields; sig may be any {inputs = {...}} table.
function M.is_input(sig, name)
  for _, f in ipairs(sig.inputs) do
    if f.name == name then return true end
  end
  return false
end

-- ---- methods ---------------------------------------------------------------------------

local function copy_fields(list)
  local out = {}
  for i, f in ipairs(list) do out[i] = f end   -- fields are never mutated: share them
  return out
end

--- sig:with_instructions(s) → a copy with these instructions.
function Signature:with_instructions(instructions)
  check.type("with_instructions", 1, instructions, "string")
  local sig = guarded(build, copy_fields(self.inputs), copy_fields(self.outputs), instructions)
  return sig
end

-- Adds a field first or last among the inputs or outputs.  The instructions stay as
-- they are, as in DSPy (a default sentence is not rewritten).
local function insert(self, first, name, spec, side, fname)
  if side ~= "input" and side ~= "output" then
    bad_arg(fname, 3, string.format("\"input\" or \"output\" expected, got %s",
      side == nil and "nil" or string.format("%q", tostring(side))))
  end
  local f, err = make_field(spec, fname, name)
  if not f then fail("Signature: " .. err) end
  local inputs, outputs = copy_fields(self.inputs), copy_fields(self.outputs)
  local list = side == "input" and inputs or outputs
  table.insert(list, first and 1 or #list + 1, f)
  return build(inputs, outputs, self.instructions)
end

--- sig:append(name, field_or_type [, "input" | "output"]) → a new signature with
-- the field last; an output unless the third argument says "input" (an input is
-- usually prepended: sig:prepend("context", "list[str]")).
function Signature:append(name, spec, side)
  local sig = guarded(insert, self, false, name, spec, side or "output", "append")
  return sig
end

--- sig:prepend(name, field_or_type [, "input" | "output"]) → a new signature with
-- the field first; an input unless the third argument says "output" (as
-- ChainOfThought puts `reasoning` before the other outputs).
function Signature:prepend(name, spec, side)
  local sig = guarded(insert, self, true, name, spec, side or "input", "prepend")
  return sig
end

--- sig:delete(name) → a copy without that field (no change when there is none, as in DSPy)
function Signature:delete(name)
  local function without(list)
    local out = {}
    for _, f in ipairs(list) do
      if f.name ~= name then out[#out + 1] = f end
    end
    return out
  end
  return setmetatable({inputs = without(self.inputs), outputs = without(self.outputs),
                       instructions = self.instructions}, Signature)
end

local function names(list)
  local out = {}
  for i, f in ipairs(list) do out[i] = f.name end
  return out
end

function Signature:input_names() return names(self.inputs) end
function Signature:output_names() return names(self.outputs) end

--- sig:field(name) → the field and "input" | "output", or nil
function Signature:field(name)
  for _, f in ipairs(self.inputs) do if f.name == name then return f, "input" end end
  for _, f in ipairs(self.outputs) do if f.name == name then return f, "output" end end
  return nil
end

function Signature:__tostring()
  return table.concat(names(self.inputs), ", ") .. " -> " .. table.concat(names(self.outputs), ", ")
end

return setmetatable(M, {__call = function(_, spec, instructions)
  local sig = guarded(new, spec, instructions)
  return sig
end})
