--- What the chat and JSON adapters share: the system message's field list and
-- objective, the user turns, the few-shot demos, value formatting and the parse
-- error.  Each piece writes the text DSPy's adapters write for the same signature,
-- so a prompt moves between the two unchanged.
--
-- An adapter is a table of functions:
--   format(sig, inputs, demos) → messages     parse(sig, text) → {field = value}
--   call(lm, sig, inputs, opts) → the outputs of each reply (format, the LM, parse,
--     and what to do when a reply does not parse; M.call is the usual one)
--   fallback(lm, sig, inputs, opts) (optional): M.call's last try after a reply
--     that does not parse
--   response_format(sig) (optional): the structured output to ask the LM for
-- and hands `messages` three more: structure(sig) (the middle of the system
-- message), requirements(sig) (the reminder closing the last user turn) and
-- assistant(sig, values, missing) (a demo's answer).
local cjson = require "cjson"
local core = require "tide.core"
local pyjson = require "tide.adapters.pyjson"
local check = require "tide.check"
local media = require "tide.media"

local M = {}

-- %s's bytes: space, \t, \n, \v, \f, \r.
local SPACE = {[32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true}

-- Not s:match("^%s*(.-)%s*$"): its lazy `.-` retries `%s*$` at every byte, which
-- is quadratic in a run of inner blanks (fuzz finding L3, spec/fuzz_regress_spec.lua)
-- and slow on every prompt, trimmed a few times per call (`make bench`).
local function trim(s)
  local i = s:find("%S")
  if i == nil then return "" end
  local j, byte = #s, string.byte
  while SPACE[byte(s, j)] do j = j - 1 end
  return s:sub(i, j)
end
M.trim = trim

-- DSPy gives a field with no description the placeholder "${name}".
local function description(f)
  if f.desc == nil or f.desc == "${" .. f.name .. "}" then return "" end
  return f.desc
end

local function is_none(v) return v == nil or v == cjson.null end

-- ---- types as DSPy shows them ------------------------------------------------------------

local EMPTY = pyjson.ordered({}, {})      -- `{}`: the schema of Any

-- pydantic's title of a field: Python's name.title() with "_" as " ".
local function field_title(name)
  local prev_letter = false
  return (name:gsub(".", function(c)
    local letter = c:match("%a") ~= nil
    local out = letter and (prev_letter and c:lower() or c:upper()) or (c == "_" and " " or c)
    prev_letter = letter
    return out
  end))
end

local model_schema

-- A model's field: its type's schema with pydantic's title (and description);
-- an optional one is anyOf [T, null] with default null, and leaves `required`.
local function property_schema(f, defs)
  local base = model_schema(f.type, defs)
  local s
  if f.optional or f.type.nullable then
    s = {anyOf = {base, {type = "null"}}, default = cjson.null}
  elseif base["$ref"] then
    s = {["$ref"] = base["$ref"]}    -- pydantic writes a model's field as the bare $ref
  else
    s = {}
    for k, v in pairs(base) do s[k] = v end
  end
  if not s["$ref"] then s.title = field_title(f.name) end
  if f.desc then s.description = f.desc end
  return s
end

-- The schema of t as a part of a pydantic model: each record once in defs
-- (by its class name), referred to by $ref.
model_schema = function(t, defs)
  if t.kind == "record" then
    if defs[t.title] == nil then
      defs[t.title] = false            -- being made
      local properties, required = {}, {}
      for _, f in ipairs(t.fields) do
        properties[f.name] = property_schema(f, defs)
        if not (f.optional or f.type.nullable) then required[#required + 1] = f.name end
      end
      local s = {type = "object", properties = properties, title = t.title}
      if #required > 0 then s.required = required end
      defs[t.title] = s
    end
    return {["$ref"] = "#/$defs/" .. t.title}
  elseif t.kind == "list" and t.of then
    return {type = "array", items = model_schema(t.of, defs)}
  elseif t.kind == "dict" and t.of and t.of.kind ~= "any" then
    return {type = "object", additionalProperties = model_schema(t.of, defs)}
  end
  return M.schema(t)
end

-- What pydantic's TypeAdapter(T).json_schema() gives a type holding records:
-- a record inline at the top, the records inside it under $defs.
local function nested_schema(t)
  local defs = {}
  local top = model_schema(t, defs)
  if t.kind == "record" then
    top = defs[t.title]
    defs[t.title] = nil
  end
  if t.nullable then top = {anyOf = {top, {type = "null"}}} end
  if next(defs) ~= nil then top["$defs"] = defs end
  return top
end

--- The JSON schema pydantic gives a type, as a table.
function M.schema(t)
  if t.nested then return nested_schema(t) end
  local k = t.kind
  if k == "str" then return {type = "string"}
  elseif k == "int" then return {type = "integer"}
  elseif k == "float" then return {type = "number"}
  elseif k == "bool" then return {type = "boolean"}
  elseif k == "enum" then return {type = "string", enum = t.values}
  elseif k == "list" then return {type = "array", items = t.of and M.schema(t.of) or EMPTY}
  elseif k == "dict" then
    if t.of == nil then return {type = "object"} end
    if t.of.kind == "any" then return {type = "object", additionalProperties = true} end
    return {type = "object", additionalProperties = M.schema(t.of)}
  end
  return EMPTY
end

-- DSPy writes a schema with "type" first and the other keys sorted, for the model's sake.
local function type_first(t)
  local keys = {}
  for key in pairs(t) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b)
    if a == "type" or b == "type" then return a == "type" and b ~= "type" end
    return a < b
  end)
  return keys
end

--- The placeholder of a field in the system message's structure, with the note on
-- what an output's value must be ("{score}        # note: ... a single int value").
function M.placeholder(f, side)
  local t, note = f.type, nil
  if side == "output" and t.kind ~= "str" then
    if t.kind == "bool" then
      note = "must be True or False"
    elseif t.kind == "int" or t.kind == "float" then
      note = "must be a single " .. t.kind .. " value"
    elseif t.kind == "enum" then
      note = "must exactly match (no extra characters) one of: " .. table.concat(t.values, "; ")
    else
      note = "must adhere to the JSON schema: " .. pyjson.dumps(M.schema(t), {key_order = type_first})
    end
  end
  local text = "{" .. f.name .. "}"
  if note then text = text .. string.rep(" ", 8) .. "# note: the value you produce " .. note end
  return text
end

--- " (must be formatted as a valid Python int)" for a field that is not str.
function M.type_info(f)
  if f.type.kind == "str" then return "" end
  return " (must be formatted as a valid Python " .. f.type.text .. ")"
end

-- ---- values --------------------------------------------------------------------------------

-- A list of texts for a str field: numbered «blobs», as DSPy shows a list of passages.
local function blob(s)
  s = pyjson.str(s)
  if not s:find("\n", 1, true) and not s:find("«", 1, true) and not s:find("»", 1, true) then
    return "«" .. s .. "»"
  end
  return "«««\n    " .. s:gsub("\n", "\n    ") .. "\n»»»"
end

--- A value as DSPy writes it into a message: text as is, numbers and booleans as
-- Python prints them, lists and dicts as JSON; a list for a str field as numbered items.
function M.value_text(f, v)
  if type(v) == "table" and getmetatable(v) == nil and f.type.kind == "str" and pyjson.is_list(v) then
    if #v == 0 then return "N/A" end
    if #v == 1 then return blob(v[1]) end
    local items = {}
    for i, item in ipairs(v) do items[i] = "[" .. i .. "] " .. blob(item) end
    return table.concat(items, "\n")
  end
  if type(v) == "table" and getmetatable(v) == nil then return pyjson.dumps(v, {type = f.type}) end
  return pyjson.str(v)
end

--- "[[ ## a ## ]]\nvalue" for each pair {field, value}, joined by blank lines.
function M.sections(pairs_list)
  local out = {}
  for i, p in ipairs(pairs_list) do
    out[i] = "[[ ## " .. p[1].name .. " ## ]]\n" .. M.value_text(p[1], p[2])
  end
  return trim(table.concat(out, "\n\n"))
end

-- ---- the system message ----------------------------------------------------------------------

local function field_list(fields)
  local lines = {}
  for i, f in ipairs(fields) do
    lines[i] = string.format("%d. `%s` (%s): %s", i, f.name, f.type.text, description(f))
  end
  return trim(table.concat(lines, "\n"))
end

--- "Your input fields are: ..." — the fields, their types and descriptions.
function M.field_description(sig)
  return "Your input fields are:\n" .. field_list(sig.inputs) .. "\n" ..
         "Your output fields are:\n" .. field_list(sig.outputs)
end

--- The placeholders of these fields as "[[ ## name ## ]]" sections.
function M.placeholders(fields, side)
  local list = {}
  for i, f in ipairs(fields) do list[i] = {f, M.placeholder(f, side)} end
  return M.sections(list)
end

-- Python's str.splitlines on the line breaks text uses.
local function lines_of(s)
  local out = {}
  if s == "" then return out end
  s = s:gsub("\r\n", "\n"):gsub("\r", "\n")
  if s:sub(-1) == "\n" then s = s:sub(1, -2) end
  for line in (s .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line end
  return out
end

--- "In adhering to this structure, your objective is: " and the instructions, each
-- line on its own indented line.
function M.task_description(sig)
  local parts = {""}
  for _, line in ipairs(lines_of(sig.instructions)) do
    parts[#parts + 1] = line:match("^%s*$") and "" or line   -- textwrap.dedent blanks them
  end
  return "In adhering to this structure, your objective is: " ..
         table.concat(parts, "\n" .. string.rep(" ", 8))
end

-- adapter → signature → {instructions, text}: the system message is the same for
-- every call of a predictor, so a fan-out formats it once (signatures are values;
-- the instructions are compared in case a caller rewrote them in place).
local system_cache = setmetatable({}, {__mode = "k"})

function M.system_message(adapter, sig)
  local by_sig = system_cache[adapter]
  if not by_sig then
    by_sig = setmetatable({}, {__mode = "k"})
    system_cache[adapter] = by_sig
  end
  local hit = by_sig[sig]
  if hit and hit.instructions == sig.instructions then return hit.text end
  local text = M.field_description(sig) .. "\n" .. adapter.structure(sig) .. "\n" ..
    M.task_description(sig)
  by_sig[sig] = {instructions = sig.instructions, text = text}
  return text
end

-- ---- user turns and demos ----------------------------------------------------------------------

local MEDIA_NAMES = {image = "tide.Image", audio = "tide.Audio", file = "tide.File"}

-- The content of a turn holding media: DSPy writes each media value as a
-- marked JSON blob and then splits the (stripped) text around it into content
-- parts; here the parts are made directly: the texts between the media as they
-- are, the text before the first trimmed at its start and the one after the
-- last at its end, empty texts left out.
local function parts_content(sections)
  local list, text = {}, {}
  local function flush()
    if #text > 0 then list[#list + 1] = table.concat(text) end
    text = {}
  end
  for i, s in ipairs(sections) do
    if i > 1 then text[#text + 1] = "\n\n" end
    if type(s) == "table" then       -- text and media values in turn
      for _, piece in ipairs(s) do
        if type(piece) == "string" then
          text[#text + 1] = piece
        else
          flush()
          list[#list + 1] = piece
        end
      end
    else
      text[#text + 1] = s
    end
  end
  flush()
  if type(list[1]) == "string" then list[1] = list[1]:gsub("^%s+", "") end
  if type(list[#list]) == "string" then list[#list] = list[#list]:gsub("%s+$", "") end
  local out = {}
  for _, part in ipairs(list) do
    if part ~= "" then out[#out + 1] = part end
  end
  return media.parts(out)
end

-- A list of media values, as DSPy writes one: the JSON list of their marked
-- blobs, split around each, so that the text keeps `["`, `", "` and `"]`.
local function media_list(f, header, list)
  local kind = f.type.of.kind
  if type(list) ~= "table" or not pyjson.is_list(list) then
    check.misuse(string.format("input '%s' is typed %s: pass a list of %s values, got %s",
      f.name, f.type.text, MEDIA_NAMES[kind], type(list)))
  end
  if #list == 0 then return header .. "[]" end
  local out = {header .. '["'}
  for i, v in ipairs(list) do
    if not media.is_media(v) or v.kind ~= kind then
      check.misuse(string.format("input '%s' is typed %s: item %d must be a %s value, got %s",
        f.name, f.type.text, i, MEDIA_NAMES[kind], media.is_media(v) and tostring(v) or type(v)))
    end
    out[#out + 1] = v
    out[#out + 1] = i < #list and '", "' or '"]'
  end
  return out
end

--- The user turn for these input values (those present), with a prefix, and the
-- output reminder when it is the request itself: a string, or a list of text
-- and media parts (tide.media.parts) when a value is a tide.Image/Audio/File.
function M.user_content(adapter, sig, values, prefix, main_request)
  local parts, has_media = {prefix or ""}, false
  for _, f in ipairs(sig.inputs) do
    local v = values[f.name]
    if v ~= nil then
      local header = "[[ ## " .. f.name .. " ## ]]\n"
      if media.is_media(v) then
        parts[#parts + 1] = {header, v}
        has_media = true
      elseif f.type.kind == "list" and f.type.of and MEDIA_NAMES[f.type.of.kind] then
        local section = media_list(f, header, v)
        parts[#parts + 1] = section
        has_media = has_media or type(section) == "table"
      elseif MEDIA_NAMES[f.type.kind] then
        check.misuse(string.format("input '%s' is typed %s: pass %s{path = ...} (or url =, " ..
          "bytes =), got %s", f.name, f.type.kind, MEDIA_NAMES[f.type.kind], type(v)))
      else
        parts[#parts + 1] = header .. M.value_text(f, v)
      end
    end
  end
  if main_request then parts[#parts + 1] = adapter.requirements(sig) end
  parts[#parts + 1] = ""
  if has_media then return parts_content(parts) end
  return trim(table.concat(parts, "\n\n"))
end

local INCOMPLETE_PREFIX =
  "This is an example of the task, though some input or output fields are not supplied."
local MISSING_IN_EXAMPLE = "Not supplied for this particular example. "
local MISSING_IN_HISTORY = "Not supplied for this conversation history message. "

--- The demos as user/assistant pairs: demos lacking some field come first, marked as
-- such, if they have at least one input and one output; the others are dropped.
function M.demo_messages(adapter, sig, demos)
  local complete, incomplete = {}, {}
  for _, demo in ipairs(demos or {}) do
    local all, has_in, has_out = true, false, false
    for _, f in ipairs(sig.inputs) do
      if is_none(demo[f.name]) then all = false end
      if demo[f.name] ~= nil then has_in = true end
    end
    for _, f in ipairs(sig.outputs) do
      if is_none(demo[f.name]) then all = false end
      if demo[f.name] ~= nil then has_out = true end
    end
    if all then
      complete[#complete + 1] = demo
    elseif has_in and has_out then
      incomplete[#incomplete + 1] = demo
    end
  end
  local messages = {}
  local function add(role, content) messages[#messages + 1] = {role = role, content = content} end
  for _, demo in ipairs(incomplete) do
    add("user", M.user_content(adapter, sig, demo, INCOMPLETE_PREFIX))
    add("assistant", adapter.assistant(sig, demo, MISSING_IN_EXAMPLE))
  end
  for _, demo in ipairs(complete) do
    add("user", M.user_content(adapter, sig, demo))
    add("assistant", adapter.assistant(sig, demo, MISSING_IN_HISTORY))
  end
  return messages
end

-- sig → sig without its history field (made once per signature)
local without_history = setmetatable({}, {__mode = "k"})

local function history_field(sig)
  for _, f in ipairs(sig.inputs) do
    if f.type.kind == "history" then return f end
  end
  return nil
end

-- The earlier turns a history input holds: a list of {inputs..., outputs...}
-- tables, or DSPy's shape {messages = that list}.
local function turns_of(f, v)
  if v == nil then return {} end
  if type(v) == "table" and getmetatable(v) == nil and type(v.messages) == "table" then
    v = v.messages
  end
  if type(v) ~= "table" or not pyjson.is_list(v) then
    check.misuse(string.format("input '%s' is typed history: pass a list of earlier turns, " ..
      "each {input = ..., output = ...} by field name, got %s", f.name, type(v)))
  end
  for i, turn in ipairs(v) do
    if type(turn) ~= "table" then
      check.misuse(string.format("input '%s': turn %d must be a table of field values, got %s",
        f.name, i, type(turn)))
    end
  end
  return v
end

--- The turns of a history input as DSPy's dspy.History writes them: each one a
-- user message of its inputs and an assistant message of its outputs (a
-- missing output written as None), between the demos and the request.
-- → the signature the request's own turn is written with (sig without the
-- history field; sig itself when it has none).
local function add_history(adapter, sig, inputs, messages)
  local f = history_field(sig)
  if f == nil then return sig end
  local rest = without_history[sig]
  if rest == nil or rest.instructions ~= sig.instructions then
    rest = sig:delete(f.name)
    without_history[sig] = rest
  end
  for _, turn in ipairs(turns_of(f, inputs[f.name])) do
    messages[#messages + 1] = {role = "user", content = M.user_content(adapter, rest, turn)}
    messages[#messages + 1] = {role = "assistant", content = adapter.assistant(rest, turn, nil)}
  end
  return rest
end

--- The whole request: system message, demos, the history's turns, then the inputs.
function M.messages(adapter, sig, inputs, demos)
  if getmetatable(sig) == nil or type(sig.inputs) ~= "table" then
    check.fail("format", 1, "signature expected, got " .. type(sig))
  end
  if type(inputs) ~= "table" then
    check.fail("format", 2, "table of inputs expected, got " .. type(inputs))
  end
  local messages = {{role = "system", content = M.system_message(adapter, sig)}}
  for _, m in ipairs(M.demo_messages(adapter, sig, demos)) do messages[#messages + 1] = m end
  local current = add_history(adapter, sig, inputs, messages)
  messages[#messages + 1] = {role = "user", content = M.user_content(adapter, current, inputs, "", true)}
  return messages
end

-- ---- parse results -----------------------------------------------------------------------------

--- Raises the typed parse error.
function M.parse_error(adapter_name, text, message, found, missing, extra)
  local err = {kind = "parse", message = adapter_name .. " adapter: " .. message, raw = text,
               found = found or {}, missing = missing or {}, adapter = adapter_name}
  for k, v in pairs(extra or {}) do err[k] = v end
  error(core.error(err), 0)
end

--- Raises the parse error for a value that is not of its field's type; `present`
-- says which outputs the reply had (name → a non-nil value).
function M.type_error(adapter_name, sig, text, f, value, why, present)
  local found, missing = {}, {}
  for _, g in ipairs(sig.outputs) do
    local list = present[g.name] ~= nil and found or missing
    list[#list + 1] = g.name
  end
  M.parse_error(adapter_name, text, string.format("field `%s` must be %s: %s", f.name,
    f.type.text, why), found, missing, {field = f.name, value = value})
end

--- Checks that every output was read: an optional field takes its default, a missing
-- required one raises the parse error naming what was found and what was not.
function M.complete(adapter_name, sig, text, values)
  local found, missing = {}, {}
  for _, f in ipairs(sig.outputs) do
    if values[f.name] ~= nil then
      found[#found + 1] = f.name
    elseif f.optional then
      values[f.name] = f.default
    else
      missing[#missing + 1] = f.name
    end
  end
  if #missing > 0 then
    M.parse_error(adapter_name, text, string.format("the reply lacks the field%s %s%s",
      #missing > 1 and "s" or "", table.concat(missing, ", "),
      #found > 0 and (" (found: " .. table.concat(found, ", ") .. ")") or " (found none)"),
      found, missing)
  end
  return values
end

-- ---- a call: format, ask, parse -------------------------------------------------------

local NO_CONFIG = {}   -- the config of every call that sets none: only ever read

--- The LM request for these messages: only the options that are set, since it
-- lives as long as the call.
local function request(adapter, sig, messages, config)
  local req = {messages = messages}
  if next(config) ~= nil then
    req.temperature, req.max_tokens = config.temperature, config.max_tokens
    req.n, req.rollout_id = config.n, config.rollout_id
  end
  if adapter.response_format then req.response_format = adapter.response_format(sig) end
  return req
end
M.request = request   -- a stream's (tide.adapters.field_stream)

local function texts_of(r)
  return r.texts or {r.text}
end

local function parse_all(adapter, sig, texts)
  local outputs = {}
  for i, text in ipairs(texts) do outputs[i] = adapter.parse(sig, text) end
  return outputs
end

--- ask_again(messages, text, err): appends a reply that did not parse (text)
-- and the user's turn that tells why (err, its `parse` error) and asks again:
-- a parse retry's, in a call and in the tool loop (tide.tools.loop).
function M.ask_again(messages, text, err)
  messages[#messages + 1] = {role = "assistant", content = text}
  messages[#messages + 1] = {role = "user", content = "Your answer could not be parsed: " ..
    tostring(err.message) .. "\nAnswer again, following the format exactly."}
end

--- After a reply that did not parse (err, from texts): the same adapter asked
-- again `retries` times, told what was wrong.  → pcall's results of the last parse.
local function retry_parse(adapter, lm, sig, messages, config, retries, err, texts)
  local ok, outputs = false, err
  while not ok and core.is_error(outputs, "parse") and retries > 0 do
    retries = retries - 1
    local feedback = {}
    for i, m in ipairs(messages) do feedback[i] = m end
    M.ask_again(feedback, outputs.raw or texts[1], outputs)
    local retry_config = {}
    for k, v in pairs(config) do retry_config[k] = v end
    retry_config.rollout_id = (config.rollout_id or 0) + retries + 1   -- not the cached answer
    texts = texts_of(lm:call(request(adapter, sig, feedback, retry_config)))
    ok, outputs = pcall(parse_all, adapter, sig, texts)
  end
  return ok, outputs
end

--- call(adapter, lm, sig, inputs, opts) → the outputs of every reply (one per
-- sample): what an adapter's `call` does.  opts = {demos, config, parse_retries,
-- fallback} (a Predict is such a table).  A reply that does not parse is asked
-- again opts.parse_retries times with the error fed back; then, unless
-- opts.fallback is false, the adapter's own fallback(lm, sig, inputs, opts), if
-- it has one, makes the last try (the chat adapter's: the JSON adapter).
-- Raises the last `parse` error.
function M.call(adapter, lm, sig, inputs, opts)
  -- No locals before the LM call: a call in flight keeps this frame (spec/
  -- memory_spec.lua bounds what it holds), and the messages are made again in
  -- the rare case that needs them twice.
  local r = lm:call(request(adapter, sig, adapter.format(sig, inputs, opts.demos),
    opts.config or NO_CONFIG))
  local texts = texts_of(r)
  local ok, outputs = pcall(parse_all, adapter, sig, texts)
  if ok then return outputs end
  ok, outputs = retry_parse(adapter, lm, sig, adapter.format(sig, inputs, opts.demos),
    opts.config or NO_CONFIG, opts.parse_retries or 0, outputs, texts)
  if ok then return outputs end
  if adapter.fallback and opts.fallback ~= false and core.is_error(outputs, "parse") then
    return adapter.fallback(lm, sig, inputs, opts)
  end
  error(outputs, 0)
end

return M
