--- What runnable scripts share: their command-line options and the choice of model.
--
--   local script = require "tide.script"
--   local opts, rest, lm = script.setup(arg, "scripts/x.lua", {file = true})
--   -- --model, TIDE_MODEL, or the mock server; tide.configure{lm = lm} done
--
-- The model comes from --model, else TIDE_MODEL; with neither, a script run by
-- `make demo` (MOCKLLM_URL set) talks to the local mock server and says so.
local lm_module = require "tide.lm"
local settings = require "tide.settings"

local M = {}

--- options(argv, known) → {name = value}, {positional...}.  `--name value` and
-- `--name=value` for the names in `known` (true: takes a value; "flag": does not).
-- An unknown option raises, naming it.
function M.options(argv, known)
  local opts, rest = {}, {}
  local i = 1
  while argv and argv[i] ~= nil do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w_-]+)=(.*)$")
    name = name or a:match("^%-%-([%w_-]+)$")
    if name then
      local key = name:gsub("-", "_")
      local kind = known[key]
      if not kind then error("unknown option --" .. name, 0) end
      if kind == "flag" then
        opts[key] = true
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then error("--" .. name .. " needs a value", 0) end
        end
        opts[key] = value
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

local HINT = "  offline, against the local mock server:   make demo\n" ..
  "  against a provider:  TIDE_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=... build/tide %s\n"

--- lm(model, script_name) → a tide.LM for the script, or nil and a message for the
-- user when there is no model or its key is missing.
function M.lm(model, script_name)
  script_name = script_name or "script.lua"
  model = model or os.getenv("TIDE_MODEL")
  if model == nil or model == "" then
    local mock = os.getenv("MOCKLLM_URL")
    if mock then
      io.stderr:write(string.format(
        "(replies come from the local mock server at %s; for a real model:\n" ..
        "  TIDE_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=... build/tide %s)\n", mock, script_name))
      return lm_module.new("openai/mock", {api_key = "mock", base_url = mock .. "/v1"})
    end
    return nil, "no model: pass --model provider/model or set TIDE_MODEL, with the " ..
      "provider's key (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY)\n" ..
      string.format(HINT, script_name)
  end
  local ok, lm = pcall(lm_module.new, model)
  if not ok then
    return nil, tostring(type(lm) == "table" and lm.message or lm) .. "\n" ..
      string.format(HINT, script_name)
  end
  return lm
end

--- Writes the message and ends the script with status 2 (for a usage error).
function M.exit_usage(message)
  io.stderr:write(message, message:sub(-1) == "\n" and "" or "\n")
  os.exit(2)
end

--- setup(argv, script_name, known) → opts, positional args, lm: reads the options
-- (--model and those in `known`), picks the LM and makes it the default; a usage
-- error or a missing model ends the script with a message saying what to do.
function M.setup(argv, script_name, known)
  local names = {model = true}
  for k, v in pairs(known or {}) do names[k] = v end
  local ok, opts, rest = pcall(M.options, argv, names)
  if not ok then M.exit_usage(script_name .. ": " .. tostring(opts)) end
  local lm, why = M.lm(opts.model, script_name)
  if not lm then M.exit_usage(why) end
  settings.global.lm = lm
  return opts, rest, lm
end

return M
