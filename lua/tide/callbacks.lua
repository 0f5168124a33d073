--- Callbacks: objects told when an LM call, a module, a tool, an evaluation or
-- one of its examples starts and ends.
--
--   local timing = {}
--   function timing:on_lm_end(call) print(call.name, call.duration, call.usage.total) end
--   tide.configure{callbacks = {timing}}          -- every call from now on
--   p(inputs, {callbacks = {other}})              -- this call and all beneath it
--   tide.context({callbacks = {other}}, fn)       -- everything fn does
--
-- A callback is a table with any of on_KIND_start(cb, call) and on_KIND_end(cb,
-- call), KIND one of lm, module, tool, evaluate, example.  `call` is the same
-- table at the start and the end: id (unique in the process), parent (the call it
-- runs under, or nil), kind, name, instance, inputs, started (tide.now();
-- unix_time(call.started) is seconds since the epoch); at the end also outputs or error, usage
-- ({input, output, total}: the LM tokens of the call and everything under it),
-- duration (seconds).
--
-- Callbacks run in the task that made the call.  A callback that fails is
-- reported once on stderr and never breaks the call.  Per-call callbacks add to
-- the configured ones and, like settings, are inherited by every task the call
-- starts; so is the call itself as the parent of the calls made inside it.
--
-- Cost with none configured: the callers test M.on, one field, before anything.
local core = require "tide.core"
local check = require "tide.check"
local settings = require "tide.settings"

local M = {}

--- True once a callback list was configured or passed to any call: the hot paths
-- (an LM call, a predictor) look at this field and nothing else when it is false.
M.on = false

--- propagate(call) → the value of a W3C traceparent header for an LM request
-- made by call, set by tide.trace while it traces (and sends one); else nil.
M.propagate = nil

local KINDS = {"lm", "module", "tool", "evaluate", "example"}
local START, FINISH, KNOWN = {}, {}, {}
for _, k in ipairs(KINDS) do
  START[k], FINISH[k] = "on_" .. k .. "_start", "on_" .. k .. "_end"
  KNOWN[START[k]], KNOWN[FINISH[k]] = true, true
end

local CALL_KEY = "callback_call"   -- the settings key of the enclosing call
local user_list, extra_list = nil, {}   -- tide.configure's list; the tracer and the like
local next_id = 0
local reported = setmetatable({}, {__mode = "k"})   -- callback → {method = true}
local swap_settings = core.task_swap_settings

-- The wall clock at a known tide.now(): os.time() has whole seconds, so a call's
-- time of day is that exact to the second, and its duration exact.
local epoch_base, mono_base = os.time(), core.now()

