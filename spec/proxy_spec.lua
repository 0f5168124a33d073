-- Proxies as companies run them: Debian's tinyproxy (make deps installs it) in
-- front of a TLS server and of mockllm, chosen by the `proxy` option or by the
-- environment (libcurl's variables and rules, applied by tide), its credentials
-- never shown, its refusals typed `proxy` with the proxy named.
local tide = require "tide"
local tls = require "support.tls"
local files = require "support.files"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local PASSWORD = "pr0xy-pw-Q7"
local pki, dir, server, proxy, authproxy, mock, dead

setup(function()
  dir = files.tmpdir()
  pki = tls.pki(dir)
  server = tls.server(pki)
  os.execute("mkdir -p " .. dir .. "/open " .. dir .. "/auth")
  proxy = tls.proxy(dir .. "/open")
  authproxy = tls.proxy(dir .. "/auth", {user = "alice", password = PASSWORD})
  mock = mockllm.start()
  dead = "http://127.0.0.1:" .. tls.free_port()
end)

teardown(function()
  server:stop()
  proxy.stop()
  authproxy.stop()
  mock:stop()
  os.execute("rm -rf " .. dir)
end)

after_each(assert_clean)

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "the call went through")
  return err
end

local function count(text, plain)
  local n, at = 0, 1
  while true do
    local i = text:find(plain, at, true)
    if not i then return n end
    n, at = n + 1, i + 1
  end
end

local function connects()
  return count(proxy.log(), "CONNECT 127.0.0.1:" .. server.port)
end

-- A child lua5.4 under env: one request to url (opts_src: more fields), printing
-- "status N" or "error KIND: message".
local function child(url, env, opts_src)
  local _, out = tls.run(string.format([[
    local tide = require "tide"
    tide.run(function()
      local ok, r = pcall(tide.request, {url = %q, timeout = 10, %s})
      if ok then print("status " .. r.status) else print("error " .. tostring(r.kind) .. ": " ..
        tostring(type(r) == "table" and r.message or r)) end
    end)]], url, opts_src or ""), env)
  return out
end

describe("the proxy option", function()
  it("tunnels an https request through the proxy: its log shows the CONNECT", function()
    local before = connects()
    local r = tide.request{url = server.url .. "/", ca_file = pki.ca, proxy = proxy.url}
    assert.equal(200, r.status)
    assert.equal(before + 1, connects())
  end)

  it("sends a plain-http request to the proxy, and proxy = false goes direct", function()
    local r = tide.request{url = mock.url .. "/__stats", proxy = proxy.url}
    assert.equal(200, r.status)
    assert.equal(1, count(proxy.log(), "GET " .. mock.url .. "/__stats"))
    assert.equal(200, tide.request{url = mock.url .. "/__stats", proxy = false}.status)
    assert.equal(1, count(proxy.log(), "GET " .. mock.url .. "/__stats"))
  end)

  it("takes credentials in the proxy URL and shows them nowhere", function()
    local with = authproxy.url:gsub("^http://", "http://alice:" .. PASSWORD .. "@")
    assert.equal(200, tide.request{url = server.url .. "/", ca_file = pki.ca, proxy = with}.status)
    local err = err_of(tide.request, {url = server.url .. "/", ca_file = pki.ca,
                                      proxy = authproxy.url:gsub("^http://", "http://alice:wrong-pw-3@")})
    assert.equal("proxy", err.kind)
    assert.is_true(err.status == 407 or err.status == 401, tostring(err.status))   -- tinyproxy says 401
    assert.is_false(err.retryable)
    assert.is_nil(tostring(err):find("wrong-pw-3", 1, true))
    assert.is_nil(tostring(err):find("alice", 1, true))
  end)
end)

