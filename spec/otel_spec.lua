-- OpenTelemetry export (tide.trace) to a real OTLP/HTTP receiver the spec starts
-- (spec/support/otlp_receiver.js), LM calls answered by mockllm: the span tree
-- and its parent ids across tasks, the GenAI attributes, the variables, content
-- only when asked for and then redacted, keys never exported, and a collector
-- that is unreachable or failing: the program unaffected, spans retried or
-- dropped and counted.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local stderr_of = require "support.stderr"
local spawn = require "support.spawn"

local KEY = "sk-otel-spec-key-0123456789"

--- The receiver: .url, .endpoint (its /v1/traces), :received(), :attempts(),
-- :fail(status, times), :reset(), :stop().
local function receiver()
  -- node is not ours to check: under `make check` it goes without the sanitizers' preload
  local self, port = {}
  self.pipe, self.pid, port = spawn("env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS " ..
    "node spec/support/otlp_receiver.js", "^listening on 127%.0%.0%.1 (%d+)$", "the OTLP receiver")
  self.port = tonumber(port)
  self.url = "http://127.0.0.1:" .. self.port
  self.endpoint = self.url .. "/v1/traces"
  local function get(path)
    local r = tide.request{url = self.url .. path, timeout = 10}
    assert(r.status == 200, r.body)
    return cjson.decode(r.body)
  end
  function self.received() return get("/__received") end
  function self.attempts() return get("/__received?attempts=1").attempts end
  function self.fail(status, times) return get(string.format("/__fail?status=%d&times=%d", status, times)) end
  function self.reset() return get("/__reset") end
  function self.lm_requests() return get("/__lm_requests") end
  function self.stop()
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
  end
  return self
end