--- unix_time(t) → the seconds since the epoch at tide.now() = t (a call's started).
function M.unix_time(t)
  return epoch_base + (t - mono_base)
end

--- check_list(fname, arg, list) → list: a list of callback objects, each a table
-- whose on_* fields are functions of known names (a misspelt one would never run).
function M.check_list(fname, arg, list)
  check.type(fname, arg, list, "table")
  for i, cb in ipairs(list) do
    if type(cb) ~= "table" then
      check.fail(fname, arg, string.format("callbacks[%d] must be a table of on_* functions, got %s",
        i, type(cb)))
    end
    for k, v in pairs(cb) do
      if type(k) == "string" and k:match("^on_") then
        if not KNOWN[k] then
          check.fail(fname, arg, string.format("callbacks[%d].%s is not a callback; the names are " ..
            "on_KIND_start and on_KIND_end, KIND one of %s", i, k, table.concat(KINDS, ", ")))
        end
        if not check.callable(v) then
          check.fail(fname, arg, string.format("callbacks[%d].%s must be a function, got %s",
            i, k, type(v)))
        end
      end
    end
  end
  return list
end

local function rebuild_global()
  local all = {}
  for _, cb in ipairs(extra_list) do all[#all + 1] = cb end
  for _, cb in ipairs(user_list or {}) do all[#all + 1] = cb end
  settings.global.callbacks = #all > 0 and all or nil
  if #all > 0 then M.on = true end
end

--- configure(list | false): tide.configure's callbacks (false unsets them).
function M.configure(list)
  if list == false then
    user_list = nil
  else
    user_list = M.check_list("configure", "callbacks", list)
  end
  rebuild_global()
end

--- add(cb) / remove(cb): a callback of the library's own (the tracer), kept beside
-- the configured ones.
function M.add(cb)
  for _, c in ipairs(extra_list) do if c == cb then return end end
  extra_list[#extra_list + 1] = cb
  rebuild_global()
end

function M.remove(cb)
  for i, c in ipairs(extra_list) do
    if c == cb then table.remove(extra_list, i) break end
  end
  rebuild_global()
end

--- list([own [, fname]]) → the callbacks of a call made now (the inherited ones,
-- then the call's own, checked as fname's option), or nil when there are none.
function M.list(own, fname)
  local inherited = settings.get("callbacks")
  if own == nil then
    if inherited and #inherited > 0 then return inherited end
    return nil
  end
  M.check_list(fname or "call", "callbacks", own)
  M.on = true
  if #own == 0 then return M.list() end
  if inherited == nil or #inherited == 0 then return own end
  local all, seen = {}, {}
  for _, list in ipairs{inherited, own} do
    for _, cb in ipairs(list) do
      if not seen[cb] then seen[cb] = true; all[#all + 1] = cb end
    end
  end
  return all
end

-- tide.context({callbacks = ...}, fn) checks the list and turns callbacks on.
settings.watch.callbacks = function(list)
  if list ~= false then M.check_list("context", 1, list) end
  M.on = true
end

--- The first failure of each callback method goes to stderr; the call goes on.
local function report(cb, method, err)
  local seen = reported[cb]
  if seen == nil then seen = {}; reported[cb] = seen end
  if seen[method] then return end
  seen[method] = true
  local msg = type(err) == "table" and tostring(err.message or err) or tostring(err)
  io.stderr:write(string.format("tide: callback %s failed (reported once, the call goes on): %s\n",
    method, msg))
end

local function notify(list, method, call)
  for i = 1, #list do
    local cb = list[i]
    local fn = cb[method]
    if fn then
      local ok, err = pcall(fn, cb, call)
      if not ok then
        -- the task is being cancelled: that is no callback's failure, and it goes on up
        if core.is_error(err, "cancelled") then error(err, 0) end
        report(cb, method, err)
      end
    end
  end
end

--- start(list, kind, name, instance, inputs [, parent]) → the call, once every
-- callback's on_KIND_start has run.  parent: the enclosing call when it is not the
-- one the running task inherited.
function M.start(list, kind, name, instance, inputs, parent)
  next_id = next_id + 1
  -- eight fields: a call in flight is a table of eight slots
  local call = {id = next_id, kind = kind, name = name, instance = instance, inputs = inputs,
    parent = parent or settings.get(CALL_KEY), started = core.now(), callbacks = list}
  notify(list, START[kind], call)
  return call
end

local function usage_of(call)
  local u = call.usage
  if u == nil then
    u = {input = 0, output = 0, total = 0}
    call.usage = u
  end
  return u
end

--- finish(call, outputs, err [, usage]): the end of a call; an LM call's usage
-- is added to its own and to every call above it.
function M.finish(call, outputs, err, usage)
  if usage == nil and call.kind == "lm" and type(outputs) == "table" then usage = outputs.usage end
  call.duration = core.now() - call.started
  call.outputs, call.error = outputs, err
  if type(usage) == "table" then
    local input, output = tonumber(usage.input) or 0, tonumber(usage.output) or 0
    local total = tonumber(usage.total) or input + output
    local c = call
    while c do
      local u = usage_of(c)
      u.input, u.output, u.total = u.input + input, u.output + output, u.total + total
      c = c.parent
    end
  end
  usage_of(call)
  notify(call.callbacks, FINISH[call.kind], call)
end

-- settings → the metatable of the contexts layered over them, made once
local layered = setmetatable({}, {__mode = "k"})

--- context(call) → the settings of a task run under call: the callbacks and
-- the call as the parent of what it starts.
function M.context(call)
  local below = core.task_settings()
  local mt = below and layered[below]
  if mt == nil then
    mt = {__index = below}
    if below then layered[below] = mt end
  end
  return setmetatable({[CALL_KEY] = call, callbacks = call.callbacks}, mt)
end

--- under(settings, call) → settings, with the call and its callbacks added: for a
-- task started with tide.context(settings, ...) to run under the call.
function M.under(own, call)
  own[CALL_KEY], own.callbacks = call, call.callbacks
  return own
end

local function ended(call, ok, ...)
  if ok then
    M.finish(call, (...))
    return ...
  end
  local err = ...
  M.finish(call, nil, err)
  error(err, 0)
end

local function joined(call, waited, ...)
  if waited then return ended(call, ...) end
  return ended(call, false, ...)   -- this task was cancelled as it waited
end

--- run(list, kind, name, instance, inputs, fn, ...) → fn(...)'s results, fn run
-- as a task under the call (so that the tasks it starts inherit it); fn's error
-- is raised after the callbacks heard of it.  The task returns its failure
-- rather than raising it: were this task cancelled just as fn failed, a raised
-- error would be left with nobody to take it.
function M.run(list, kind, name, instance, inputs, fn, ...)
  local call = M.start(list, kind, name, instance, inputs)
  local t = core.spawn_in(M.context(call), pcall, fn, ...)
  return joined(call, pcall(t.wait, t))
end

local function restored(call, saved, ok, ...)
  swap_settings(saved)
  return ended(call, ok, ...)
end

--- scope(list, kind, name, instance, inputs, fn, ...) → fn(...)'s results, fn run
-- under the call: what it calls, in this task and in the tasks it starts, is the
-- call's child.  In a task, the task's settings are swapped for the call's while
-- fn runs (no task is made: a call in flight holds no second coroutine); on the
-- main flow, which has no settings of its own, fn runs as a task (run()).
function M.scope(list, kind, name, instance, inputs, fn, ...)
  if not core.current() then return M.run(list, kind, name, instance, inputs, fn, ...) end
  local call = M.start(list, kind, name, instance, inputs)
  local saved = swap_settings(M.context(call))
  return restored(call, saved, pcall(fn, ...))
end

-- A call whose end is a <close> variable's (tide.Predict's answer_heard): no
-- frame is added on the way down, where a waiting call's coroutine keeps the
-- size of the deepest point its stack reached.
local CLOSING = {}

function CLOSING.__close(call, err)
  local context = core.task_settings()
  if context and rawget(context, CALL_KEY) == call then   -- the task's own settings back
    swap_settings(getmetatable(context).__index)
  end
  if err == nil then M.finish(call, call.outputs) else M.finish(call, nil, err) end
end

--- entered(list, kind, name, instance, inputs) → the call, to be closed (a
-- <close> variable, its `outputs` set first) in the frame that ends with it; the
-- task's settings are the call's until then.  Nil on the main flow, which has
-- no settings of its own: use run() there.
function M.entered(list, kind, name, instance, inputs)
  if not core.current() then return nil end
  local call = M.start(list, kind, name, instance, inputs)
  swap_settings(M.context(call))
  return setmetatable(call, CLOSING)
end

return M