describe("proxy errors", function()
  it("a refused proxy is kind proxy, retryable, named without its credentials", function()
    local url = dead:gsub("^http://", "http://bob:" .. PASSWORD .. "@")
    for _, call in ipairs{tide.request, tide.stream} do
      local err = err_of(call, {url = server.url .. "/", ca_file = pki.ca, proxy = url})
      assert.equal("proxy", err.kind)
      assert.is_true(err.retryable)
      assert.equal(dead, err.proxy)
      assert.matches("proxy " .. dead:gsub("%p", "%%%0") .. " failed", err.message)
      assert.is_nil(tostring(err):find(PASSWORD, 1, true))
      assert.is_nil(tostring(err):find("bob", 1, true))
    end
  end)

  it("a 407 is kind proxy with status 407, not retryable: for a tunnel, a plain request, a stream", function()
    local err = err_of(tide.request, {url = server.url .. "/", ca_file = pki.ca, proxy = authproxy.url})
    assert.equal("proxy", err.kind)
    assert.equal(407, err.status)
    assert.is_false(err.retryable)
    assert.matches("asked for credentials %(407%)", err.message)
    err = err_of(tide.request, {url = mock.url .. "/__stats", proxy = authproxy.url})
    assert.equal("proxy", err.kind)
    assert.equal(407, err.status)
    err = err_of(tide.stream, {url = mock.url .. "/__stats", proxy = authproxy.url})
    assert.equal("proxy", err.kind)
    assert.equal(authproxy.url, err.proxy)
  end)

  it("an LM reports it as transport, cause proxy, and its history keeps no credential", function()
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = mock.url .. "/v1", api_key = "k",
      cache = false, num_retries = 0, proxy = dead:gsub("^http://", "http://bob:" .. PASSWORD .. "@")})
    local err = err_of(lm, "hello")
    assert.equal("transport", err.kind)
    assert.equal("proxy", err.cause)
    assert.matches(dead:gsub("%p", "%%%0"), err.message)
    local shown = {}
    lm:inspect_history(5, function(s) shown[#shown + 1] = s end)
    local all = tostring(err) .. table.concat(shown) .. require("cjson").encode(lm.history)
    assert.is_nil(all:find(PASSWORD, 1, true))
    -- and through a working proxy, the call goes
    local via = tide.LM("openai/gpt-4o-mini", {base_url = mock.url .. "/v1", api_key = "k",
      cache = false, proxy = proxy.url})
    local before = count(proxy.log(), "POST " .. mock.url .. "/v1/chat/completions")
    assert.is_string(via("hello"))
    assert.equal(before + 1, count(proxy.log(), "POST " .. mock.url .. "/v1/chat/completions"))
  end)

  it("refuses a proxy option that is not a URL or false", function()
    assert.has_error(function() tide.request{url = mock.url, proxy = true} end,
      "bad argument #1 to 'request' (field 'proxy' must be a URL (a string without NUL bytes) or false)")
    assert.has_error(function() tide.LM("openai/x", {base_url = mock.url, api_key = "k", proxy = 1}) end,
      "bad argument 'opts.proxy' to 'LM' (a proxy URL or false expected, got number)")
  end)
end)

describe("the environment's proxies", function()
  it("HTTPS_PROXY, https_proxy and ALL_PROXY carry https requests", function()
    for _, var in ipairs{"HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"} do
      local before = connects()
      assert.matches("^status 200", child(server.url .. "/", {[var] = proxy.url, SSL_CERT_FILE = pki.ca}))
      assert.equal(before + 1, connects(), var)
    end
  end)

  it("http_proxy carries plain http; HTTP_PROXY in capitals is ignored, as libcurl does", function()
    local path = "/__stats?via=env"
    assert.matches("^status 200", child(mock.url .. path, {http_proxy = proxy.url}))
    assert.equal(1, count(proxy.log(), "GET " .. mock.url .. path))
    assert.matches("^status 200", child(mock.url .. path, {HTTP_PROXY = dead}))
  end)

  it("NO_PROXY names hosts, domains and address ranges that go direct", function()
    local url = server.url .. "/"
    local env = function(no) return {HTTPS_PROXY = dead, SSL_CERT_FILE = pki.ca, NO_PROXY = no} end
    assert.matches("^error proxy", child(url, env(nil)))
    assert.matches("^status 200", child(url, env("127.0.0.1")))
    assert.matches("^status 200", child(url, env("example.com, 127.0.0.0/8")))
    assert.matches("^status 200", child(url, env("*")))
    assert.matches("^error proxy", child(url, env("10.0.0.0/8,localhost,.127.0.0")))
    assert.matches("^status 200", child("https://localhost:" .. server.port .. "/", env(".localhost")))
    -- the option wins over the environment: false is no proxy at all
    assert.matches("^status 200", child(url, {HTTPS_PROXY = dead, SSL_CERT_FILE = pki.ca}, "proxy = false"))
  end)
end)
