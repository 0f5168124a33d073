--- The tool loop of a predictor with tools: model → tool calls → results → model,
-- until the model answers the signature's outputs.
--
--   local agent = tide.Predict("question -> answer", {tools = {weather, clock}, max_iters = 5})
--   local r = agent{question = "Warmer in Oslo or Lima?"}
--   r.answer, r.tool_calls[1].name, r.tool_calls[1].seconds
--
-- One turn's calls run in parallel, each as a task (tide.map, at most `limit` at
-- once), and their results go back in the order of the calls.  What goes wrong
-- with a call — a name the model invented, arguments that miss the schema, a tool
-- that raises or outlives its `timeout` — becomes the result the model reads, and
-- the loop goes on; so do arguments that are not JSON (the model is told and asked
-- again).  After `max_iters` turns of calls the model gets one more turn to
-- answer; calling tools again then is a `max_iters` error carrying the
-- conversation and the calls.  Apart from predict.lua so that a plain Predict
-- pays nothing for it (spec/memory_spec.lua bounds what a waiting call holds).
local core = require "tide.core"
local check = require "tide.check"
local tool_mod = require "tide.tools.tool"
local prediction = require "tide.prediction"
local common = require "tide.adapters.common"

local M = {}

M.DEFAULT_MAX_ITERS = 10

local TURNS = {integer = true, min = 1}
local LIMIT = {integer = true, min = 1}
local SECONDS = {above = 0, max = 1e9}

--- A tool's timeout: opts.timeout, a number for every tool or a table by name.
local function check_timeout(fname, timeout, by_name)
  if timeout == nil or type(timeout) == "number" then
    check.number(fname, "opts.timeout", timeout, SECONDS, true)
    return
  end
  check.type(fname, "opts.timeout", timeout, "table")
  for name, s in pairs(timeout) do
    if by_name[name] == nil then
      check.fail(fname, "opts.timeout", string.format("%q is not one of the tools", tostring(name)))
    end
    check.number(fname, "opts.timeout." .. name, s, SECONDS)
  end
end

--- tools(fname, list) → the list and the tools by name; misuse names the bad entry.
function M.check_tools(fname, tools)
  check.type(fname, "opts.tools", tools, "table")
  if #tools == 0 then check.fail(fname, "opts.tools", "a non-empty list of tide.Tools expected") end
  local by_name = {}
  for i, t in ipairs(tools) do
    if not tool_mod.is_tool(t) then
      check.fail(fname, "opts.tools[" .. i .. "]", "a tide.Tool expected, got " .. type(t))
    end
    if by_name[t.name] then
      check.fail(fname, "opts.tools[" .. i .. "]", string.format("two tools named %q", t.name))
    end
    by_name[t.name] = t
  end
  return tools, by_name
end

--- The tool options of tide.Predict, checked → {tools, by_name, max_iters,
-- tool_choice, limit, timeout}.
function M.options(fname, opts)
  local tools, by_name = M.check_tools(fname, opts.tools)
  check.number(fname, "opts.max_iters", opts.max_iters, TURNS, true)
  check.number(fname, "opts.limit", opts.limit, LIMIT, true)
  check_timeout(fname, opts.timeout, by_name)
  local choice = opts.tool_choice
  if choice ~= nil and choice ~= "auto" and choice ~= "required" and choice ~= "none" and
      by_name[choice] == nil then
    check.fail(fname, "opts.tool_choice", string.format(
      "%s: \"auto\", \"required\", \"none\" or the name of a tool expected", tostring(choice)))
  end
  return {tools = tools, by_name = by_name, max_iters = opts.max_iters or M.DEFAULT_MAX_ITERS,
          tool_choice = choice, limit = opts.limit, timeout = opts.timeout}
end

--- timeout_of(timeout, name) → the seconds a tool of this name may run (the
-- `timeout` option: seconds for every tool, or a table by name), or nil.
function M.timeout_of(timeout, name)
  if type(timeout) == "table" then return timeout[name] end
  return timeout
end

