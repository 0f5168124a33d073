--- tide.errors: every `kind` of error object tide raises, what it means and
-- whether trying again may help.
--
--   local ok, err = pcall(lm.call, lm, "hi")
--   if not ok and tide.errors.retryable(err) then ... end
--   for _, name in ipairs(tide.errors.names()) do print(name, tide.errors.kinds[name].meaning) end
--
-- An error object (tide.error{kind = ..., message = ...}) may carry its own
-- `retryable`: that flag, set where the error is made, is what tide.retry reads.
-- The catalogue's `retryable` is the kind's usual answer; "varies" means only the
-- error's own flag can tell (a `parse` error of invalid JSON may be a cut
-- transfer, one of well-formed JSON of the wrong shape will not improve).
-- spec/errors_spec.lua reads the C and Lua sources and fails when they raise a
-- kind that is not listed here, or when a listed kind is raised nowhere.
local M = {}

M.kinds = {
  -- the core: tasks and the scheduler
  cancelled = {retryable = false, from = "core",
    meaning = "the task or call was cancelled: task:cancel(), a race's loser, a timeout's " ..
      "victim, Ctrl-C in the REPL, a stream left before its end"},
  deadlock = {retryable = false, from = "core",
    meaning = "the main flow or every task waits for something no task or I/O can complete"},
  timeout = {retryable = true, from = "core, HTTP, LM",
    meaning = "tide.timeout's time ran out, a request exceeded its `timeout`, or a server " ..
      "answered 408"},
  lua = {retryable = false, from = "core",
    meaning = "a plain Lua error (a string or another value) raised in a task, wrapped " ..
      "with its traceback"},
  io = {retryable = false, from = "core",
    meaning = "a file operation of the disk cache failed (`path` says which file)"},
  process = {retryable = false, from = "core (tide.process)",
    meaning = "a child process could not start, stopped reading its stdin, or was closed " ..
      "while a task waited on it"},

  -- HTTP transfers (tide.request, tide.stream); an LM call reports these as
  -- `transport` with the kind below as its `cause`
  dns = {retryable = false, from = "HTTP", meaning = "the host name did not resolve"},
  connect = {retryable = true, from = "HTTP", meaning = "the connection was refused or failed"},
  tls = {retryable = false, from = "HTTP",
    meaning = "the TLS handshake or the server's certificate failed"},
  proxy = {retryable = "varies", from = "HTTP",
    meaning = "the proxy refused the connection (retryable), wanted credentials (407) or " ..
      "refused the tunnel; `proxy` names it, without its credentials"},
  reset = {retryable = true, from = "HTTP",
    meaning = "the connection broke during a read or a write"},
  protocol = {retryable = true, from = "HTTP",
    meaning = "the server broke HTTP (or closed the stream before its headers)"},
  too_large = {retryable = false, from = "HTTP, SSE",
    meaning = "a response passed max_body, or a stream event passed max_event"},

  -- Redis (tide.core.redis; the shared cache and limits fall back on both)
  redis = {retryable = false, from = "Redis",
    meaning = "Redis answered an error (`code`: NOSCRIPT, OOM, WRONGPASS, READONLY...)"},
  redis_unavailable = {retryable = true, from = "Redis",
    meaning = "no link to Redis: down, refused, lost mid-command, or no reply within the " ..
      "link's timeout; it reconnects by itself with back-off"},

  -- LM calls (tide.LM): transport and the provider's answer
  transport = {retryable = "varies", from = "LM",
    causes = {"dns", "connect", "tls", "proxy", "reset", "protocol", "too_large", "incomplete"},
    meaning = "the call's HTTP failed after its retries; `cause` is the transfer's kind " ..
      "(dns, connect, tls, proxy, reset, protocol, too_large) or `incomplete`: a stream cut " ..
      "before its end marker"},
  auth = {retryable = false, from = "LM", meaning = "the key was refused (401, 403)"},
  not_found = {retryable = false, from = "LM", meaning = "no such model or path (404)"},
  rate_limit = {retryable = true, from = "LM",
    meaning = "too many requests (429); `retry_after` when the server said how long"},
  quota = {retryable = false, from = "LM",
    meaning = "the account's quota or credit is spent (OpenAI's 429 insufficient_quota): " ..
      "waiting will not refill it"},
  server = {retryable = true, from = "LM", meaning = "the server failed (5xx, 409, 529)"},
  bad_request = {retryable = false, from = "LM",
    meaning = "the server refused the request (another 4xx); a DummyLM with no answer left"},
  context_window = {retryable = false, from = "LM",
    meaning = "the prompt does not fit the model's context"},
  content_filter = {retryable = false, from = "LM",
    meaning = "the provider blocked the prompt or the answer and gave no text"},
  empty = {retryable = false, from = "LM", meaning = "a 2xx answer with no text in it"},
  budget = {retryable = false, from = "LM", meaning = "the LM has spent its max_cost"},
  server_down = {retryable = false, from = "LM (tide/circuit.lua)",
    meaning = "the host refused (or failed to resolve, or to shake hands on) connections " ..
      "in a row and did not answer for the circuit's `wait`: the run should stop"},
  parse = {retryable = "varies", from = "LM, adapters",
    meaning = "an answer that is not what its format says: a provider body that is not its " ..
      "JSON, or a reply without the signature's fields (`raw`, `found`, `missing`)"},

  -- MCP servers (tide.mcp)
  mcp = {retryable = false, from = "tide.mcp",
    meaning = "an MCP server exited, wrote something that is not JSON-RPC, answered with a " ..
      "JSON-RPC error (`code`), or refused the handshake; `stderr` holds a stdio server's last " ..
      "words"},

  media = {retryable = false, from = "tide.Image/Audio/File, providers",
    meaning = "a media input that cannot be sent: a missing or unreadable file, an unknown " ..
      "extension or mime type, a kind the provider does not take, or too large for it " ..
      "(`path`, `mime`, `provider` say which)"},

  -- OpenTelemetry export (tide.trace): never raised into a program
  trace_export = {retryable = "varies", from = "tide.trace",
    meaning = "an OTLP collector refused a batch of spans (`status`; 408, 429 and 5xx are " ..
      "tried again): the exporter counts the spans dropped and says so once on stderr"},

  -- programs built on predictors
  panel = {retryable = false, from = "tide.fanout",
    meaning = "a critic or aggregator returned something other than a table of fields, " ..
      "or every critic failed (`errors` holds each one's)"},
  metric = {retryable = false, from = "tide.Evaluate, optimizers, BestOfN, Refine",
    meaning = "the metric raised or returned something other than a number or boolean"},
  program = {retryable = false, from = "tide.Evaluate, optimizers", meaning = "the program returned nil"},
  code = {retryable = false, from = "tide.ProgramOfThought",
    meaning = "the generated code still failed after max_iters tries (`code`, `code_error`)"},
  max_iters = {retryable = false, from = "tide.Predict with tools",
    meaning = "the model still called tools after max_iters turns of calls (`trajectory`: " ..
      "the conversation, `tool_calls`: each call with its result, error and timing)"},
  max_errors = {retryable = false, from = "tide.Evaluate, optimizers, tide.Parallel",
    meaning = "more examples failed than max_errors allows: the run stopped"},
}

--- names() → every kind, sorted.
function M.names()
  local out = {}
  for name in pairs(M.kinds) do out[#out + 1] = name end
  table.sort(out)
  return out
end

--- retryable(err) → whether trying again may help: the error's own flag when it
-- has one, else its kind's usual answer (false for a kind not listed, or a
-- value that is not an error object).
function M.retryable(err)
  if type(err) ~= "table" then return false end
  if type(err.retryable) == "boolean" then return err.retryable end
  local entry = M.kinds[err.kind]
  return entry ~= nil and entry.retryable == true
end

return M