--- Every span the receiver got: a list of spans, each with .attrs (key → plain
-- value) and .resource (the same for its resource); and the bodies' text.
local function spans_of(posts)
  local out, texts = {}, {}
  for _, post in ipairs(posts) do
    texts[#texts + 1] = cjson.encode(post.body)
    for _, rs in ipairs(post.body.resourceSpans) do
      local resource = {}
      for _, a in ipairs(rs.resource.attributes) do resource[a.key] = a.value.stringValue end
      for _, ss in ipairs(rs.scopeSpans) do
        assert.are.equal("tide", ss.scope.name)
        for _, s in ipairs(ss.spans) do
          s.attrs, s.resource = {}, resource
          for _, a in ipairs(s.attributes) do
            local v = a.value
            local plain = v.stringValue or v.intValue or v.doubleValue
            if v.boolValue ~= nil then plain = v.boolValue end
            if v.arrayValue then
              plain = {}
              for i, x in ipairs(v.arrayValue.values) do plain[i] = x.stringValue end
            end
            s.attrs[a.key] = plain
          end
          out[#out + 1] = s
        end
      end
    end
  end
  return out, table.concat(texts, "\n")
end

local function by_kind(spans, kind)
  local out = {}
  for _, s in ipairs(spans) do
    if s.attrs["tide.call.kind"] == kind then out[#out + 1] = s end
  end
  return out
end

local function by_id(spans)
  local out = {}
  for _, s in ipairs(spans) do out[s.spanId] = s end
  return out
end

describe("OpenTelemetry export", function()
  local server, recv
  setup(function()
    server = mockllm.start()
    recv = receiver()
  end)
  teardown(function()
    server:stop()
    recv.stop()
  end)
  before_each(function()
    server:reset()
    recv.reset()
  end)
  after_each(function()
    tide.trace.flush(5)
    tide.configure{trace = false, callbacks = false}
    tide.trace.flush(5)
    assert_clean()
  end)

  local function lm(scenario)
    return tide.LM("openai/mock", {api_key = KEY, base_url = server.url .. "/v1", num_retries = 0,
      cache = false, headers = scenario and {["X-Mock-Scenario"] = scenario} or nil})
  end

  local function trace_to(endpoint, extra)
    local opts = {endpoint = endpoint, service_name = "otel-spec", schedule_delay = 0.05}
    for k, v in pairs(extra or {}) do opts[k] = v end
    tide.configure{trace = opts}
  end

  it("exports evaluation → example → Predict → chat spans with GenAI attributes", function()
    trace_to(recv.endpoint)
    tide.configure{lm = lm()}
    local critic = tide.Predict("content -> score: int")
    local devset = {}
    for i = 1, 3 do devset[i] = {content = "draft number " .. i} end
    local r = tide.Evaluate{devset = devset, metric = function(_, p) return p.score >= 60 end,
      program = critic, concurrency = 2, display_progress = false, display_table = false}
    assert.are.equal(3, r.done)
    assert.is_true(tide.trace.flush(5))
    local spans, text = spans_of(recv.received())
    assert.are.equal(1 + 3 + 3 + 3, #spans)
    local ids = by_id(spans)
    local eval = by_kind(spans, "evaluate")[1]
    assert.is_nil(eval.parentSpanId)
    assert.are.equal("evaluate", eval.name)
    assert.matches("^%x+$", eval.traceId)
    assert.are.equal(32, #eval.traceId)
    assert.are.equal(16, #eval.spanId)
    assert.are.equal(1, tonumber(eval.attrs["tide.eval.score"]))
    for _, ex in ipairs(by_kind(spans, "example")) do
      assert.are.equal(eval.spanId, ex.parentSpanId)
      assert.are.equal(eval.traceId, ex.traceId)
      assert.are.equal("1", ex.attrs["tide.example.score"])
    end
    for _, p in ipairs(by_kind(spans, "module")) do
      assert.are.equal("Predict", p.name)
      assert.are.equal("example", ids[p.parentSpanId].attrs["tide.call.kind"])
    end
    local lm_spans = by_kind(spans, "lm")
    assert.are.equal(3, #lm_spans)
    for _, c in ipairs(lm_spans) do
      assert.are.equal("Predict", ids[c.parentSpanId].name)
      assert.are.equal(eval.traceId, c.traceId)
      assert.are.equal("chat mock", c.name)
      assert.are.equal(3, c.kind)   -- CLIENT
      local a = c.attrs
      assert.are.equal("chat", a["gen_ai.operation.name"])
      assert.are.equal("openai", a["gen_ai.provider.name"])
      assert.are.equal("mock", a["gen_ai.request.model"])
      assert.is_string(a["gen_ai.response.model"])
      assert.are.same({"stop"}, a["gen_ai.response.finish_reasons"])
      assert.is_true(tonumber(a["gen_ai.usage.input_tokens"]) > 0)
      assert.is_true(tonumber(a["gen_ai.usage.output_tokens"]) > 0)
      assert.is_nil(a["gen_ai.input.messages"])   -- no content without the variable
      assert.is_nil(a["gen_ai.output.messages"])
      assert.is_true(tonumber(c.endTimeUnixNano) >= tonumber(c.startTimeUnixNano))
      assert.are.equal("otel-spec", c.resource["service.name"])
    end
    -- the prompts are not exported, and never the key
    assert.is_nil(text:find("draft number", 1, true))
    assert.is_nil(text:find(KEY, 1, true))
    assert.are.same({exported = 10, dropped = 0}, {exported = tide.trace.stats().exported,
      dropped = tide.trace.stats().dropped})
  end)

  it("gives gathered predictors their module's span as parent, and errors error.type", function()
    trace_to(recv.endpoint)
    tide.configure{lm = lm("latency=100")}
    local Pair = tide.Module{
      init = function(self)
        self.a = tide.Predict("question -> answer")
        self.b = tide.Predict("question -> answer", {lm = lm("status=500")})
      end,
      forward = function(self, args)
        return tide.gather({function() return self.a{question = args.q} end,
                            function() return self.b{question = args.q} end}, {return_exceptions = true})
      end,
    }
    local results = Pair(){q = "in parallel"}
    assert.is_string(results[1].answer)
    assert.are.equal("server", results[2].kind)
    assert.are.equal(2, server:stats().peak_in_flight)
    assert.is_true(tide.trace.flush(5))
    local spans = spans_of(recv.received())
    local top = by_kind(spans, "module")
    local module_span
    for _, s in ipairs(top) do if s.name == "Module" then module_span = s end end
    local predicts = {}
    for _, s in ipairs(top) do
      if s.name == "Predict" then
        predicts[#predicts + 1] = s
        assert.are.equal(module_span.spanId, s.parentSpanId)
      end
    end
    assert.are.equal(2, #predicts)
    local failed = 0
    for _, c in ipairs(by_kind(spans, "lm")) do
      assert.are.equal(module_span.traceId, c.traceId)
      if c.attrs["error.type"] then
        failed = failed + 1
        assert.are.equal("server", c.attrs["error.type"])
        assert.are.equal(2, c.status.code)
        assert.are.equal("500", c.attrs["http.response.status_code"])
      end
    end
    assert.are.equal(1, failed)
  end)

  it("captures prompts and answers only with capture_content, and then redacted", function()
    trace_to(recv.endpoint, {capture_content = true, max_attribute = 4096})
    local model = lm()
    local answer = model:call{messages = {{role = "user", content = "my key is " .. KEY .. ", keep it"}}}
    -- a huge attribute, cut (never inside a character: "é" is two bytes), still exported
    model("x" .. string.rep("long prompté ", 2000))
    assert.is_true(tide.trace.flush(5))
    local spans, text = spans_of(recv.received())
    assert.are.equal(2, #spans)
    local first = spans[1].attrs["gen_ai.input.messages"] and spans[1] or spans[2]
    local input = cjson.decode(first.attrs["gen_ai.input.messages"])
    assert.are.equal("user", input[1].role)
    assert.are.equal("my key is [redacted], keep it", input[1].parts[1].content)
    local output = cjson.decode(first.attrs["gen_ai.output.messages"])
    -- mockllm says the prompt back: the answer is redacted too
    assert.are.equal((answer.text:gsub(KEY:gsub("%p", "%%%0"), "[redacted]")), output[1].parts[1].content)
    assert.matches("%[redacted%]", output[1].parts[1].content)
    assert.is_nil(text:find(KEY, 1, true))
    local other = first == spans[1] and spans[2] or spans[1]
    local cut = other.attrs["gen_ai.input.messages"]
    assert.is_true(#cut <= 4096 and #cut >= 4090)
    assert.is_truthy(utf8.len(cut))
    -- two-byte characters only, cut at two limits a byte apart: one of them falls
    -- inside a character, and both texts stay whole characters
    local lengths = {}
    for _, limit in ipairs{4096, 4097} do
      recv.reset()
      trace_to(recv.endpoint, {capture_content = true, max_attribute = limit})
      model(string.rep("é", 3000))
      assert.is_true(tide.trace.flush(5))
      local text_attr = spans_of(recv.received())[1].attrs["gen_ai.input.messages"]
      assert.is_truthy(utf8.len(text_attr))
      lengths[#lengths + 1] = #text_attr
    end
    assert.is_true(lengths[1] == 4095 or lengths[2] == 4096)
  end)

  it("leaves the program unaffected by an unreachable collector: spans dropped and counted", function()
    local gone = receiver()
    gone.stop()
    trace_to(gone.endpoint, {retries = 1})
    local model = lm()
    local out = stderr_of(function()
      for i = 1, 3 do assert.is_string(model("still answered " .. i)) end
      assert.is_true(tide.trace.flush(10))
    end)
    assert.are.equal(3, server:stats().requests)
    local s = tide.trace.stats()
    assert.are.same({exported = 0, dropped = 3, queued = 0}, {exported = s.exported, dropped = s.dropped,
      queued = s.queued})
    assert.matches("exporting %d span%(s%) to http://127%.0%.0%.1:%d+/v1/traces failed", out)
    local _, lines = out:gsub("\n", "")
    assert.are.equal(1, lines)   -- said once
  end)

  it("tries a 503 again with back-off, and drops a batch the collector refuses (400)", function()
    trace_to(recv.endpoint, {retries = 3})
    recv.fail(503, 2)
    assert.is_string(lm()("retried export"))
    assert.is_true(tide.trace.flush(10))
    assert.are.equal(3, recv.attempts())
    assert.are.equal(1, #recv.received())
    assert.are.same({1, 0}, {tide.trace.stats().exported, tide.trace.stats().dropped})
    recv.reset()
    recv.fail(400, 1)
    stderr_of(function()
      assert.is_string(lm()("refused export"))
      assert.is_true(tide.trace.flush(10))
    end)
    assert.are.equal(1, recv.attempts())   -- a 400 is not tried again
    assert.are.same({1, 1}, {tide.trace.stats().exported, tide.trace.stats().dropped})
  end)

  it("bounds the queue: spans past max_queue are dropped and counted", function()
    trace_to(recv.endpoint, {max_queue = 2, schedule_delay = 60})
    local dummy = tide.DummyLM(function() return "ok" end)
    -- DummyLM calls never yield: the exporter cannot run between them
    for i = 1, 5 do assert.are.equal("ok", dummy("call " .. i)) end
    assert.are.same({queued = 2, dropped = 3}, {queued = tide.trace.stats().queued,
      dropped = tide.trace.stats().dropped})
    assert.is_true(tide.trace.flush(5))
    assert.are.equal(2, #spans_of(recv.received()))
  end)

  it("reads the OTEL_* variables: endpoint, headers, service and resource; refuses protobuf", function()
    local env = {
      OTEL_TRACES_EXPORTER = "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT = recv.url .. "/",
      OTEL_EXPORTER_OTLP_HEADERS = "x-ingest-key=ingest%20secret-value,x-team=evals",
      OTEL_SERVICE_NAME = "from-env",
      OTEL_RESOURCE_ATTRIBUTES = "deployment.environment=spec,service.version=1.2",
      OTEL_BSP_SCHEDULE_DELAY = "50",
    }
    tide.trace.from_env(function(name) return env[name] end)
    assert.is_true(tide.trace.enabled())
    assert.is_string(lm()("from the environment"))
    assert.is_true(tide.trace.flush(5))
    local posts = recv.received()
    assert.are.equal(1, #posts)
    assert.are.equal("ingest secret-value", posts[1].headers["x-ingest-key"])
    assert.are.equal("evals", posts[1].headers["x-team"])
    assert.are.equal("application/json", posts[1].headers["content-type"])
    local span = spans_of(posts)[1]
    assert.are.same({"from-env", "spec", "1.2"}, {span.resource["service.name"],
      span.resource["deployment.environment"], span.resource["service.version"]})
    tide.configure{trace = false}
    env.OTEL_EXPORTER_OTLP_PROTOCOL = "http/protobuf"
    local out = stderr_of(function() tide.trace.from_env(function(name) return env[name] end) end)
    assert.is_false(tide.trace.enabled())
    assert.matches("http/protobuf: tide exports http/json only", out)
    env.OTEL_EXPORTER_OTLP_PROTOCOL, env.OTEL_TRACES_EXPORTER = nil, "none"
    tide.trace.from_env(function(name) return env[name] end)
    assert.is_false(tide.trace.enabled())
  end)

  it("flushes a tide script's spans as it ends, without waiting for the schedule", function()
    local bin = os.getenv("TIDE_BIN") or "build/tide"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
local tide = require "tide"
local lm = tide.LM("openai/mock", {api_key = %q, base_url = %q, cache = false})
print(lm("from a script"))
]], KEY, server.url .. "/v1"))
    f:close()
    local cmd = string.format("OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=%s " ..
      "OTEL_BSP_SCHEDULE_DELAY=60000 OTEL_SERVICE_NAME=script %s %s 2>&1", recv.url, bin, script)
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    os.remove(script)
    assert.is_true(ok, out)
    local spans, text = spans_of(recv.received())
    assert.are.equal(1, #spans)
    assert.are.equal("chat mock", spans[1].name)
    assert.are.equal("script", spans[1].resource["service.name"])
    assert.is_nil(text:find(KEY, 1, true))
  end)

  it("sends a host's queued spans when it calls tide_close", function()
    local host = os.getenv("SPEC_HOST_BIN") or "build/spec_host"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    -- the call is made on the main flow as the script loads; the schedule is a
    -- minute away and the host closes after one frame: only tide_close sends it
    f:write(string.format([[
local tide = require "tide"
tide.configure{trace = {endpoint = %q, schedule_delay = 60, service_name = "host"}}
local lm = tide.LM("openai/mock", {api_key = %q, base_url = %q, cache = false})
lm("from a host")
]], recv.endpoint, KEY, server.url .. "/v1"))
    f:close()
    local p = io.popen(string.format("%s %s --frames 1 2>&1", host, script))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("frames=1 live=1", out)   -- the exporter was still waiting
    local spans = spans_of(recv.received())
    assert.are.equal(1, #spans, out)
    assert.are.equal("host", spans[1].resource["service.name"])
  end)

  it("sends a W3C traceparent on LM requests: the chat span as the parent; none untraced", function()
    local function receiver_lm()
      return tide.LM("openai/receiver", {api_key = KEY, base_url = recv.url .. "/v1", cache = false})
    end
    assert.are.equal("ok", receiver_lm()("untraced"))
    trace_to(recv.endpoint)
    assert.are.equal("ok", receiver_lm()("traced"))
    assert.is_true(tide.trace.flush(5))
    local requests = recv.lm_requests()
    assert.are.equal(2, #requests)
    assert.is_nil(requests[1].headers.traceparent)
    local span = spans_of(recv.received())[1]
    assert.are.equal(string.format("00-%s-%s-01", span.traceId, span.spanId), requests[2].headers.traceparent)
    -- traceparent = false: spans, no header
    trace_to(recv.endpoint, {traceparent = false})
    assert.are.equal("ok", receiver_lm()("traced, not propagated"))
    assert.is_nil(recv.lm_requests()[3].headers.traceparent)
  end)

  it("refuses bad settings, naming the field", function()
    local ok, err = pcall(tide.configure, {trace = {endpont = "http://x"}})
    assert.is_false(ok)
    assert.matches("unknown field 'endpont'", err)
    ok, err = pcall(tide.configure, {trace = {endpoint = "ftp://collector"}})
    assert.is_false(ok)
    assert.matches("bad argument 'trace.endpoint' to 'configure' %(an http:// or https:// URL", err)
    ok, err = pcall(tide.configure, {trace = {max_queue = 0}})
    assert.is_false(ok)
    assert.matches("trace.max_queue", err)
    assert.is_false(tide.trace.enabled())
  end)
end)
