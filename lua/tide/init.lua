--- tide: language-model programs in Lua.
--
-- This file is the public face of the library.  Everything that waits (tasks,
-- gather, timers, HTTP) lives in the C core, `tide.core`; later layers (LM
-- providers, signatures, panels, evaluation) are Lua modules under tide/.

local core = require "tide.core"
local check = require "tide.check"

local tide = {
  version = core.version,

  -- tasks
  spawn = core.spawn,
  current = core.current,

  -- structured fan-out
  gather = core.gather,
  map = core.map,
  race = core.race,
  timeout = core.timeout,

  -- time and limits
  sleep = core.sleep,
  now = core.now,
  semaphore = core.semaphore,

  -- HTTP
  request = core.request,
  stream = core.stream,

  -- child processes (pipes read and written without blocking)
  process = core.process,
  http_limits = core.http_limits,

  -- retries and rate limits
  retry = core.retry,
  bucket = core.bucket,

  -- errors (tide.errors: every kind tide raises)
  error = core.error,
  is_error = core.is_error,
  errors = require "tide.errors",

  -- JSON with integers kept as integers, and its null
  json = require "tide.json",

  -- driving the loop (hosts, scripts under plain lua5.4)
  poll = core.poll,
  stats = core.stats,
}

-- ---- LM ---------------------------------------------------------------------

local lm = require "tide.lm"
local history = require "tide.history"
local cache = require "tide.cache"

tide.LM = lm.new
tide.DummyLM = lm.dummy

-- What a program may not use is loaded when first named (tide.BestOfN, tide.mcp, ...):
-- `require "tide"` then costs a script or a host that embeds tide only the parts it
-- uses.  The REPL's completion reads the names from the metatable's __fields.
local LAZY = {}
setmetatable(tide, {
  __index = function(t, name)
    local load = LAZY[name]
    if load == nil then return nil end
    local v = load()
    rawset(t, name, v)
    return v
  end,
  __fields = LAZY,
})

--- tide.Embedder(model, opts): texts to vectors, batched and cached;
-- tide.retrieve.knn(embedder, corpus) ranks a corpus by similarity; tide.prices
-- is the price table an LM (or embedder) given no `price` uses.
function LAZY.Embedder() return require("tide.embedder").new end
function LAZY.retrieve() return require "tide.retrieve" end
function LAZY.prices() return require "tide.prices" end

local settings = require "tide.settings"

--- What tide uses when a call does not say (tide.configure sets these).
tide.settings = settings.global

--- tide.configure{lm = lm, adapter = tide.adapters.json, cache = false | {dir = path, memory = n},
-- tls = {ca_file =, ca_path =, cert_file =, key_file =, key_password =} | false,
-- callbacks = {cb, ...} | false (tide.callbacks), trace = {...} | false (tide.trace:
-- OpenTelemetry export, docs/tracing.md)}
-- redis = url | {url =, ttl =, timeout =} | false: the Redis that processes share
-- for the LM cache and rate limits (else $TIDE_REDIS_URL; docs/redis.md).
-- lm = false and adapter = false unset them: calls then need their own LM, and
-- use the chat adapter.
function tide.configure(opts)
  check.type("configure", 1, opts, "table")
  if opts.lm ~= nil then
    if opts.lm ~= false and getmetatable(opts.lm) ~= lm.LM then
      check.misuse("tide.configure: lm must be a tide.LM, or false to unset it")
    end
    settings.global.lm = opts.lm or nil
  end
  if opts.adapter ~= nil then
    if opts.adapter ~= false and
        (type(opts.adapter) ~= "table" or type(opts.adapter.call) ~= "function") then
      check.misuse("tide.configure: adapter must be tide.adapters.chat or tide.adapters.json, " ..
        "or false to unset it")
    end
    settings.global.adapter = opts.adapter or nil
  end
  if opts.cache ~= nil then
    if opts.cache == false then
      lm.set_default_cache(cache.new{memory = 0, dir = false, redis = false})
    elseif type(opts.cache) == "table" then
      lm.set_default_cache(cache.new{memory = opts.cache.memory, dir = opts.cache.dir})
    else
      check.misuse("tide.configure: cache must be false or {dir = ..., memory = ...}")
    end
  end
  if opts.tls ~= nil then require("tide.tls").configure(opts.tls) end
  if opts.redis ~= nil then require("tide.shared.redis").configure(opts.redis) end
  if opts.callbacks ~= nil then require("tide.callbacks").configure(opts.callbacks) end
  if opts.trace ~= nil then require("tide.trace").configure(opts.trace) end
  return settings.global
end

--- tide.context({lm = other}, fn, ...) runs fn(...) as a task in which (and in
-- whose children) those settings hold; other tasks keep theirs.
tide.context = settings.with

-- ---- signatures, predictors, modules ---------------------------------------------

local predict = require "tide.predict"
local prediction = require "tide.prediction"

tide.Signature = require("tide.signature").new
tide.Predict = predict.new
tide.ChainOfThought = predict.chain_of_thought
tide.Module = require("tide.module").new
tide.Example = prediction.example
tide.Prediction = prediction.prediction
tide.adapters = {chat = require "tide.adapters.chat", json = require "tide.adapters.json"}

