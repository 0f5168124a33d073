--- The REPL's session: what an input means and how results look.
--
-- The `tide` binary (engine/cli/repl.c) reads lines and hands each to session:feed,
-- which answers "more" (the chunk is not complete: read another line), "none",
-- "quit", or "run" with a function that the binary runs as a task — so lm calls
-- and tide.gather work at the prompt, and Ctrl-C cancels the task.  Like lua, an
-- input is first tried as an expression (`return <input>`), `=expr` works, and
-- the values are printed; here they are pretty-printed.  The binary also hands
-- the session the errors of tasks nobody took (task_failed), which are printed
-- before the next prompt.
local tide = require "tide"
local pretty = require "tide.repl.pretty"
local redact = require "tide.redact"
local script = require "tide.script"
local check = require "tide.check"

local M = {}

local Session = {}
Session.__index = Session

local HELP = [[
Lua 5.4 with tide loaded: each input runs as a task, so lm("..."), tide.gather(...)
and predictors work directly; Ctrl-C cancels the running input.
  =expr or expr      print the value(s)
  :help              this text
  :history [n]       the last n LM calls (tide.inspect_history)
  :usage             tokens and cost so far
  :model [p/model]   show or set the default LM (tide.configure), also the global `lm`
  :report            the path (and file:// URL) of the last HTML evaluation report
  :quit              leave (or Ctrl-D)
Tab completes global names and table fields.
]]

-- Why a model cannot be used, without the library's file and line in front (at
-- the prompt no user code made the call).
local function reason(e)
  local text = tide.is_error(e) and e.message or tostring(e)
  return (text:match("^[^\n]*"):gsub("^[^:\n]+%.lua:%d+: ", ""))
end

--- The default LM the way `tide eval` picks it (tide.script.lm): TIDE_MODEL, else
-- the mockllm at MOCKLLM_URL (under scripts/with_mockllm), else none.
function Session:configure_from_env()
  local model = os.getenv("TIDE_MODEL")
  local lm, why = script.lm(nil, "")
  if lm then
    tide.configure{lm = lm}
    self.env.lm = lm
  elseif model and model ~= "" then
    self.write("cannot use TIDE_MODEL=", model, ": ", reason(why), "\n")
  end
end

--- repl.new{interactive = bool, write = fn, env = table} → a session.  Puts `tide`
-- in the environment, and `lm`, the default LM, when TIDE_MODEL names a model or
-- MOCKLLM_URL a mock server.
function M.new(opts)
  opts = check.type("new", 1, opts, "table", true) or {}
  local self = setmetatable({
    interactive = opts.interactive and true or false,
    write = opts.write or io.write,
    env = opts.env or _G,
    buffer = nil,
    failed = {},   -- errors of tasks nobody took, to print before the next prompt
  }, Session)
  self.env.tide = self.env.tide or tide
  self:configure_from_env()
  self.completer = function(text) return self:complete(text) end
  return self
end

function Session:banner()
  self.write(string.format("tide %s (%s) — :help for help, Ctrl-D to leave\n", tide.version,
    _VERSION))
  if not tide.settings.lm then
    self.write("no LM yet: `:model provider/model` (or TIDE_MODEL=...); offline: " ..
      "scripts/with_mockllm build/tide\n")
  end
end

