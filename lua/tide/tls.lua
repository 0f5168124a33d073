--- TLS and proxy options of an LM, and tide.configure{tls = ...}'s defaults.
--
-- The C core reads them on every request (tide.request, tide.stream): which CAs
-- to trust (an option, the defaults, then SSL_CERT_FILE / SSL_CERT_DIR,
-- CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE), the client certificate, tls_verify and
-- the proxy.  Here an LM checks its own when it is made, so that a CA file that
-- cannot be read is an error at tide.LM(...), not at the first call, and keeps
-- them to add to each of its requests.  docs/api.md, "TLS and proxies".
local core = require "tide.core"
local check = require "tide.check"

local M = {}

-- The options an LM and a request share, with the Lua type each takes.
local FIELDS = {
  {"ca_file", "string"}, {"ca_path", "string"}, {"cert_file", "string"},
  {"key_file", "string"}, {"key_password", "string"}, {"tls_verify", "boolean"},
}

-- What tide.configure{tls = ...} may set: trust and the client certificate, not
-- tls_verify (off only for an LM or a request, on purpose) nor the proxy.
local DEFAULTS = {ca_file = true, ca_path = true, cert_file = true, key_file = true,
                  key_password = true}

--- options(fname, opts, url) → the TLS and proxy options in opts (a new table),
-- or nil when it has none.  Their types are checked against the caller's line;
-- the files they name (and those the environment names for an https url) must
-- be readable, else a `tls` error names the option or the variable.
function M.options(fname, opts, url)
  local out
  for _, f in ipairs(FIELDS) do
    local v = check.type(fname, "opts." .. f[1], opts[f[1]], f[2], true)
    if v ~= nil then
      out = out or {}
      out[f[1]] = v
    end
  end
  if opts.proxy ~= nil then
    if opts.proxy ~= false and type(opts.proxy) ~= "string" then
      check.fail(fname, "opts.proxy", "a proxy URL or false expected, got " .. type(opts.proxy))
    end
    out = out or {}
    out.proxy = opts.proxy
  end
  core.tls_check(out or {}, url)
  return out
end

--- apply(request, options): the LM's options into one request's table.
function M.apply(request, options)
  if options then
    for k, v in pairs(options) do request[k] = v end
  end
  return request
end

--- configure(t): tide.configure{tls = {ca_file =, ca_path =, cert_file =, key_file =,
-- key_password =}} sets what requests use when they do not say; tls = false
-- clears it.  The files are checked now.
function M.configure(t)
  if t == false then return core.tls_defaults(nil) end
  if type(t) ~= "table" then
    check.misuse("tide.configure: tls must be a table {ca_file = ..., ca_path = ..., " ..
      "cert_file = ..., key_file = ..., key_password = ...} or false")
  end
  for k, v in pairs(t) do
    if k == "tls_verify" then
      check.misuse("tide.configure: tls.tls_verify cannot be set for everything: pass " ..
        "tls_verify = false to the one LM or request that needs it")
    elseif not DEFAULTS[k] then
      check.misuse("tide.configure: tls." .. tostring(k) .. " is not a TLS option " ..
        "(ca_file, ca_path, cert_file, key_file, key_password)")
    end
    check.type("configure", "tls." .. k, v, "string")
  end
  return core.tls_defaults(t)
end

return M
