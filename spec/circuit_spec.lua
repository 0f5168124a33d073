-- The circuit of a host (tide/circuit.lua): a server that goes away holds the
-- calls to it, a restart shorter than the wait loses none, a server that stays
-- away ends them with server_down; every failed call keeps its attempts.
local tide = require "tide"
local circuit = require "tide.circuit"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

--- Stops a server and waits until its port refuses connections (SIGTERM lets
-- mockllm finish what it was doing first).
local function stop(server)
  server:stop()
  for _ = 1, 500 do
    local ok, err = pcall(tide.request, {url = server.url .. "/", timeout = 1})
    if not ok and err.kind == "connect" then return end
    tide.sleep(0.01)
  end
  error("mockllm did not stop")
end

--- A port nothing listens on now but that a restarted mockllm can take again.
local function stopped_server()
  local s = mockllm.start()
  stop(s)
  return s.port, s.url
end

local function lm_at(url, opts)
  opts = opts or {}
  opts.api_key, opts.base_url, opts.cache = "sk-test-key", url .. "/v1", false
  if opts.num_retries == nil then opts.num_retries = 1 end
  return tide.LM("openai/mock", opts)
end

describe("the circuit of a host", function()
  before_each(circuit.reset)
  after_each(function()
    circuit.reset()
    assert_clean()
  end)

  it("ends calls to a server that stays away with server_down, naming the host", function()
    local _, url = stopped_server()
    local events = {}
    local watch <close> = circuit.watch(function(event, origin) events[#events + 1] = event .. " " .. origin end)
    local lm = lm_at(url, {circuit = {failures = 3, wait = 0.3}})
    local ok, err = pcall(lm.call, lm, "hello")
    assert.is_false(ok)
    assert.are.equal("server_down", err.kind)
    assert.matches("the server at " .. url:gsub("%p", "%%%0") .. " refused %d+ connections in a row", err.message)
    watch:close()
    assert.are.same({"open " .. url, "down " .. url}, events)
    -- the call's attempts: refused each time, in the LM's words
    assert.is_true(#err.history >= 3)
    for i, a in ipairs(err.history) do
      if i < #err.history then
        assert.are.equal("transport", a.kind)
        assert.are.equal("connect", a.cause)
      else
        assert.are.equal("server_down", a.kind)   -- held, then given up
      end
    end
    assert.is_number(err.history[1].delay)   -- the wait before the retry
  end)

  it("holds a call while the server restarts, and loses none of it", function()
    local port, url = stopped_server()
    local lm = lm_at(url, {circuit = {failures = 2, wait = 20}})
    local server
    local restart = tide.spawn(function()
      tide.sleep(0.5)
      server = mockllm.start{port = port}
    end)
    local r = lm:call("hello after a restart")
    restart:wait()
    assert.matches("hello after a restart", r.text)
    assert.are.equal(1, server:stats().by_route.openai)   -- the probes are GETs of /, not calls
    server:stop()
  end)

  it("shares one host's state between LMs, and counts only connection failures", function()
    local server = mockllm.start()
    local a = lm_at(server.url, {circuit = {failures = 1, wait = 0.3}, num_retries = 5})
    local b = lm_at(server.url, {circuit = {failures = 1000, wait = 0.3}, num_retries = 5,
      headers = {["X-Mock-Scenario"] = "status=400"}})
    -- HTTP errors are answers: any number of them leaves the circuit closed
    for _ = 1, 4 do assert.are.equal("bad_request", select(2, pcall(b.call, b, "fails")).kind) end
    assert.are.same({}, circuit.open_hosts())
    stop(server)
    -- a's first refused connection opens the host's circuit (failures = 1) ...
    local first = tide.spawn(function() return select(2, pcall(a.call, a, "one")) end)
    tide.sleep(0.05)
    assert.is_number(circuit.open_hosts()[server.url])
    -- ... which holds b's call before it makes a request of its own
    local ok, err = pcall(b.call, b, "two")
    assert.is_false(ok)
    assert.are.equal("server_down", err.kind)
    assert.are.same({{kind = "server_down"}}, err.history)   -- no request of its own
    assert.are.equal("server_down", first:wait().kind)
  end)

  it("holds no call outside a run unless the LM sets a wait", function()
    local _, url = stopped_server()
    local lm = lm_at(url, {num_retries = 0})
    local ok, err = pcall(lm.call, lm, "fails fast")
    assert.is_false(ok)
    assert.are.equal("transport", err.kind)
    assert.are.equal("connect", err.cause)
    assert.are.same({}, circuit.open_hosts())
    -- the run's wait (tide.Evaluate's) holds it
    ok, err = tide.context({circuit_default_wait = 0.2}, pcall, lm.call, lm, "held")
    assert.is_false(ok)
    assert.are.equal("server_down", err.kind)
  end)

  it("does not hold a call whose LM sets no wait, though others wait for its host", function()
    local _, url = stopped_server()
    local patient = lm_at(url, {circuit = {failures = 1, wait = 0.5}})
    local held = tide.spawn(function() return select(2, pcall(patient.call, patient, "held")) end)
    tide.sleep(0.05)
    assert.is_number(circuit.open_hosts()[url])
    local plain = lm_at(url, {num_retries = 0})
    local ok, err = pcall(plain.call, plain, "not held")
    assert.is_false(ok)
    assert.are.equal("transport", err.kind)
    assert.is_number(circuit.open_hosts()[url])   -- it answered before the wait was up
    assert.are.equal("server_down", held:wait().kind)
  end)

  it("records each attempt of a failed call: kind, status and the wait after it", function()
    local server = mockllm.start()
    local lm = lm_at(server.url, {num_retries = 2,
      headers = {["X-Mock-Scenario"] = "status=503;retry_after=0"}})
    local ok, err = pcall(lm.call, lm, "three tries")
    server:stop()
    assert.is_false(ok)
    assert.are.equal(3, err.attempts)
    assert.are.equal(3, #err.history)
    for i, a in ipairs(err.history) do
      assert.are.equal("server", a.kind)
      assert.are.equal(503, a.status)
      if i < 3 then assert.is_number(a.delay) else assert.is_nil(a.delay) end
    end
  end)

  it("checks lm.circuit's options, blaming the caller", function()
    assert.has_error(function() tide.LM("openai/mock", {api_key = "k", base_url = "http://x/v1",
      circuit = {failures = 0}}) end)
    assert.has_error(function() tide.LM("openai/mock", {api_key = "k", base_url = "http://x/v1",
      circuit = "soon"}) end)
  end)
end)