--- The prompt to show; first the errors of tasks that failed since the last one
-- with nobody to take them.  A full collection finds the handles nobody holds
-- any more (the engine reports an error when its task's handle is collected).
function Session:prompt()
  collectgarbage()
  self:report_failed()
  if not self.interactive then return "" end
  return self.buffer and ">> " or "> "
end

--- Called by the binary (from a finalizer: it only queues) with the error of a
-- task nobody took.
function Session:task_failed(e)
  self.failed[#self.failed + 1] = e
end

function Session:report_failed()
  local failed = self.failed
  if #failed == 0 then return end
  self.failed = {}
  for _, e in ipairs(failed) do
    self.write("a task failed and nobody took its error: ", pretty.error(e), "\n")
  end
end

--- Drops a half-typed multi-line input (Ctrl-C at the prompt).
function Session:reset()
  self.buffer = nil
end

--- End of input (Ctrl-D) → "quit", or "more" when it dropped an unfinished chunk
-- instead (Ctrl-D at the `>>` prompt on a terminal).  At the real end of the
-- input an unfinished chunk is reported as Lua would: "'end' expected near <eof>".
function Session:eof(at_end)
  if not self.buffer then return "quit" end
  local text = self.buffer
  self.buffer = nil
  if not at_end then return "more" end
  local _, err = load(text, "=stdin", "t", self.env)
  self.write(err or "unfinished input", "\n")
  return "quit"
end

--- Compiles an input: the function, or nil and "incomplete", or nil and the error.
function Session:compile(text)
  local src = text:gsub("^%s*=", "return ", 1)
  local fn, experr = load("return " .. src .. "\n", "=stdin", "t", self.env)
  if fn then return fn end
  local err
  fn, err = load(src, "=stdin", "t", self.env)
  if fn then return fn end
  -- unfinished as a statement (`for i = 1, 3 do`) or as an expression (`1 +`)
  if err:match("<eof>$") or experr:match("<eof>$") then return nil, "incomplete" end
  return nil, err
end

--- Prints values the way the REPL shows them: tab-separated, or one per line when
-- one of them spans lines.
function Session:print_values(values, first, last)
  local parts, multi = {}, false
  for i = first, last do
    parts[#parts + 1] = pretty.format(values[i])
    multi = multi or parts[#parts]:find("\n", 1, true) ~= nil
  end
  self.write(table.concat(parts, multi and "\n" or "\t"), "\n")
end

--- Prints what an input raised, always as an error: `error (kind): message` for
-- an error object (or any table with a kind), `error: ...` for anything else.
function Session:print_error(e)
  if tide.is_error(e, "cancelled") then
    self.write("cancelled\n")
  else
    self.write(pretty.error(e), "\n")
  end
end

-- A Lua error message becomes a `lua` error: it prints as `error (lua): stdin:1: ...`.
local function as_error(e)
  if type(e) == "string" then return tide.error("lua", e) end
  return e
end

--- The task body for a compiled input: runs it, prints its values or its error.
function Session:body(fn)
  return function()
    local r = table.pack(xpcall(fn, as_error))
    if not r[1] then
      self:print_error(r[2])
    elseif r.n > 1 then
      self:print_values(r, 2, r.n)
    end
  end
end

-- ---- commands ------------------------------------------------------------------

function Session:set_model(model)
  local ok, lm = pcall(tide.LM, model)
  if not ok then
    self.write("cannot use ", model, ": ", reason(lm), "\n")
    return
  end
  tide.configure{lm = lm}
  self.env.lm = lm
  return lm
end

local commands = {}

function commands.help(self)
  self.write(HELP)
end

function commands.history(self, arg)
  local n = arg == "" and 1 or math.tointeger(tonumber(arg))
  if not n or n < 1 then
    self.write(":history takes a number of calls, e.g. :history 3\n")
    return
  end
  if tide.usage().calls == 0 then
    self.write("no LM calls yet\n")
    return
  end
  tide.inspect_history(n, self.write)
end

function commands.usage(self)
  self.write(pretty.format(tide.usage()), "\n")
end

function commands.model(self, arg)
  if arg == "" then
    local lm = tide.settings.lm
    self.write(lm and ("default LM: " .. lm.model) or "no default LM: :model provider/model",
      "\n")
    return
  end
  if self:set_model(arg) then self.write("default LM: ", arg, " (also the global `lm`)\n") end
end

--- A path as a file:// URL: made absolute from $PWD, bytes other than letters,
-- digits and -._~/ percent-encoded.
local function file_url(path)
  if path:sub(1, 1) ~= "/" then path = (os.getenv("PWD") or ".") .. "/" .. path end
  return "file://" .. path:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end)
end

function commands.report(self)
  -- no report module loaded, no report written: the REPL does not load it to ask
  local html = package.loaded["tide.eval.html"]
  local path = html and html.last
  if not path then
    self.write("no report yet: tide.Evaluate{..., report = \"report.html\"} writes one\n")
    return
  end
  self.write(path, "\n", file_url(path), "\n")
end

--- feed(line) → "more" | "none" | "quit" | "run", function, the whole input as the
-- history may keep it (keys redacted)
function Session:feed(line)
  check.type("feed", 1, line, "string")
  if not self.buffer then
    if line:match("^%s*$") then return "none" end
    local name, arg = line:match("^%s*:(%a+)%s*(.-)%s*$")
    if name then
      if name == "quit" or name == "exit" or name == "q" then return "quit" end
      local cmd = commands[name]
      if not cmd then
        return "run", function() self.write("unknown command :", name, " (try :help)\n") end, line
      end
      return "run", function() cmd(self, arg) end, redact.source(line)
    end
    self.buffer = line
  else
    self.buffer = self.buffer .. "\n" .. line
  end
  local text = self.buffer
  local fn, err = self:compile(text)
  if not fn and err == "incomplete" then return "more" end
  self.buffer = nil
  if not fn then
    return "run", function() self.write(err, "\n") end, redact.source(text)
  end
  return "run", self:body(fn), redact.source(text)
end

-- ---- completion ------------------------------------------------------------------

local LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for",
  "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
  "true", "until", "while"}

--- The fields a value offers: its own keys and those of its __index tables (no
-- code runs: raw reads only).  Strings offer the string library.
local function fields_of(v, only_functions, out)
  local seen = {}
  for _ = 1, 8 do
    if type(v) == "string" then v = string end
    if type(v) ~= "table" or seen[v] then break end
    seen[v] = true
    for k, x in next, v do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and
         (not only_functions or type(x) == "function" or type(x) == "table") then
        out[k] = true
      end
    end
    local mt = getmetatable(v)
    -- names a table loads when first used (tide's lazy parts) are listed in __fields
    local lazy = type(mt) == "table" and rawget(mt, "__fields")
    if type(lazy) == "table" then
      for k in next, lazy do
        if type(k) == "string" then out[k] = true end
      end
    end
    v = type(mt) == "table" and rawget(mt, "__index") or nil
  end
  return out
end

local function lookup(v, key)
  for _ = 1, 8 do
    if type(v) == "string" then v = string end
    if type(v) ~= "table" then return nil end
    local x = rawget(v, key)
    if x ~= nil then return x end
    local mt = getmetatable(v)
    local lazy = type(mt) == "table" and rawget(mt, "__fields")
    if type(lazy) == "table" and lazy[key] ~= nil then return v[key] end
    v = type(mt) == "table" and rawget(mt, "__index") or nil
  end
end

--- complete(text before the cursor) → the word being completed, and the sorted
-- names it may become: globals and keywords, or the fields after `a.b.` / `a:`.
function Session:complete(text)
  local path = text:match("[%a_][%w_%.:]*$") or ""
  local head, sep, word = path:match("^(.-)([%.:])([%w_]*)$")
  local names = {}
  if head then
    if head == "" or head:find(":", 1, true) then return word, {} end
    local v = self.env
    for part in head:gmatch("[^%.]+") do
      v = lookup(v, part)
      if v == nil then return word, {} end
    end
    fields_of(v, sep == ":", names)
  else
    word = path
    fields_of(self.env, false, names)
    for _, k in ipairs(LUA_KEYWORDS) do names[k] = true end
  end
  local list = {}
  for k in pairs(names) do
    if k:sub(1, #word) == word then list[#list + 1] = k end
  end
  table.sort(list)
  return word, list
end

return M
