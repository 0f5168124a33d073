--- The JSON adapter: the same system message as the chat adapter's, except that the
-- outputs are one JSON object; DSPy's JSONAdapter, message for message.
--
--   local msgs = json.format(sig, inputs, demos)
--   lm:call{messages = msgs, response_format = json.response_format(sig)}
--   local out = json.parse(sig, reply_text)
--
-- response_format asks the provider for structured output (OpenAI json_schema,
-- Gemini responseJsonSchema, an Anthropic forced tool).  parse takes the first JSON
-- object in the reply, inside a code fence or prose, and reads each field by type.
local pyjson = require "tide.adapters.pyjson"
local common = require "tide.adapters.common"
local coerce = require "tide.adapters.coerce"
local cjson = require "cjson"
local check = require "tide.check"

local M = {name = "json"}

-- An object of the outputs, in the signature's order, as Python's json.dumps(indent=2).
local function outputs_object(sig, value_of)
  local keys, map, hints = {}, {}, {}
  for i, f in ipairs(sig.outputs) do
    keys[i] = f.name
    map[f.name] = value_of(f)
    hints[f.name] = f.type
  end
  return pyjson.dumps(pyjson.ordered(keys, map), {indent = 2, hints = hints})
end

function M.structure(sig)
  local parts = {
    "All interactions will be structured in the following way, with the appropriate values filled in.",
    "Inputs will have the following structure:",
    common.placeholders(sig.inputs, "input"),
    "Outputs will be a JSON object with the following fields.",
    outputs_object(sig, function(f) return common.placeholder(f, "output") end),
  }
  return common.trim(table.concat(parts, "\n\n"))
end

function M.requirements(sig)
  local fields = {}
  for i, f in ipairs(sig.outputs) do fields[i] = "`" .. f.name .. "`" .. common.type_info(f) end
  return "Respond with a JSON object in the following order of fields: " ..
         table.concat(fields, ", then ") .. "."
end

function M.assistant(sig, values, missing)
  return outputs_object(sig, function(f)
    local v = values[f.name]
    if v == nil then return missing end
    return v
  end)
end

--- format(sig, inputs [, demos]) → the messages for a call
function M.format(sig, inputs, demos)
  return common.messages(M, sig, inputs, demos)
end

-- A strict-mode schema: every property required, no others.  Open-ended values
-- (dict, json/Any, a list of anything) have no strict schema: nil.
local function strict_schema(t)
  local k = t.kind
  if k == "list" then
    local items = t.of and strict_schema(t.of)
    return items and {type = "array", items = items}
  elseif k == "dict" or k == "any" then
    return nil
  elseif k == "record" then      -- inline, every field required, the optional ones nullable
    local properties, required = {}, {}
    for i, f in ipairs(t.fields) do
      local s = strict_schema(f.type)
      if not s then return nil end
      if f.optional or f.type.nullable then s = {anyOf = {s, {type = "null"}}} end
      properties[f.name], required[i] = s, f.name
    end
    return {type = "object", properties = properties, required = required,
            additionalProperties = false}
  end
  return common.schema(t)   -- a scalar or an enum: the same schema as pydantic's
end

--- response_format(sig) → {type = "json_schema", name, schema, strict = true} for
-- tide.LM; {type = "json_object"} when an output is an open-ended dict or JSON value,
-- which strict structured output cannot describe (DSPy falls back the same way).
function M.response_format(sig)
  local properties, required = {}, {}
  for i, f in ipairs(sig.outputs) do
    local s = strict_schema(f.type)
    if not s then return {type = "json_object"} end
    properties[f.name] = s
    required[i] = f.name
  end
  return {type = "json_schema", name = "outputs", strict = true,
          schema = {type = "object", properties = properties, required = required,
                    additionalProperties = false}}
end

--- call(lm, sig, inputs, opts) → the outputs of each reply; opts = {demos, config,
-- parse_retries} (see adapters.common.call).
function M.call(lm, sig, inputs, opts)
  return common.call(M, lm, sig, inputs, opts)
end

--- parse(sig, text) → {field = value}; raises a `parse` error (raw, found, missing,
-- adapter = "json") when there is no JSON object, a field is missing or a value is
-- not of its field's type.
function M.parse(sig, text)
  check.type("parse", 2, text, "string")
  local obj, why = coerce.first_object(text)
  if not obj then
    local missing = {}
    for i, f in ipairs(sig.outputs) do missing[i] = f.name end
    common.parse_error("json", text, why, {}, missing)
  end
  local values = {}
  for _, f in ipairs(sig.outputs) do
    local raw = obj[f.name]
    if raw == cjson.null and f.optional then raw = nil end   -- null: take the default
    if raw ~= nil then
      local v, err = coerce.value(raw, f.type, f.type.nested and f.name or nil)
      if v == nil then common.type_error("json", sig, text, f, raw, err, obj) end
      values[f.name] = v
    end
  end
  return common.complete("json", sig, text, values)
end

return M