--- tide.Image{path =} | {url =} | {bytes =, mime =}, tide.Audio{...}, tide.File{...}:
-- media for inputs typed image / audio / file, and for lm:call's message content.
local media = require "tide.media"
tide.Image, tide.Audio, tide.File = media.image, media.audio, media.file

--- tide.Tool{name, desc, args, fn}: a function a model may call (lm:call{tools = ...}).
tide.Tool = require("tide.tools.tool").new

--- tide.mcp.connect{command = {...}} or {url = ...}: an MCP server's tools as tide.Tools.
function LAZY.mcp() return require "tide.mcp" end

--- tide.ReAct(signature, {tools, max_iters}): DSPy's ReAct agent, its prompts included.
function LAZY.ReAct() return require("tide.react").new end

-- ---- patterns ------------------------------------------------------------------

--- Modules over modules, as DSPy's: BestOfN (N attempts at once, the best kept), Refine
-- (attempts in turn with advice), MultiChainComparison, Parallel, ProgramOfThought (Lua
-- code run in a sandbox), and majority voting.
function LAZY.BestOfN() return require "tide.modules.best_of_n" end
function LAZY.Refine() return require "tide.modules.refine" end
function LAZY.MultiChainComparison() return require "tide.modules.multi_chain_comparison" end
function LAZY.Parallel() return require "tide.modules.parallel" end
function LAZY.ProgramOfThought() return require "tide.modules.program_of_thought" end
function LAZY.majority() return require "tide.modules.majority" end

--- Critics in parallel and their verdict: tide.fanout.Panel, .Perspectives and the
-- aggregation helpers; tide.critics is the founding example's panel.
tide.fanout = require "tide.fanout"
tide.critics = require "tide.critics"

-- ---- evaluation ----------------------------------------------------------------

--- tide.Evaluate{devset, metric, ...}: a program over a dataset, scored; tide.dataset
-- loads JSONL, CSV and Lua tables as Examples.
function LAZY.Evaluate() return require("tide.eval.evaluate").new end
function LAZY.dataset() return require "tide.eval.dataset" end

--- tide.metrics: exact_match, f1, passage_match, normalize_text (DSPy's).
function LAZY.metrics() return require "tide.metrics" end

-- ---- optimizers ----------------------------------------------------------------

--- tide.LabeledFewShot{k}:compile(program, {trainset = ...}) → a program with demos.
function LAZY.LabeledFewShot() return require("tide.optimize.labeled").new end
--- tide.BootstrapFewShot{metric, ...}: demos from the teacher's traces that pass the
-- metric; tide.BootstrapFewShotWithRandomSearch{metric, num_candidate_programs, ...}:
-- the best of several bootstraps on the valset.
function LAZY.BootstrapFewShot() return require("tide.optimize.bootstrap").new end
function LAZY.BootstrapFewShotWithRandomSearch() return require("tide.optimize.random_search").new end
--- tide.MIPROv2{metric, auto = "light", ...}: instructions (a grounded proposer) and
-- demo sets searched together (TPE on minibatches, full evaluations of the best).
function LAZY.MIPROv2() return require("tide.optimize.mipro").new end
--- tide.GEPA{metric, reflection_lm, max_metric_calls | auto | max_full_evals}: reflective
-- evolution of instructions from the metric's feedback, a Pareto front, merge.
function LAZY.GEPA() return require("tide.optimize.gepa").new end
--- tide.Ensemble{reduce_fn, size}:compile(programs): the programs at once, reduced.
function LAZY.Ensemble() return require("tide.optimize.ensemble").new end
function LAZY.KNNFewShot() return require("tide.optimize.knn").new end

--- tide.inspect_history(n) prints the last n LM calls, from every LM.
function tide.inspect_history(n, write)
  history.inspect(n, nil, write)
end

--- tide.usage() → token and cost totals of every LM call so far.
function tide.usage()
  return history.usage
end

--- Runs fn(...) as a task and returns its results, raising its error.  On the main
-- flow this runs the loop until fn is done; inside a task it waits for it.
-- Without a function, runs the loop until no task is left.
function tide.run(fn, ...)
  if fn == nil then
    if core.current() then
      check.misuse("tide.run: called inside a task; only the main flow (a host, a " ..
        "script's top level outside tide) drives the loop; in a task, wait with task:wait()")
    end
    return core.run_until_idle()
  end
  return core.spawn(fn, ...):wait()
end

-- ---- tracing -------------------------------------------------------------------

--- tide.trace: OpenTelemetry export (OTEL_TRACES_EXPORTER=otlp, or
-- tide.configure{trace = {...}}); flush() and stats().  docs/tracing.md
function LAZY.trace() return require "tide.trace" end
-- the OTEL_* variables are read once, here; without an exporter named, tracing stays
-- off and its modules unloaded
if os.getenv("OTEL_TRACES_EXPORTER") ~= nil then tide.trace.from_env() end

return tide
