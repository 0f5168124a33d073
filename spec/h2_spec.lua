-- HTTP/2 over TLS: against a Node http2 server that offers h2 by ALPN (and counts
-- the TLS connections it accepts), concurrent calls share one connection as
-- streams, and new connections resume the TLS session of earlier ones.
local tide = require "tide"
local tls = require "support.tls"
local files = require "support.files"
local assert_clean = require "support.clean"

local pki, dir, h2, h1

setup(function()
  dir = files.tmpdir()
  pki = tls.pki(dir)
  h2 = tls.server(pki, {h2 = true, delay_ms = 200})
  h1 = tls.server(pki, {close = true})
end)

teardown(function()
  h2:stop()
  h1:stop()
  os.execute("rm -rf " .. dir)
end)

before_each(function()
  h2:reset()
  h1:reset()
end)

after_each(assert_clean)

-- Runs fn(i) for i = 1..n at once, sampling tide.stats().sockets meanwhile.
-- → the results, the most sockets seen.
local function concurrently(n, fn)
  local done, peak = false, 0
  local sampler = tide.spawn(function()
    while not done do
      peak = math.max(peak, tide.stats().sockets)
      tide.sleep(0.005)
    end
  end)
  local items = {}
  for i = 1, n do items[i] = i end
  local results = tide.map(items, fn)
  done = true
  sampler:wait()
  return results, peak
end

describe("HTTP/2 over TLS", function()
  it("carries 200 concurrent calls on at most 2 connections", function()
    -- One call first: until the server's SETTINGS frame arrives, HTTP/2 clients
    -- (nghttp2 under libcurl) allow 100 streams on a new connection, so a cold
    -- burst that lands in that window can open more (docs/api.md, known limit).
    assert.equal(200, tide.request{url = h2.url .. "/?warm", ca_file = pki.ca, timeout = 30}.status)
    local results, sockets = concurrently(200, function(i)
      local r = tide.request{url = h2.url .. "/?i=" .. i, ca_file = pki.ca, timeout = 30}
      return r.status
    end)
    assert.equal(200, #results)
    for _, status in ipairs(results) do assert.equal(200, status) end
    local s = h2:stats()
    assert.equal(201, s.requests)
    assert.is_true(s.peak_streams >= 100, "the calls did not overlap: " .. s.peak_streams)
    assert.is_true(s.connections <= 2, s.connections .. " TLS connections for 200 calls")
    assert.equal(s.connections, s.alpn.h2)   -- every one of them spoke h2
    assert.is_true(sockets >= 1 and sockets <= 2, "tide.stats().sockets reached " .. sockets)
  end)

  it("carries an LM's concurrent calls and streams the same way", function()
    local lm = tide.LM("openai/tls-model", {base_url = h2.url .. "/v1", api_key = "k",
      ca_file = pki.ca, cache = false})
    local results = concurrently(50, function(i) return lm("q" .. i) end)
    for i, text in ipairs(results) do assert.equal("echo: q" .. i, text) end
    local s <close> = tide.stream{url = h2.url .. "/", ca_file = pki.ca}
    assert.equal(200, s.status)
    local body = {}
    for piece in s:chunks() do body[#body + 1] = piece end
    assert.matches('"content":"ok"', table.concat(body))
    local st = h2:stats()
    assert.equal(51, st.requests)
    assert.is_true(st.connections <= 2, st.connections .. " TLS connections")
  end)

  it("resumes the TLS session when it must open a new connection", function()
    -- this server closes every connection after its answer (HTTP/1.1)
    for _ = 1, 6 do
      assert.equal(200, tide.request{url = h1.url .. "/", ca_file = pki.ca}.status)
    end
    local s = h1:stats()
    assert.equal(6, s.connections)
    assert.is_true(s.resumed >= 2, s.resumed .. " of 6 handshakes resumed a session")
  end)
end)
