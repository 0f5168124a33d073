--- The chat adapter: DSPy's `[[ ## field ## ]]` format.
--
--   local msgs = chat.format(sig, {question = "..."}, demos)   -- system, demos, user
--   local out = chat.parse(sig, reply_text)                   -- typed values, or a parse error
--   local outs = chat.call(lm, sig, {question = "..."}, {demos = demos})   -- the LM's replies,
--                                                                          -- parsed
--
-- call falls back to the JSON adapter once when a reply does not parse, as DSPy's
-- ChatAdapter does.  The messages are the ones DSPy's ChatAdapter builds for the same signature, inputs
-- and demos, character for character.  A reply is read section by section: the
-- first section of a field wins, unknown markers are skipped, and nothing after
-- `[[ ## completed ## ]]` counts.
local common = require "tide.adapters.common"
local coerce = require "tide.adapters.coerce"
local json = require "tide.adapters.json"
local check = require "tide.check"

local M = {name = "chat"}

-- What a model writes for an optional field it leaves out.
local NONE = {[""] = true, None = true, null = true}

-- The middle of the system message: each field's placeholder, then the end marker.
function M.structure(sig)
  local parts = {
    "All interactions will be structured in the following way, with the appropriate values filled in.",
    common.placeholders(sig.inputs, "input"),
    common.placeholders(sig.outputs, "output"),
    "[[ ## completed ## ]]\n",
  }
  return common.trim(table.concat(parts, "\n\n"))
end

-- The reminder that closes the request.
function M.requirements(sig)
  local fields = {}
  for i, f in ipairs(sig.outputs) do
    fields[i] = "`[[ ## " .. f.name .. " ## ]]`" .. common.type_info(f)
  end
  return "Respond with the corresponding output fields, starting with the field " ..
         table.concat(fields, ", then ") .. ", and then ending with the marker for `[[ ## completed ## ]]`."
end

-- A demo's answer: every output (or the text saying it is missing), then the end marker.
function M.assistant(sig, values, missing)
  local list = {}
  for i, f in ipairs(sig.outputs) do
    local v = values[f.name]
    if v == nil then v = missing end
    list[i] = {f, v}
  end
  return common.sections(list) .. "\n\n[[ ## completed ## ]]\n"
end

--- format(sig, inputs [, demos]) → the messages for a call
function M.format(sig, inputs, demos)
  return common.messages(M, sig, inputs, demos)
end

--- fallback(lm, sig, inputs, opts): the last try after a reply that did not
-- parse, even when asked again: the same request through the JSON adapter, once,
-- as DSPy's ChatAdapter falls back to its JSONAdapter.
function M.fallback(lm, sig, inputs, opts)
  return json.call(lm, sig, inputs, {demos = opts.demos, config = opts.config})
end

--- call(lm, sig, inputs, opts) → the outputs of each reply; opts = {demos, config,
-- parse_retries, fallback}.  A reply that does not parse, after parse_retries,
-- goes to M.fallback unless opts.fallback is false.
function M.call(lm, sig, inputs, opts)
  return common.call(M, lm, sig, inputs, opts)
end

-- A field's header, `[[ ## name ## ]]`; it counts only at the start of a line.
local HEADER = "%[%[ ## ([%w_]+) ## %]%]"
local BLANK = {[32] = true, [9] = true, [11] = true, [12] = true}   -- %s but the line breaks

-- Where the line holding position i starts when only blanks come before i on
-- it; nil when something else does.
local function line_start(s, i)
  local byte = string.byte
  while i > 1 and BLANK[byte(s, i - 1)] do i = i - 1 end
  if i == 1 or byte(s, i - 1) == 10 then return i end
  return nil
end

-- A section's text: the rest of its header's line (trimmed on its own), then
-- the lines up to `stop`, the whole trimmed.
local function section_text(s, from, stop)
  local eol = s:find("\n", from, true)
  if eol == nil or eol > stop then return common.trim(s:sub(from, stop)) end
  local rest = common.trim(s:sub(from, eol - 1))
  local body = s:sub(eol + 1, stop)
  return common.trim(rest ~= "" and rest .. "\n" .. body or body)
end

-- The reply as {name, text} sections, in order, up to `[[ ## completed ## ]]`:
-- the text before the first header is the nameless first section.  Found with
-- string.find from header to header rather than line by line: a search per header,
-- not a match per line (the critics workload of `make bench` parses a reply per call).
local function sections(text)
  local s = text
  if s:find("\r", 1, true) then s = s:gsub("\r\n", "\n"):gsub("\r", "\n") end
  local out, name, from, pos = {}, nil, 1, 1
  while true do
    local hs, he, hname = s:find(HEADER, pos)
    if hs == nil then break end
    local ls = line_start(s, hs)
    if ls then
      out[#out + 1] = {name = name, text = name and section_text(s, from, ls - 1) or
                                            common.trim(s:sub(from, ls - 1))}
      if hname == "completed" then return out end
      name, from = hname, he + 1
    end
    pos = he + 1
  end
  out[#out + 1] = {name = name, text = name and section_text(s, from, #s) or common.trim(s)}
  return out
end

--- parse(sig, text) → {field = value}, each value read as its field's type; raises a
-- `parse` error (raw, found, missing, adapter = "chat") when a field is missing or
-- its value is not of its type.
function M.parse(sig, text)
  check.type("parse", 2, text, "string")
  return M.read_sections(sig, text, sections(text))
end

--- read_sections(sig, text, secs) → what parse gives for text cut into these
-- sections ({name, text}, in order; those of other names than the outputs' may
-- be left out): field streaming cuts the reply as it arrives.
function M.read_sections(sig, text, secs)
  local by_name = {}
  for _, f in ipairs(sig.outputs) do by_name[f.name] = f end
  local present = {}
  for _, sec in ipairs(secs) do if sec.name then present[sec.name] = true end end
  local values = {}
  for _, sec in ipairs(secs) do
    local f = sec.name and by_name[sec.name]
    local absent = f and f.optional and NONE[sec.text]   -- sec.text is trimmed already
    if f and values[f.name] == nil and not absent then
      local v, err = coerce.value(sec.text, f.type, f.type.nested and f.name or nil)
      if v == nil then common.type_error("chat", sig, text, f, sec.text, err, present) end
      values[f.name] = v
    end
  end
  return common.complete("chat", sig, text, values)
end

return M
