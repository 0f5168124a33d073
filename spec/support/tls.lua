--- TLS for the specs: a private CA made with the openssl CLI, a Node TLS server
-- (spec/support/tls_server.js) signed by it, tinyproxy, and Lua scripts run in a
-- child process under an environment the spec controls (this machine's own
-- SSL_CERT_FILE and friends must not decide a spec's outcome).
local tide = require "tide"
local cjson = require "cjson"
local spawn = require "support.spawn"
local quote = require("support.files").quote

local M = {}

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "failed: " .. cmd)
end


M.KEY_PASSWORD = "spec-key-pass"

local EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1"

--- pki(dir) → the paths of a CA, a server certificate for localhost and
-- 127.0.0.1, a client certificate whose key is encrypted with KEY_PASSWORD, the
-- same key unencrypted, and an unrelated CA.
function M.pki(dir)
  local p = function(name) return dir .. "/" .. name end
  sh(string.format("openssl req -x509 %s -nodes -keyout %s -out %s -subj /CN=tide-spec-ca -days 2",
    EC, p"ca.key", p"ca.pem"))
  sh(string.format("openssl req -x509 %s -nodes -keyout %s -out %s -subj /CN=other-ca -days 2",
    EC, p"other.key", p"other.pem"))
  local ext = assert(io.open(p"server.ext", "w"))
  ext:write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  ext:close()
  ext = assert(io.open(p"client.ext", "w"))
  ext:write("extendedKeyUsage=clientAuth\n")
  ext:close()
  sh(string.format("openssl req %s -nodes -keyout %s -out %s -subj /CN=localhost",
    EC, p"server.key", p"server.csr"))
  sh(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 " ..
    "-extfile %s", p"server.csr", p"ca.pem", p"ca.key", p"server.pem", p"server.ext"))
  sh(string.format("openssl req %s -keyout %s -passout pass:%s -out %s -subj /CN=tide-client",
    EC, p"client.key", M.KEY_PASSWORD, p"client.csr"))
  sh(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 " ..
    "-extfile %s", p"client.csr", p"ca.pem", p"ca.key", p"client.pem", p"client.ext"))
  sh(string.format("openssl pkey -in %s -passin pass:%s -out %s", p"client.key", M.KEY_PASSWORD,
    p"client-plain.key"))
  -- a directory of hashed CA names, as ca_path and SSL_CERT_DIR want
  sh(string.format("mkdir -p %s && cp %s %s/ && openssl rehash %s", p"cadir", p"ca.pem", p"cadir",
    p"cadir"))
  return {dir = dir, ca = p"ca.pem", cadir = p"cadir", other_ca = p"other.pem",
          cert = p"server.pem", key = p"server.key", client_cert = p"client.pem",
          client_key = p"client.key", client_key_plain = p"client-plain.key"}
end

local Server = {}
Server.__index = Server

--- server(pki, {h2 = , mtls = , delay_ms = , close = , port = }) → a running TLS server:
-- .url (https://127.0.0.1:port), .port, :stats(), :reset(), :stop().
function M.server(pki, opts)
  local conf = {cert = pki.cert, key = pki.key, ca = pki.ca}
  for k, v in pairs(opts or {}) do conf[k] = v end
  local self = setmetatable({}, Server)
  local port, control
  self.pipe, self.pid, port, control = spawn("node spec/support/tls_server.js " .. quote(cjson.encode(conf)),
    "^listening on 127%.0%.0%.1 (%d+) (%d+)$", "the TLS server")
  self.port, self.control = tonumber(port), tonumber(control)
  self.url = "https://127.0.0.1:" .. self.port
  return self
end

function Server:stats(path)
  local r = tide.request{url = "http://127.0.0.1:" .. self.control .. (path or "/__stats"),
                         timeout = 10, proxy = false}
  assert(r.status == 200)
  return cjson.decode(r.body)
end

function Server:reset() return self:stats("/__reset") end

function Server:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pid = nil
  end
end

--- free_port() → a loopback port nothing listens on (the kernel's pick, closed).
function M.free_port()
  local s = assert(io.popen([[node -e 'const s = require("net").createServer(); ]] ..
    [[s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })']]))
  local port = tonumber(s:read("l"))
  s:close()
  return port
end

--- proxy(dir, {user = , password = }) → tinyproxy on an ephemeral port, logging
-- to dir/tinyproxy.log: .url, .port, :log(), :stop().
function M.proxy(dir, opts)
  opts = opts or {}
  -- tinyproxy takes a port, not 0
  local port = M.free_port()
  local conf = dir .. "/tinyproxy.conf"
  local log = dir .. "/tinyproxy.log"
  local f = assert(io.open(conf, "w"))
  -- no ConnectPort line: CONNECT to any port (the TLS server's is ephemeral)
  f:write(string.format("Port %d\nListen 127.0.0.1\nTimeout 30\nLogFile %q\nLogLevel Info\n" ..
    "MaxClients 50\nAllow 127.0.0.1\n", port, log))
  if opts.user then f:write(string.format("BasicAuth %s %s\n", opts.user, opts.password)) end
  f:close()
  local pipe = assert(io.popen(string.format("tinyproxy -d -c %s >/dev/null 2>&1 & echo PID $!",
    quote(conf)), "r"))
  local pid = tonumber(pipe:read("l"):match("^PID (%d+)"))
  local self = {pid = pid, pipe = pipe, port = port, log_path = log,
                url = "http://127.0.0.1:" .. port}
  -- ready once it accepts: a plain request to it answers (400 or the like)
  for _ = 1, 100 do
    local ok = pcall(tide.request, {url = self.url .. "/", timeout = 2, proxy = false})
    if ok then break end
    tide.sleep(0.05)
  end
  function self.log()
    local lf = io.open(log)
    if not lf then return "" end
    local text = lf:read("a")
    lf:close()
    return text
  end
  function self.stop()
    if self.pid then
      os.execute("kill " .. self.pid .. " 2>/dev/null")
      self.pipe:close()
      self.pid = nil
    end
  end
  return self
end

--- run(script, env) → status, output: the Lua script run by lua5.4 in a child
-- whose environment is only PATH, HOME, the library's paths and env.
function M.run(script, env)
  local vars = {"PATH=" .. quote(os.getenv("PATH")), "LUA_PATH=" .. quote(os.getenv("LUA_PATH") or ""),
                "LUA_CPATH=" .. quote(os.getenv("LUA_CPATH") or "")}
  -- the sanitizer build's runtime and options (make check) go through
  for _, k in ipairs{"LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"} do
    if os.getenv(k) then vars[#vars + 1] = k .. "=" .. quote(os.getenv(k)) end
  end
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. quote(v) end
  local p = assert(io.popen(string.format("env -i %s lua5.4 -e %s 2>&1",
    table.concat(vars, " "), quote(script))))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

return M