local function names_of(by_name)
  local names = {}
  for name in pairs(by_name) do names[#names + 1] = name end
  table.sort(names)
  return table.concat(names, ", ")
end

--- run_tool(tool, args, seconds) → the text the model reads, and the error or nil.
-- A tool that runs past `seconds` is cancelled and reported; only a cancellation
-- of the caller is raised.
function M.run_tool(tool, args, seconds)
  if seconds == nil then return tool(args) end
  local ok, text, err = pcall(core.timeout, seconds, function() return tool(args) end)
  if ok then return text, err end
  if core.is_error(text, "timeout") then
    return string.format("Error: tool %s timed out after %g seconds", tool.name, seconds), text
  end
  error(text, 0)
end

--- One call of a turn → its record {turn, id, name, args, result, error,
-- started, finished, seconds}; result is the text the model reads.
function M.call_one(cfg, call, turn)
  local rec = {turn = turn, id = call.id, name = call.name, args = call.args, started = core.now()}
  local tool = cfg.by_name[call.name]
  if tool == nil then
    rec.result = string.format("Error: there is no tool named %q; the tools are: %s",
      tostring(call.name), names_of(cfg.by_name))
    rec.error = core.error{kind = "bad_request", message = rec.result}
  else
    rec.result, rec.error = M.run_tool(tool, call.args, M.timeout_of(cfg.timeout, call.name))
  end
  rec.finished = core.now()
  rec.seconds = rec.finished - rec.started
  return rec
end

local function copy(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  return out
end

local SAMPLING = {"temperature", "max_tokens", "rollout_id"}

--- The LM request of a turn: the conversation, the tools, the sampling options
-- set, and the adapter's structured output if it asks for one.
local function request(adapter, sig, cfg, messages, config, choice)
  -- a copy: the LM's history keeps each turn's request as it was sent
  local req = {messages = copy(messages), tools = cfg.tools, tool_choice = choice}
  for _, k in ipairs(SAMPLING) do req[k] = config[k] end
  if adapter.response_format then req.response_format = adapter.response_format(sig) end
  return req
end

--- A turn's calls side by side (tide.map, at most cfg.limit at once) → their
-- records in the order of the calls.
function M.run_calls(cfg, calls, turn)
  return core.map(calls, function(call) return M.call_one(cfg, call, turn) end, {limit = cfg.limit})
end

--- Runs a turn's calls (run_calls: M.run_calls or the stream's); appends the
-- assistant's calls and the results to the conversation and the records to the history.
local function run_turn(s, r, run_calls)
  local messages = s.messages
  messages[#messages + 1] = {role = "assistant", content = r.text ~= "" and r.text or nil,
                             tool_calls = r.tool_calls}
  local records = run_calls(s.cfg, r.tool_calls, s.turn)
  for _, rec in ipairs(records) do
    messages[#messages + 1] = {role = "tool", tool_call_id = rec.id, content = rec.result}
    s.history[#s.history + 1] = rec
  end
end

--- A reply whose arguments were not JSON: recorded, and the model told so.
local function bad_arguments(err, turn, messages, history)
  local now = core.now()
  history[#history + 1] = {turn = turn, name = err.tool, result = err.message, error = err,
                           started = now, finished = now, seconds = 0}
  -- what the model said, in words: the call itself cannot be sent back without an id
  messages[#messages + 1] = {role = "assistant", content = string.format(
    "(a call of tool %s with arguments that are not JSON)", tostring(err.tool))}
  messages[#messages + 1] = {role = "user", content = string.format(
    "Your call of tool %s had arguments that are not a JSON object: %s\nCall it again with " ..
    "arguments in JSON.", tostring(err.tool), tostring(err.raw_text or err.message))}
end

--- session(adapter, sig, inputs, opts, cfg) → a conversation about to start:
-- {messages, history, turn, ...}.  opts = {demos, config, parse_retries}.
function M.session(adapter, sig, inputs, opts, cfg)
  return {adapter = adapter, sig = sig, cfg = cfg, messages = copy(adapter.format(sig, inputs, opts.demos)),
          config = opts.config or {}, history = {}, retries = opts.parse_retries or 0,
          choice = cfg.tool_choice, turn = 0}
end

--- The request of the session's next model turn.
function M.request(s)
  return request(s.adapter, s.sig, s.cfg, s.messages, s.config, s.choice)
end

--- turn(s, ok, r, run_calls, parse) → the Prediction once the model answered,
-- else nil (ask again with M.request(s)).  ok, r: pcall of the model's turn (r
-- {text, tool_calls} or its error); run_calls runs a turn's calls (M.run_calls
-- by default); parse(sig, r) reads the answer (the adapter's parse of r.text by
-- default).  The one step of the loop, for a call (M.run) and a stream (M.stream).
function M.turn(s, ok, r, run_calls, parse)
  local cfg = s.cfg
  if not ok then
    if not (core.is_error(r, "parse") and r.tool and s.turn < cfg.max_iters) then error(r, 0) end
    s.turn = s.turn + 1
    bad_arguments(r, s.turn, s.messages, s.history)
  elseif r.tool_calls then
    if s.turn >= cfg.max_iters then
      error(core.error{kind = "max_iters", message = string.format(
        "tide.Predict: the model still called tools (%s) after max_iters = %d turns of calls",
        r.tool_calls[1].name, cfg.max_iters), trajectory = s.messages, tool_calls = s.history}, 0)
    end
    s.turn = s.turn + 1
    run_turn(s, r, run_calls or M.run_calls)
    if s.choice ~= "none" then s.choice = nil end   -- forced once: then the model may answer
  else
    local parsed, outputs
    if parse then
      parsed, outputs = pcall(parse, s.sig, r)
    else
      parsed, outputs = pcall(s.adapter.parse, s.sig, r.text)
    end
    if parsed then
      local p = prediction.prediction(outputs, {outputs})
      p.tool_calls = s.history
      return p
    end
    if not core.is_error(outputs, "parse") or s.retries == 0 then error(outputs, 0) end
    s.retries = s.retries - 1
    common.ask_again(s.messages, r.text, outputs)   -- fed back to be answered again
  end
  return nil
