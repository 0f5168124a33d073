--- The fault catalogue: every fault mockllm can inject, against each wire format
-- and each layer of tide (raw request, LM call, Predict, Panel, Evaluate).
-- spec/faults_spec.lua asserts on it; scripts/faults.lua (make faults) prints it.
--
-- Each cell runs the faulty call beside a healthy sibling in one gather and reports
-- what happened: the typed error kind, or that the call recovered, and whether the
-- sibling kept its result.
local tide = require "tide"

local M = {}

M.FORMATS = {
  {name = "openai", model = "openai/gpt-4o-mini", base = function(url) return url .. "/v1" end,
   path = "/v1/chat/completions",
   body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'},
  {name = "anthropic", model = "anthropic/claude-3-5-haiku", base = function(url) return url end,
   path = "/v1/messages",
   body = '{"model":"claude-3-5-haiku","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'},
  {name = "gemini", model = "gemini/gemini-2.5-flash", base = function(url) return url end,
   path = "/v1beta/models/gemini-2.5-flash:generateContent",
   body = '{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'},
}

-- kind: the typed error the LM layer raises for the fault, after its retries.
-- request: what a raw tide.request sees (an error kind, or "HTTP n" for an answer).
-- transient: the scenario that fails once then succeeds (fail_first), for the faults
-- the LM layer retries: the cell shows the call recovered.
M.FAULTS = {
  -- a host that is gone stops a run (tide/circuit.lua) rather than failing its rows
  {name = "connection refused", target = "refused", kind = "transport", request = "connect",
   evaluate = "raised server_down"},
  {name = "DNS failure", target = "dns", kind = "transport", request = "dns",
   evaluate = "raised server_down"},
  {name = "connect timeout", target = "no_accept", kind = "timeout", request = "timeout"},
  {name = "read timeout", scenario = "fault=hang", kind = "timeout", request = "timeout",
   transient = "fault=hang"},
  {name = "reset mid-headers", scenario = "fault=reset_headers", kind = "transport",
   request = "reset", transient = "fault=reset_headers"},
  {name = "reset mid-body", scenario = "fault=reset_body", kind = "transport",
   request = "reset", transient = "fault=reset_body"},
  {name = "truncated body", scenario = "fault=truncate", kind = "transport", request = "protocol",
   transient = "fault=truncate"},
  {name = "malformed JSON", scenario = "fault=malformed", kind = "parse", request = "HTTP 200"},
  {name = "wrong content type (HTML)", scenario = "fault=html", kind = "parse", request = "HTTP 200"},
  {name = "empty 200", scenario = "fault=empty", kind = "parse", request = "HTTP 200"},
  {name = "200 with an error body", scenario = "fault=error_body", kind = "server",
   request = "HTTP 200"},
  {name = "huge body", scenario = "fault=huge;size=2m", kind = "transport", cause = "too_large",
   request = "too_large"},
  {name = "endless slow drip", scenario = "fault=drip;interval=20;bytes=1;endless=1",
   kind = "timeout", request = "timeout"},
  {name = "429, Retry-After seconds", scenario = "status=429;retry_after=7", kind = "rate_limit",
   retry_after = 7, request = "HTTP 429", transient = "status=429;retry_after=0"},
  {name = "429, Retry-After HTTP date", scenario = "status=429;retry_after_date=7",
   kind = "rate_limit", retry_after = 7, request = "HTTP 429",
   transient = "status=429;retry_after_date=0"},
  {name = "429, no delay given", scenario = "status=429", kind = "rate_limit", request = "HTTP 429",
   transient = "status=429"},
  {name = "500", scenario = "status=500", kind = "server", request = "HTTP 500",
   transient = "status=500"},
  {name = "502", scenario = "status=502", kind = "server", request = "HTTP 502",
   transient = "status=502"},
  {name = "503", scenario = "status=503", kind = "server", request = "HTTP 503",
   transient = "status=503"},
  {name = "504", scenario = "status=504", kind = "server", request = "HTTP 504",
   transient = "status=504"},
  {name = "529 overloaded", scenario = "status=529", kind = "server", request = "HTTP 529",
   transient = "status=529"},
  {name = "401", scenario = "status=401", kind = "auth", request = "HTTP 401"},
  {name = "context window exceeded", scenario = "error=context_window", kind = "context_window",
   request = "HTTP 400"},
  {name = "blocked by a safety filter", scenario = "fault=blocked", kind = "content_filter",
   request = "HTTP 200"},
  {name = "no text (max tokens)", scenario = "fault=no_text", kind = "empty", request = "HTTP 200"},
  {name = "mid-stream error event", scenario = "fault=stream_error", stream = true,
   kind = "server"},
  {name = "mid-stream drop", scenario = "fault=stream_drop", stream = true, kind = "transport"},
  -- Hostile servers (issue 14).  kind "ok": a fault every layer must get through with
  -- the answer intact.  secret: the error must not hold the API key, plain or
  -- JSON-escaped.  sane_usage: the LM's usage stays finite, non-negative whole numbers.
  {name = "error echoing the API key", scenario = "echo_key=1", kind = "auth",
   request = "HTTP 401", secret = true},
  {name = "error echoing the API key, JSON-escaped", scenario = "echo_key=escaped", kind = "auth",
   request = "HTTP 401", secret = true},
  {name = "error echoing the API key across the 200-byte cut", scenario = "echo_key=1;echo_pad=162",
   kind = "auth", request = "HTTP 401", secret = true},
  {name = "JSON body after a byte-order mark", scenario = "bom=1", kind = "ok", request = "HTTP 200"},
  {name = "token counts of 1e999", scenario = "usage=huge", kind = "ok", request = "HTTP 200",
   sane_usage = true},
  {name = "SSE after a byte-order mark", scenario = "bom=1", stream = true, kind = "ok"},
  {name = "10 000 empty SSE events first", scenario = "sse_filler=10000", stream = true, kind = "ok"},
  {name = "stream cut cleanly between events", scenario = "fault=stream_cut", stream = true,
   kind = "transport", cause = "incomplete"},
  {name = "reset mid-stream", scenario = "fault=stream_reset", stream = true, kind = "transport",
   cause = "reset"},
}

M.LAYERS = {"request", "lm", "predict", "panel", "evaluate"}

-- ---- servers ---------------------------------------------------------------------

--- The targets a catalogue run needs: the mock server, a closed port, a server
-- that never accepts.  start(mockllm) → env; env:stop().
function M.start(mockllm)
  local env = {server = mockllm.start(), no_accept = mockllm.start{no_accept = true}}
  -- a port nothing listens on: a server's, once it stopped
  local gone = mockllm.start()
  env.refused_url = gone.url
  gone:stop()
  -- fill the never-accepting server's queue, so later connects time out
  env.fillers = {}
  for i = 1, 3 do
    env.fillers[i] = tide.spawn(function()
      pcall(tide.request, {url = env.no_accept.url .. "/", timeout = 120})
    end)
  end
  tide.sleep(0.2)
  function env.stop(self)
    for _, t in ipairs(self.fillers) do t:cancel() end
    for _, t in ipairs(self.fillers) do pcall(t.wait, t) end
    self.server:stop()
    self.no_accept:stop()
  end
  return env
end

local function base_url(env, fault)
  if fault.target == "refused" then return env.refused_url end
  if fault.target == "dns" then return "http://tide-fault-catalogue.invalid" end
  if fault.target == "no_accept" then return env.no_accept.url end
  return env.server.url
end

local counter = 0
local function unique()
  counter = counter + 1
  return string.format("fault-%d-%d", os.time(), counter)
end

-- The scenario header for a fault; transient: fails once per key, then answers.
local function scenario_of(fault, transient)
  if transient then
    return "fail_first=1;key=" .. unique() .. ";" .. fault.transient
  end
  return fault.scenario
end

-- Every LM of the catalogue carries this key; a "secret" fault's error must not.
local API_KEY = "fault-catalogue-key"

local function make_lm(env, fault, format, transient)
  local headers
  local sc = scenario_of(fault, transient)
  if sc then headers = {["X-Mock-Scenario"] = sc} end
  return tide.LM(format.model, {api_key = API_KEY, base_url = format.base(base_url(env, fault)),
    cache = false, num_retries = transient and 2 or 0, timeout = 0.6, headers = headers,
    max_body = 1024 * 1024})
end

local function healthy_lm(env, format)
  return tide.LM(format.model, {api_key = API_KEY,
    base_url = format.base(env.server.url), cache = false, num_retries = 0})
end

-- ---- layers --------------------------------------------------------------------------

local function describe_error(e)
  if tide.is_error(e) then return e.kind end
  return "raw error: " .. tostring(e)
end

local RUN = {}

function RUN.request(env, fault, format)
  local sc = scenario_of(fault)
  local ok, r = pcall(tide.request, {url = base_url(env, fault) .. format.path, method = "POST",
    body = format.body, timeout = 0.6, connect_timeout = 0.3, max_body = 1024 * 1024,
    -- a raw keyless request: lenient=1 lets it past mockllm's strict checks
    headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = "lenient=1;" .. (sc or "")}})
  if ok then return {outcome = "HTTP " .. r.status} end
  return {outcome = describe_error(r), error = r}
