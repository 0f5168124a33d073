-- TLS as deployments run it: a private CA made here with the openssl CLI, a Node
-- TLS server signed by it (spec/support/tls_server.js), trust by option, by
-- tide.configure and by the standard variables — each in a child process whose
-- environment the spec sets, since this machine's own SSL_CERT_FILE must not
-- decide anything — client certificates, and verification on unless turned off.
local tide = require "tide"
local tls = require "support.tls"
local files = require "support.files"
local assert_clean = require "support.clean"

local pki, dir, server, mtls

setup(function()
  dir = files.tmpdir()
  pki = tls.pki(dir)
  server = tls.server(pki)
  mtls = tls.server(pki, {mtls = true})
end)

teardown(function()
  server:stop()
  mtls:stop()
  tide.configure{tls = false}
  os.execute("rm -rf " .. dir)
end)

after_each(assert_clean)

-- An LM call refused by TLS: `transport` with cause tls.  A refused certificate
-- says the host is there, so it never counts toward the host's circuit.
local function assert_lm_tls_failure(err)
  assert.equal("transport", err.kind)
  assert.equal("tls", err.cause)
end

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "the call went through")
  return err
end

-- A child lua5.4 that makes one request to url with the options in opts_src
-- (Lua source of a table's fields) and prints its status, or the error's kind
-- and message.  → its output.
local function child(url, env, opts_src)
  local script = string.format([[
    local tide = require "tide"
    tide.run(function()
      local ok, r = pcall(tide.request, {url = %q, timeout = 10, %s})
      if ok then print("status " .. r.status) else print("error " .. tostring(r.kind) .. ": " ..
        tostring(type(r) == "table" and r.message or r)) end
      ok, r = pcall(tide.request, {url = %q, timeout = 10, %s})
      if ok then print("status " .. r.status) end
    end)]], url, opts_src or "", url, opts_src or "")
  local _, out = tls.run(script, env)
  return out
end

describe("trust", function()
  it("refuses the private CA's server without trust, by default", function()
    -- no variable at all: libcurl's built-in store, which does not hold the spec's CA
    local out = child(server.url .. "/", {})
    assert.matches("^error tls: .*certificate", out)
    -- in this process too (whatever this machine's variables name, not this CA)
    local err = err_of(tide.request, {url = server.url .. "/"})
    assert.equal("tls", err.kind)
    assert.is_false(err.retryable)
  end)

  it("trusts the CA given by ca_file or ca_path, and only it", function()
    assert.equal(200, tide.request{url = server.url .. "/", ca_file = pki.ca}.status)
    assert.equal(200, tide.request{url = server.url .. "/", ca_path = pki.cadir}.status)
    assert.equal("tls", err_of(tide.request, {url = server.url .. "/", ca_file = pki.other_ca}).kind)
    local s <close> = tide.stream{url = server.url .. "/", ca_file = pki.ca}
    assert.equal(200, s.status)
  end)

  it("trusts what tide.configure{tls = ...} names when a request does not say", function()
    tide.configure{tls = {ca_file = pki.ca}}
    local ok, r = pcall(tide.request, {url = server.url .. "/"})
    local refused = err_of(tide.request, {url = server.url .. "/", ca_file = pki.other_ca})
    tide.configure{tls = false}
    assert.is_true(ok, tostring(r))
    assert.equal(200, r.status)
    assert.equal("tls", refused.kind)   -- the request's own option wins
    assert.equal("tls", err_of(tide.request, {url = server.url .. "/"}).kind)
  end)

  it("trusts SSL_CERT_FILE, SSL_CERT_DIR, CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE", function()
    local url = server.url .. "/"
    assert.matches("^status 200", child(url, {SSL_CERT_FILE = pki.ca}))
    assert.matches("^status 200", child(url, {SSL_CERT_DIR = pki.cadir}))
    assert.matches("^status 200", child(url, {CURL_CA_BUNDLE = pki.ca}))
    assert.matches("^status 200", child(url, {REQUESTS_CA_BUNDLE = pki.ca}))
    assert.matches("^status 200", child(url, {REQUESTS_CA_BUNDLE = pki.cadir}))
  end)

  it("takes the variables in order, an option before them all, and replaces the system store", function()
    local url = server.url .. "/"
    -- SSL_CERT_FILE before CURL_CA_BUNDLE before REQUESTS_CA_BUNDLE
    assert.matches("^error tls", child(url, {SSL_CERT_FILE = pki.other_ca, CURL_CA_BUNDLE = pki.ca}))
    assert.matches("^error tls", child(url, {CURL_CA_BUNDLE = pki.other_ca, REQUESTS_CA_BUNDLE = pki.ca}))
    assert.matches("^status 200", child(url, {CURL_CA_BUNDLE = pki.ca, REQUESTS_CA_BUNDLE = pki.other_ca}))
    -- the option wins over the variable, and what it names is all that is trusted
    assert.matches("^status 200", child(url, {SSL_CERT_FILE = pki.other_ca},
      string.format("ca_file = %q", pki.ca)))
    assert.matches("^error tls", child(url, {SSL_CERT_FILE = pki.ca},
      string.format("ca_file = %q", pki.other_ca)))
  end)

  it("names the variable or the option whose CA file cannot be read", function()
    local url = server.url .. "/"
    assert.matches("^error tls: SSL_CERT_FILE names '/nonexistent/ca.pem', which cannot be read",
      child(url, {SSL_CERT_FILE = "/nonexistent/ca.pem"}))
    assert.matches("^error tls: CURL_CA_BUNDLE names '" .. dir:gsub("%p", "%%%0") .. "', which " ..
      "cannot be read: a directory", child(url, {CURL_CA_BUNDLE = dir}))
    assert.matches("^error tls: SSL_CERT_DIR names '" .. pki.ca:gsub("%p", "%%%0") ..
      "', which cannot be read: not a directory", child(url, {SSL_CERT_DIR = pki.ca}))
    -- a plain-HTTP request does not care what the variables name
    assert.matches("^error connect", child("http://127.0.0.1:9/", {SSL_CERT_FILE = "/nonexistent"}))
    local err = err_of(tide.request, {url = url, ca_file = "/nonexistent/ca.pem"})
    assert.equal("tls", err.kind)
    assert.matches("field 'ca_file' names '/nonexistent/ca.pem', which cannot be read", err.message)
    err = err_of(tide.configure, {tls = {ca_path = "/nonexistent"}})
    assert.matches("tide.configure's tls.ca_path names '/nonexistent'", err.message)
  end)

  it("checks an LM's CA when the LM is made, and its calls trust it", function()
    local lm = tide.LM("openai/tls-model", {base_url = server.url .. "/v1", api_key = "k",
      ca_file = pki.ca, cache = false})
    assert.equal("echo: hello", lm("hello"))
    local err = err_of(tide.LM, "openai/tls-model", {base_url = server.url .. "/v1", api_key = "k",
      ca_file = dir .. "/missing.pem"})
    assert.equal("tls", err.kind)
    assert.matches("field 'ca_file' names '.*missing.pem', which cannot be read", err.message)
    -- without the CA, the call fails as transport, cause tls
    local plain = tide.LM("openai/tls-model", {base_url = server.url .. "/v1", api_key = "k",
      ca_file = pki.other_ca, cache = false, num_retries = 0, circuit = {wait = 0}})
    assert_lm_tls_failure(err_of(plain, "hello"))
    -- a refused certificate is not a host that went away: with a circuit that
    -- would hold a call for a minute, the call still fails at once, every time,
    -- and the host's circuit never opens
    local circuit = require "tide.circuit"
    local opened = 0
    local _ <close> = circuit.watch(function(event) if event == "open" then opened = opened + 1 end end)
    local held = tide.LM("openai/tls-model", {base_url = server.url .. "/v1", api_key = "k",
      ca_file = pki.other_ca, cache = false, num_retries = 0, circuit = {failures = 1, wait = 60}})
    for _ = 1, 3 do assert_lm_tls_failure(err_of(held, "hello")) end
    assert.equal(0, opened)
    -- the variable, at construction too
    local out = select(2, tls.run(string.format([[
      local tide = require "tide"
      local ok, err = pcall(tide.LM, "openai/x", {base_url = %q, api_key = "k"})
      print(ok, err.kind, err.message)]], server.url .. "/v1"), {SSL_CERT_FILE = "/nonexistent"}))
    assert.matches("^false\ttls\tSSL_CERT_FILE names '/nonexistent'", out)
  end)

  it("rides out a private-CA host's restart: the circuit holds the call until it answers", function()
    local port = tls.free_port()
    local url = "https://127.0.0.1:" .. port
    local lm = tide.LM("openai/tls-model", {base_url = url .. "/v1", api_key = "k", ca_file = pki.ca,
      cache = false, num_retries = 0, circuit = {failures = 1, wait = 30}})
    local back
    local restart = tide.spawn(function()
      tide.sleep(0.5)
      back = tls.server(pki, {port = port})
    end)
    -- refused at first: the circuit opens and holds the call; the probe (made
    -- with the LM's CA and proxy) sees the host answer once it is back, and the
    -- call goes on over TLS
    local ok, r = pcall(lm.call, lm, "hello")
    restart:wait()
    back:stop()
    assert.is_true(ok, ok or tostring(r and r.message))
    assert.equal("echo: hello", r.text)
  end)

  it("streams an LM's answer over TLS with the LM's CA", function()
    local mock = require("support.mockllm").start{lenient = true}
    local front = tls.server(pki, {upstream = mock.url})
    local ok, err = pcall(function()
      local lm = tide.LM("openai/gpt-4o-mini", {base_url = front.url .. "/v1", api_key = "k",
        ca_file = pki.ca, cache = false})
      local pieces = {}
      for piece in lm:stream("hello") do pieces[#pieces + 1] = piece end
      assert.is_true(#pieces > 1)
      assert.equal(1, front:stats().connections)
      local refused = tide.LM("openai/gpt-4o-mini", {base_url = front.url .. "/v1", api_key = "k",
        ca_file = pki.other_ca, cache = false, num_retries = 0, circuit = {wait = 0}})
      local ok2, e = pcall(function() for _ in refused:stream("hello") do end end)
      assert.is_false(ok2)
      assert_lm_tls_failure(e)
    end)
    front:stop()
    mock:stop()
    assert(ok, err)
  end)

  it("refuses bad option types with the option's name", function()
    assert.has_error(function() tide.request{url = server.url, ca_file = 3} end,
      "bad argument #1 to 'request' (field 'ca_file' must be a string)")
    assert.has_error(function() tide.request{url = server.url, tls_verify = "no"} end,
      "bad argument #1 to 'request' (field 'tls_verify' must be a boolean)")
    assert.has_error(function() tide.configure{tls = {tls_verify = false}} end)
    assert.has_error(function()
      tide.LM("openai/x", {base_url = server.url, api_key = "k", cert_file = {}})
    end, "bad argument 'opts.cert_file' to 'LM' (string expected, got table)")
  end)
end)

describe("client certificates", function()
  local function call(opts)
    opts.url = mtls.url .. "/"
    opts.ca_file = pki.ca
    opts.timeout = 10
    return tide.request(opts)
  end

  it("are refused when missing, accepted with cert_file and key_file", function()
    local err = err_of(call, {})
    assert.is_true(err.kind == "tls" or err.kind == "reset", err.kind .. ": " .. err.message)
    mtls:reset()
    assert.equal(200, call{cert_file = pki.client_cert, key_file = pki.client_key_plain}.status)
    assert.same({"tide-client"}, mtls:stats().clients)
  end)

  it("take the key's password from key_password or TIDE_KEY_PASSWORD, and never show it", function()
    assert.equal(200, call{cert_file = pki.client_cert, key_file = pki.client_key,
                           key_password = tls.KEY_PASSWORD}.status)
    -- (a new process: curl would reuse this one's connection, made with the key)
    local opts = string.format("ca_file = %q, cert_file = %q, key_file = %q", pki.ca,
      pki.client_cert, pki.client_key)
    local wrong = child(mtls.url .. "/", {}, opts .. ", key_password = 'wrong-password-xyz'")
    assert.matches("^error tls", wrong)
    assert.is_nil(wrong:find("wrong-password-xyz", 1, true))
    assert.matches("^status 200", child(mtls.url .. "/", {TIDE_KEY_PASSWORD = tls.KEY_PASSWORD}, opts))
    local out = child(mtls.url .. "/", {TIDE_KEY_PASSWORD = "not-the-pass-42"}, opts)
    assert.matches("^error tls", out)
    assert.is_nil(out:find("not-the-pass-42", 1, true))
  end)

  it("come from tide.configure{tls = ...} too", function()
    tide.configure{tls = {ca_file = pki.ca, cert_file = pki.client_cert, key_file = pki.client_key,
                          key_password = tls.KEY_PASSWORD}}
    local ok, r = pcall(tide.request, {url = mtls.url .. "/", timeout = 10})
    tide.configure{tls = false}
    assert.is_true(ok, tostring(ok or r.message))
    assert.equal(200, r.status)
  end)
end)

describe("tls_verify = false", function()
  it("reaches an untrusted server, with one warning naming the host", function()
    local _, out = tls.run(string.format([[
      local tide = require "tide"
      tide.run(function()
        for _ = 1, 3 do print(tide.request{url = %q, tls_verify = false}.status) end
      end)]], server.url .. "/"), {})
    assert.equal(3, select(2, out:gsub("200\n", "")))
    local warnings = select(2, out:gsub("TLS verification is off for 127%.0%.0%.1:" .. server.port, ""))
    assert.equal(1, warnings)
  end)

  it("is never what a request does unless it says so", function()
    -- tide.configure refuses it, and no variable turns it off
    assert.has_error(function() tide.configure{tls = {tls_verify = false}} end)
    assert.matches("^error tls", child(server.url .. "/", {CURL_INSECURE = "1", TIDE_TLS_VERIFY = "0",
      PYTHONHTTPSVERIFY = "0", NODE_TLS_REJECT_UNAUTHORIZED = "0"}))
    local lm = tide.LM("openai/tls-model", {base_url = server.url .. "/v1", api_key = "k",
      cache = false, num_retries = 0, circuit = {wait = 0}})
    assert_lm_tls_failure(err_of(lm, "hello"))
  end)
end)
