--- What the command-line programs `tide eval` and `tide optimize` share: their
-- messages and exit statuses, argv parsing, loading PROGRAM.lua with its LM, and
-- reading a dataset file.  Each program keeps its own options and checks.
local tide = require "tide"
local script = require "tide.script"
local settings = require "tide.settings"
local dataset = require "tide.eval.dataset"

local M = {}

--- The exit statuses both programs document.
M.USAGE, M.FAILED = 2, 1

--- messages("eval") → say(fmt, ...), usage_error(fmt, ...) → 2, and
-- fail(status, message) → status (a usage error for 2, else a plain message),
-- each line prefixed with "tide eval: ".
function M.messages(command)
  local function say(fmt, ...)
    io.stderr:write("tide ", command, ": ", string.format(fmt, ...), "\n")
    io.stderr:flush()
  end
  local function usage_error(fmt, ...)
    say(fmt, ...)
    io.stderr:write("(tide ", command, " --help for the options)\n")
    return M.USAGE
  end
  local function fail(status, message)
    if status == M.USAGE then return usage_error("%s", message) end
    say("%s", message)
    return status
  end
  return say, usage_error, fail
end

--- parse(valued, flags, ...) → options (a table keyed by option name, positional
-- ones in `args`), or nil and a message.  `--name value` and `--name=value` for the
-- names in `valued`; `--name` for those in `flags`; `-h` is `--help`.  The
-- arguments are made strings first (main(...) may be called from Lua).
function M.parse(valued, flags, ...)
  local packed = table.pack(...)
  local argv = {}
  for i = 1, packed.n do argv[i] = tostring(packed[i]) end
  local o = {args = {}}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if a == "-h" then name = "help" end
    if name and valued[name] then
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
      end
      if v == nil then return nil, "--" .. name .. " needs a value" end
      o[name] = v
    elseif name and flags[name] then
      o[name] = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, "unknown option '" .. a .. "'"
    else
      o.args[#o.args + 1] = a
    end
    i = i + 1
  end
  return o
end

--- options(command, usage, valued, flags, ...) → what M.parse makes of main's
-- arguments, or nil and the exit status: 0 after writing `usage` for --help,
-- 2 after a usage error.
function M.options(command, usage, valued, flags, ...)
  local o, err = M.parse(valued, flags, ...)
  if not o then
    local _, usage_error = M.messages(command)
    return nil, usage_error("%s", err)
  end
  if o.help then
    io.stdout:write(usage)
    return nil, 0
  end
  return o
end

--- Why --progress MODE is wrong, or nil.
function M.progress_problem(mode)
  if mode ~= nil and mode ~= "bar" and mode ~= "lines" and mode ~= "none" then
    return "--progress must be bar, lines or none"
  end
  return nil
end

--- The integer of option --name (at least min, when given), nil when absent, or
-- nil and a message.
function M.integer_option(o, name, min)
  local v = o[name]
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  if not n or (min and n < min) then
    return nil, string.format("--%s must be an integer%s, got '%s'", name, min and " >= " .. min or "", v)
  end
  return n
end

--- "a, b,c" (--inputs) → {"a", "b", "c"}.
function M.field_list(text)
  local list = {}
  for name in text:gmatch("[^,%s]+") do list[#list + 1] = name end
  return list
end

--- A dataset file's examples (at least one), or nil and a message; `empty_note`
-- ends the message when the file holds none.
function M.load_examples(path, load_opts, empty_note)
  local ok, list = pcall(dataset.load, path, load_opts)
  if not ok then return nil, tostring(list) end
  if #list == 0 then return nil, path .. " holds no examples" .. (empty_note or "") end
  return list
end

-- The constructors of LMs a program may call as it loads.
local LM_MAKERS = {"LM", "DummyLM"}

--- Runs fn(...) → whether it made an LM, then pcall's results.  (A program that makes
-- its own LMs needs none from the command line.)
local function watching_lms(fn, ...)
  local made = false
  local saved = {}
  for _, name in ipairs(LM_MAKERS) do
    local make = tide[name]
    saved[name] = make
    tide[name] = function(...)
      made = true
      return make(...)
    end
  end
  local packed = table.pack(pcall(fn, ...))
  for name, make in pairs(saved) do tide[name] = make end
  return made, table.unpack(packed, 1, packed.n)
end

--- PROGRAM.lua's returns → program, and a table of its settings (`made_lm`: it made
-- a tide.LM as it loaded).
local function load_program(path, cli)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local made_lm, ok, a, b = watching_lms(chunk, cli)
  if not ok then return nil, tostring(a) end
  local spec
  if type(a) == "table" and getmetatable(a) == nil and a.program ~= nil then
    spec = a
  else
    spec = {program = a, metric = b}
  end
  if spec.program == nil or spec.metric == nil then
    return nil, path .. " must return the program and the metric " ..
      "(return program, metric; or return {program = ..., metric = ...})"
  end
  spec.made_lm = made_lm
  return spec
end

local function no_lm(command, program_path)
  local run = "tide " .. command .. " "
  return "no LM: the examples have no model to call. Pass --model provider/model (or set " ..
    "TIDE_MODEL) with the provider's key, e.g.\n" ..
    "  OPENAI_API_KEY=... " .. run .. program_path .. " --model openai/gpt-4o-mini ...\n" ..
    "or configure one in " .. program_path .. ": tide.configure{lm = tide.LM(\"openai/gpt-4o-mini\")}\n" ..
    "or, offline against the mock server: scripts/with_mockllm build/" .. run .. program_path .. " ..."
end

--- load_program("eval", PROGRAM.lua, --model) → spec {program, metric, ...}, or nil,
-- an exit status (USAGE or FAILED) and a message.  The LM comes from --model, else
-- TIDE_MODEL, else the mock server under scripts/with_mockllm, and is configured
-- before PROGRAM.lua runs (it gets {lm =, model =}); with none of them the program
-- must bring its own, or every example would fail the same way.
function M.load_program(command, program_path, model)
  local cli = {}
  local lm, why = script.lm(model, command .. " " .. program_path)
  if lm then
    tide.configure{lm = lm}
    cli.lm, cli.model = lm, lm.model
  elseif model or (os.getenv("TIDE_MODEL") or "") ~= "" then
    return nil, M.USAGE, why
  end
  local spec, err = load_program(program_path, cli)
  if not spec then return nil, M.FAILED, err end
  if not lm and settings.global.lm == nil and not spec.made_lm then
    return nil, M.USAGE, no_lm(command, program_path)
  end
  return spec
end

return M