end

--- run(lm, adapter, sig, inputs, opts, cfg) → the Prediction, with `tool_calls`:
-- the history of the calls.  opts = {demos, config, parse_retries}.
function M.run(lm, adapter, sig, inputs, opts, cfg)
  local s = M.session(adapter, sig, inputs, opts, cfg)
  while true do
    local p = M.turn(s, pcall(lm.call, lm, M.request(s)))
    if p then return p end
  end
end

-- ---- the stream ------------------------------------------------------------------------

-- A record as the stream's event of a call that finished.
local function result_event(rec)
  return {status = "tool_result", turn = rec.turn, id = rec.id, name = rec.name, args = rec.args,
          result = rec.result, error = rec.error, seconds = rec.seconds}
end

local FAILED = {}   -- the key of the queue's last entry when the conversation failed

-- The fourth value of the loop: leaving it cancels the task holding the conversation
-- (its LM stream is closed, its tools cancelled).
local STREAM_CLOSER = {__close = function(c) c.task:cancel() end}

--- stream(lm, adapter, sig, inputs, opts, cfg) → an iterator of events for a
-- generic for, with a closer as its fourth value: the loop of M.run with each
-- model turn streamed (tide.adapters.field_stream), {field, chunk} as the
-- fields' text arrives, {status = "tool_call", turn, id, name, args} for each
-- call of a turn before they run, {status = "tool_result", turn, id, name, args,
-- result, error, seconds} as each finishes, then {prediction = ...}.  The
-- conversation runs in a task of its own that fills a queue; the iterator
-- waits on it.  parse_retries do not apply (a field streamed twice would be
-- wrong): a reply that does not parse is the loop's parse error.
function M.stream(lm, adapter, sig, inputs, opts, cfg)
  local field_stream = require "tide.adapters.field_stream"   -- loaded when first used
  field_stream.check(adapter, opts.config or {})
  local s = M.session(adapter, sig, inputs, {demos = opts.demos, config = opts.config}, cfg)
  local queue, head, tail, piece_start = {}, 1, 0, 1
  local wake = core.semaphore(1)
  wake:acquire()      -- held by the iterator: a push hands it over to wake it up
  local function push(ev)
    tail = tail + 1
    queue[tail] = ev
    if wake:waiting() > 0 then wake:release() end
  end
  local function emit(field, chunk)     -- a piece's chunks of one field make one event
    if field == nil then
      piece_start = tail + 1
      return
    end
    local last = queue[tail]
    if tail >= head and tail >= piece_start and last.field == field then
      last.chunk = last.chunk .. chunk
    else
      push{field = field, chunk = chunk}
    end
  end
  local function ask(req)
    local final, splitter = field_stream.reply(lm, req, sig, adapter, emit)
    return {text = final.text, tool_calls = final.tool_calls, splitter = splitter}
  end
  local function run_calls(c, calls, turn)
    for _, call in ipairs(calls) do
      push{status = "tool_call", turn = turn, id = call.id, name = call.name, args = call.args}
    end
    return core.map(calls, function(call)
      local rec = M.call_one(c, call, turn)
      push(result_event(rec))
      return rec
    end, {limit = c.limit})
  end
  local function parse(sg, r) return field_stream.read(adapter, sg, r.text, r.splitter) end
  local function converse()
    while true do
      local ok, r = pcall(ask, M.request(s))
      local n = #s.history
      local p = M.turn(s, ok, r, run_calls, parse)
      for i = n + 1, ok and n or #s.history do   -- a call whose arguments were not JSON
        push(result_event(s.history[i]))
      end
      if p then return p end
    end
  end
  local task = core.spawn(function()
    local ok, p = pcall(converse)
    if ok then push{prediction = p} else push{[FAILED] = p} end
  end)
  local ended = false
  local function next_event()
    if ended then return nil end
    while head > tail do wake:acquire() end
    local ev = queue[head]
    queue[head] = nil
    head = head + 1
    if ev[FAILED] ~= nil then
      ended = true
      error(ev[FAILED], 0)
    end
    if ev.prediction then ended = true end
    return ev
  end
  return next_event, nil, nil, setmetatable({task = task}, STREAM_CLOSER)
end

return M