end

-- A stream's prompt, and the whole text mockllm streams back for it.
local STORY = "Tell me a story."
M.STORY_REPLY = "Mock reply to: " .. STORY

local function lm_call(lm, fault)
  if fault.stream then
    local text = {}
    for piece in lm:stream(STORY) do text[#text + 1] = piece end
    return table.concat(text)
  end
  return lm:call{messages = {{role = "user", content = "hi " .. unique()}}}
end

function RUN.lm(env, fault, format, transient)
  local lm = make_lm(env, fault, format, transient)
  local ok, r = pcall(lm_call, lm, fault)
  if ok then
    return {outcome = transient and "recovered" or "ok", attempts = type(r) == "table" and r.attempts,
            usage = type(r) == "table" and r.usage or nil, text = type(r) == "string" and r or nil}
  end
  return {outcome = describe_error(r), error = r}
end

local CRITIC = "content, context -> score: int, feedback, approved: bool"

function RUN.predict(env, fault, format, transient)
  local p = tide.Predict(CRITIC, {lm = make_lm(env, fault, format, transient)})
  local ok, r = pcall(p, {content = "draft " .. unique(), context = "B2B"})
  if ok then
    return {outcome = (transient and "recovered" or "ok"), result = r}
  end
  return {outcome = describe_error(r), error = r}
end

-- The founding example's panel with its style critic on the faulty server.
function RUN.panel(env, fault, format, transient)
  local panel = tide.critics.panel{lm = healthy_lm(env, format)}
  panel.critics[2][2]:set_lm(make_lm(env, fault, format, transient))
  local ok, r = pcall(panel, {content = "draft " .. unique(), context = "B2B",
                              requirements = "a call to action"})
  if not ok then return {outcome = "raised " .. describe_error(r), error = r} end
  local intact = r.critics.technical ~= nil and r.critics.completeness ~= nil
  if r.errors.style then
    return {outcome = "degraded (" .. describe_error(r.errors.style) .. ")",
            siblings_intact = intact, approved = r.approved, error = r.errors.style}
  end
  return {outcome = transient and "recovered" or "ok", siblings_intact = intact}
end

-- An evaluation of three examples whose second one meets the fault.
function RUN.evaluate(env, fault, format, transient)
  local good, bad = healthy_lm(env, format), make_lm(env, fault, format, transient)
  local critic = tide.Predict(CRITIC)
  local devset = {}
  for i = 1, 3 do
    devset[i] = tide.Example{id = i, content = "draft " .. i .. " " .. unique(), context = "B2B"}
      :with_inputs("id", "content", "context")
  end
  local ok, r = pcall(tide.Evaluate, {devset = devset, display_progress = false,
    display_table = false, wait_for_server = 0.1,
    metric = function(_, pred) return pred.approved and 1 or 0 end,
    program = function(inputs)
      return critic{content = inputs.content, context = inputs.context,
                    lm = inputs.id == 2 and bad or good}
    end})
  if not ok then return {outcome = "raised " .. describe_error(r), error = r} end
  local failed = r.rows and r.rows[2] and r.rows[2].error
  local intact = r.rows[1].error == nil and r.rows[3].error == nil
  if failed then
    return {outcome = "row error (" .. tostring(failed.kind) .. ")", error = failed,
            siblings_intact = intact}
  end
  return {outcome = transient and "recovered" or "ok", siblings_intact = intact}
end

--- run(env, fault, format, layer, transient) → {outcome, sibling_ok, error, ...}:
-- the cell, run beside a healthy LM call whose result must survive.
function M.run(env, fault, format, layer, transient)
  local sibling_lm = healthy_lm(env, format)
  local results = tide.gather({
    function() return RUN[layer](env, fault, format, transient) end,
    function() return sibling_lm:call{messages = {{role = "user", content = "sibling"}}} end,
  }, {return_exceptions = true})
  local cell = results[1]
  if tide.is_error(cell) then cell = {outcome = "crashed: " .. tostring(cell.message)} end
  cell.sibling_ok = not tide.is_error(results[2]) and type(results[2].text) == "string"
  return cell
end

--- The outcome a cell must show.
function M.expected(fault, layer, transient)
  if layer == "request" then return fault.request end
  if fault.kind == "ok" then return "ok" end   -- survived on every layer
  if transient then return "recovered" end
  if layer == "panel" then return "degraded (" .. fault.kind .. ")" end
  if layer == "evaluate" then return fault.evaluate or "row error (" .. fault.kind .. ")" end
  return fault.kind
end

--- Whether a fault applies to a layer and format.
function M.applies(fault, layer)
  if fault.stream then return layer == "lm" end
  return true
end

--- The cells of the catalogue: {fault, layer, format, transient} for every fault
-- that applies, and its transient (fail once, then answer) variant where the LM
-- layer retries it.
function M.cells()
  local cells = {}
  for _, fault in ipairs(M.FAULTS) do
    for _, layer in ipairs(M.LAYERS) do
      if M.applies(fault, layer) then
        for _, format in ipairs(M.FORMATS) do
          cells[#cells + 1] = {fault = fault, layer = layer, format = format}
          if fault.transient and layer ~= "request" then
            cells[#cells + 1] = {fault = fault, layer = layer, format = format, transient = true}
          end
        end
      end
    end
  end
  return cells
end

--- Runs every cell, many at once; fills cell.result and cell.expected.
function M.run_all(env, cells, limit)
  tide.map(cells, function(cell)
    cell.result = M.run(env, cell.fault, cell.format, cell.layer, cell.transient)
    cell.expected = M.expected(cell.fault, cell.layer, cell.transient)
  end, {limit = limit or 64})
  return cells
end

--- Whether a cell shows what it must: the outcome, the sibling's result, the
-- error's cause where the fault names one, and no approval over a failed critic.
function M.check(cell)
  local r = cell.result
  if r.outcome ~= cell.expected then
    return false, string.format("outcome %s, expected %s", r.outcome, cell.expected)
  end
  if not r.sibling_ok then return false, "the sibling call lost its result" end
  if cell.fault.cause and not cell.transient and cell.layer ~= "request" and
      (r.error == nil or r.error.cause ~= cell.fault.cause) then
    return false, "cause " .. tostring(r.error and r.error.cause) .. ", expected " .. cell.fault.cause
  end
  if cell.fault.retry_after and cell.layer == "lm" and not cell.transient and
      (r.error == nil or r.error.retry_after ~= cell.fault.retry_after) then
    return false, "retry_after " .. tostring(r.error and r.error.retry_after)
  end
  if r.siblings_intact == false then
    return false, "the " .. cell.layer .. " lost a healthy critic's or example's result"
  end
  if cell.layer == "panel" and r.approved then return false, "approved over a failed critic" end
  if cell.fault.secret and cell.layer ~= "request" and M.leaks_key(r.error) then
    return false, "the error holds the API key"
  end
  if cell.fault.sane_usage and cell.layer == "lm" and not M.sane_usage(r.usage) then
    return false, "usage not finite non-negative integers"
  end
  if cell.fault.stream and cell.fault.kind == "ok" and r.text ~= M.STORY_REPLY then
    return false, "streamed " .. string.format("%q", tostring(r.text)) .. ", not the whole reply"
  end
  return true
end

--- Whether any string in the error (its fields, nested tables, its text) holds the
-- catalogue's API key, as written or with its characters JSON-escaped (\u00XX).
function M.leaks_key(e)
  local escaped = API_KEY:gsub(".", function(c) return string.format("\\u%04x", c:byte()) end)
  local seen = {}
  local function leaks(v, depth)
    if type(v) == "string" then
      return v:find(API_KEY, 1, true) ~= nil or v:lower():find(escaped, 1, true) ~= nil
    end
    if type(v) ~= "table" or seen[v] or depth > 6 then return false end
    seen[v] = true
    for k, x in pairs(v) do
      if leaks(k, depth + 1) or leaks(x, depth + 1) then return true end
    end
    return false
  end
  return e ~= nil and (leaks(e, 0) or leaks(tostring(e), 0))
end

--- usage = {input, output, total}: each a finite whole number, not negative.
function M.sane_usage(u)
  if type(u) ~= "table" then return false end
  for _, k in ipairs{"input", "output", "total"} do
    local v = u[k]
    if math.type(v) == nil or v ~= v or v < 0 or v == math.huge or v ~= math.floor(v) then
      return false
    end
  end
  return true
end

--- A server restart in the middle of a run: calls in flight when the server goes
-- down are retried and answered by the server that comes back on the same port.
-- → {outcome = "recovered" | error kind, calls, answered, restarts}
function M.restart(mockllm, format, calls)
  calls = calls or 12
  local first = mockllm.start{latency_ms = 300}
  local port = first.port
  local lm = tide.LM(format.model, {api_key = API_KEY, base_url = format.base(first.url),
    cache = false, num_retries = 4})
  local list = {}
  for i = 1, calls do list[i] = "restart " .. i .. " " .. unique() end
  local run = tide.spawn(tide.map, list, function(prompt) return lm:call(prompt) end,
                         {return_exceptions = true})
  tide.sleep(0.1)
  first:stop()
  local second = mockllm.start{port = port}
  local ok, results = pcall(run.wait, run)
  local stats = second:stats()
  second:stop()
  if not ok then return {outcome = describe_error(results), calls = calls, answered = 0} end
  local answered, kinds = 0, {}
  for _, r in ipairs(results) do
    if tide.is_error(r) then kinds[#kinds + 1] = r.kind else answered = answered + 1 end
  end
  return {outcome = answered == calls and "recovered" or ("lost: " .. table.concat(kinds, ",")),
          calls = calls, answered = answered, second_server_requests = stats.requests}
end

return M
