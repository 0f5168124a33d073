/*
 * http_request.c — tide.request and tide.http_limits: what Lua gives (the request
 * options, checked), what it gets back (the response table, or a typed transport
 * error), on the transfers http_multi.c runs.
 *
 *   local r = tide.request{url = ..., method = "POST", headers = {...}, body = s,
 *                          timeout = 30, connect_timeout = 5, max_body = 1 << 20}
 *   r.status, r.headers["content-type"], r.body, r.timings.total
 *
 * HTTP statuses are answers, not errors; transport failures raise error objects
 * whose kind says what broke (timeout, connect, dns, tls, proxy, too_large, reset,
 * protocol, cancelled) and whose `retryable` says whether another attempt may
 * go through (tide.retry reads it).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"

#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define MAX_HEADER_BYTES ((size_t)1 << 20)
#define DEFAULT_CONNECT_TIMEOUT_MS 30000L

/* [-0, +1, m] the URL without its query, fragment or user info: error messages must
 * never carry a key that a URL may hold. */
static void push_redacted_url(lua_State *L, const char *url)
{
  const char *scheme = strstr(url, "://");
  const char *host = scheme ? scheme + 3 : url;
  const char *end = host + strcspn(host, "/?#");
  const char *at = memchr(host, '@', (size_t)(end - host));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, url, (size_t)(host - url));
  if (at)
    host = at + 1;
  luaL_addlstring(&b, host, strcspn(host, "?#"));
  luaL_pushresult(&b);
}

/* The CONNECT answer of the proxy when it refused the tunnel (407 and the
 * like), a 407 it gave a plain-HTTP request, or 0. */
static long proxy_refusal(const transfer *x)
{
  long code = 0;
  curl_easy_getinfo(x->easy, CURLINFO_HTTP_CONNECTCODE, &code);
  if (code >= 300)
    return code;
  return x->result == CURLE_OK && x->status == 407 ? 407 : 0;
}

/* Whether the failure of x, which went through a proxy, is the proxy's: a
 * connection refused is (tide connects only to the proxy then), as is a name
 * of the proxy's that does not resolve or a tunnel it refused. */
static int proxy_failed(const transfer *x)
{
  return x->result == CURLE_COULDNT_CONNECT || x->result == CURLE_COULDNT_RESOLVE_PROXY ||
         x->result == CURLE_PROXY || proxy_refusal(x) != 0;
}

static const char *error_kind(const transfer *x)
{
  switch (x->result) {
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "dns";
  case CURLE_COULDNT_CONNECT:
    return "connect";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  case CURLE_FILESIZE_EXCEEDED:
    return "too_large";
  case CURLE_RECV_ERROR:   /* the connection broke under a read or a write: */
  case CURLE_SEND_ERROR:   /* reset by the peer, as curl's CLI reports it */
    return "reset";
  default:
    return x->too_large ? "too_large" : "protocol";
  }
}

/* [-0, +0, v] raises the proxy's refusal or failure: kind proxy, naming the
 * proxy without its credentials (curl's message names only its host). */
static int raise_proxy_error(lua_State *L, int tidx, transfer *x)
{
  long code = proxy_refusal(x);
  const char *method, *proxy;
  char what[64];
  tidx = lua_absindex(L, tidx);
  lua_getiuservalue(L, tidx, SLOT_METHOD);
  method = lua_tostring(L, -1);
  lua_getiuservalue(L, tidx, SLOT_PROXY);
  proxy = lua_tostring(L, -1);
  lua_getiuservalue(L, tidx, SLOT_URL);
  push_redacted_url(L, lua_tostring(L, -1));   /* method, proxy, url, redacted url */
  if (code == 407)
    snprintf(what, sizeof what, "asked for credentials (407)");
  else if (code != 0)
    snprintf(what, sizeof what, "refused the tunnel (%ld)", code);
  else
    snprintf(what, sizeof what, "failed");
  error_push(L, "proxy", "proxy %s %s: %s (%s %s)", proxy, what,
             x->result != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result))
                                   : "its answer to the request",
             method, lua_tostring(L, -1));
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "url");
  lua_pushstring(L, proxy);
  lua_setfield(L, -2, "proxy");
  lua_pushinteger(L, (lua_Integer)x->result);
  lua_setfield(L, -2, "curl_code");
  if (code != 0) {
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "status");
  }
  /* a proxy that refused a connection or failed upstream may be back; one that
   * wants credentials or cannot be named will not change its mind */
  lua_pushboolean(L, x->result == CURLE_COULDNT_CONNECT || code >= 500);
  lua_setfield(L, -2, "retryable");
  transfer_release(x);
  return lua_error(L);
}

int raise_transfer_error(lua_State *L, int tidx, transfer *x)
{
  const char *kind = error_kind(x), *method;
  tidx = lua_absindex(L, tidx);
  if (lua_getiuservalue(L, tidx, SLOT_PROXY) != LUA_TNIL && proxy_failed(x))
    return raise_proxy_error(L, tidx, x);
  lua_pop(L, 1);
  lua_getiuservalue(L, tidx, SLOT_METHOD);
  method = lua_tostring(L, -1);
  lua_getiuservalue(L, tidx, SLOT_URL);
  push_redacted_url(L, lua_tostring(L, -1));   /* method, url, redacted url */
  if (strcmp(kind, "too_large") == 0)
    error_push(L, kind, "response larger than max_body (%I bytes) (%s %s)",
               (lua_Integer)(x->streaming ? x->max_total : x->body.max), method, lua_tostring(L, -1));
  else
    error_push(L, kind, "%s (%s %s)", x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result),
               method, lua_tostring(L, -1));
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "url");
  lua_pushinteger(L, (lua_Integer)x->result);
  lua_setfield(L, -2, "curl_code");
  /* a refused or broken connection and a timeout may well go through on a new
   * attempt; a name that does not resolve, a certificate or an oversized answer
   * will not.  tide.retry reads this flag. */
  lua_pushboolean(L, strcmp(kind, "connect") == 0 || strcmp(kind, "protocol") == 0 ||
                     strcmp(kind, "reset") == 0 || strcmp(kind, "timeout") == 0);
  lua_setfield(L, -2, "retryable");
  transfer_release(x);
  return lua_error(L);
}

int transfer_has_proxy(lua_State *L, int tidx)
{
  int has = lua_getiuservalue(L, tidx, SLOT_PROXY) != LUA_TNIL;
  lua_pop(L, 1);
  return has;
}

void push_headers(lua_State *L, const buffer *head)
{
  const char *p = head->data, *end;
  char name[256];
  lua_createtable(L, 0, 8);
  if (p == NULL)
    return;   /* no header byte arrived: no arithmetic on a null pointer */
  end = p + head->len;
  p = memchr(p, '\n', (size_t)(end - p));   /* skip the status line */
  while (p && ++p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *colon = memchr(p, ':', (size_t)((eol ? eol : end) - p));
    const char *v, *vend;
    size_t i, nlen;
    if (eol == NULL)
      eol = end;
    if (colon && (nlen = (size_t)(colon - p)) > 0 && nlen < sizeof name) {
      for (i = 0; i < nlen; i++)
        name[i] = (char)tolower((unsigned char)p[i]);
      for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
        ;
      for (vend = eol; vend > v && isspace((unsigned char)vend[-1]); vend--)
        ;
      lua_pushlstring(L, name, nlen);
      if (lua_rawget(L, -2) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
      }
      lua_pushlstring(L, name, nlen);
      lua_insert(L, -2);
      lua_rawset(L, -3);
    }
    p = eol;
  }
}

/* [-0, +0, m] sets field, in the table on top, to a duration curl measured. */
static void set_seconds(lua_State *L, CURL *easy, CURLINFO info, const char *field)
{
  curl_off_t us = 0;
  curl_easy_getinfo(easy, info, &us);
  lua_pushnumber(L, (lua_Number)us / 1e6);
  lua_setfield(L, -2, field);
}

/* The request's frame: 1 opts, 2 the transfer.  [-0, +1, v] the response. */
static int http_request_k(lua_State *L, int status, lua_KContext ctx)
{
  transfer *x = (transfer *)ctx;
  long code = 0;
  (void)status;
  if (x->result == CURLE_ABORTED_BY_CALLBACK) {
    transfer_release(x);
    op_check(&x->op, L);
  }
  if (x->result != CURLE_OK || (x->status == 407 && transfer_has_proxy(L, 2)))
    return raise_transfer_error(L, 2, x);
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "status");
  push_headers(L, &x->head);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
  lua_setfield(L, -2, "body");
  lua_createtable(L, 0, 3);
  set_seconds(L, x->easy, CURLINFO_TOTAL_TIME_T, "total");
  set_seconds(L, x->easy, CURLINFO_CONNECT_TIME_T, "connect");
  set_seconds(L, x->easy, CURLINFO_STARTTRANSFER_TIME_T, "ttfb");
  lua_setfield(L, -2, "timings");
  transfer_release(x);
  return 1;
}

/* An optional number of seconds from the options at L[opts]; -1 when absent.
 * [-0, +0, v] */
static double opt_seconds(lua_State *L, int opts, const char *field)
{
  double v = -1;
  if (lua_getfield(L, opts, field) != LUA_TNIL)
    v = engine_check_seconds(L, -1, opts, field, 0);
  lua_pop(L, 1);
  return v;
}

/* Seconds as libcurl's milliseconds, plus one so that curl never gives up
 * before the time asked (it rounds down).  At most ENGINE_MAX_SECONDS: fits a
 * 64-bit long; a 32-bit long is capped. */
static long curl_ms(double seconds)
{
  double ms = seconds * 1000.0 + 1.0;
  return ms >= (double)LONG_MAX ? LONG_MAX : (long)ms;
}

/* opts.max_body: a whole number of bytes >= 0; the default when absent.
 * [-0, +0, v] */
static size_t opt_max_body(lua_State *L, int opts)
{
  lua_Integer n = (lua_Integer)DEFAULT_MAX_BODY;
  if (lua_getfield(L, opts, "max_body") != LUA_TNIL) {
    int ok;
    n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 0)
      luaL_argerror(L, opts, lua_pushfstring(L, "field 'max_body' must be a whole number of bytes "
                                             ">= 0 and <= %I (got %s)", (lua_Integer)LUA_MAXINTEGER,
                                          luaL_tolstring(L, -1, NULL)));
  }
  lua_pop(L, 1);
  return (lua_Unsigned)n > (lua_Unsigned)SIZE_MAX ? SIZE_MAX : (size_t)n;
}

/* Header text curl can send: no line break (a header injected into the request)
 * and no NUL byte (curl would cut the text there). */
static int valid_header_text(lua_State *L, int idx)
{
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  return strlen(s) == n && strpbrk(s, "\r\n") == NULL;
}

/* Checks opts.headers (the options at L[opts]) and makes *list of them.  Returns
 * 0, or -1 out of memory.  [-0, +0, v], three slots meanwhile: the headers, a
 * name, its value. */
static int build_headers(lua_State *L, int opts, struct curl_slist **list)
{
  struct curl_slist *l = NULL, *n;
  if (lua_getfield(L, opts, "headers") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, opts, "field 'headers' must be a table of name = value");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_argerror(L, opts, "field 'headers' must map names (strings) to strings");
      if (!valid_header_text(L, -2) || !valid_header_text(L, -1))
        luaL_argerror(L, opts, lua_pushfstring(L, "header '%s' contains a line break or a NUL byte",
                                            lua_tostring(L, -2)));
      lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      n = curl_slist_append(l, lua_tostring(L, -1));
      lua_pop(L, 2);
      if (n == NULL) {
        curl_slist_free_all(l);
        return -1;
      }
      l = n;
    }
  }
  lua_pop(L, 1);
  n = curl_slist_append(l, "Expect:");   /* no 100-continue round trip for bodies */
  if (n == NULL) {
    curl_slist_free_all(l);
    return -1;
  }
  *list = n;
  return 0;
}

static int valid_method(lua_State *L, int idx)
{
  size_t n, i;
  const char *m = lua_tolstring(L, idx, &n);
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++)   /* a NUL byte is not upper-case either */
    if (!isupper((unsigned char)m[i]))
      return 0;
  return 1;
}

/* ---- TLS trust, client certificates, proxies ---------------------------------
 *
 * Options of a request (tide.request, tide.stream), each falling back on the
 * engine's defaults (core.tls_defaults, set by tide.configure{tls = ...}):
 *   ca_file, ca_path   the CAs to trust, INSTEAD of the system store
 *   cert_file, key_file, key_password   a client certificate (mTLS)
 *   tls_verify = false  no check of the server's certificate (per request only)
 *   proxy = url | false  the proxy, or none whatever the environment says
 * Without ca_file or ca_path anywhere, an https request trusts what the
 * environment names, in this order: SSL_CERT_FILE and SSL_CERT_DIR (OpenSSL's),
 * CURL_CA_BUNDLE (curl's), REQUESTS_CA_BUNDLE (Python requests'); else
 * libcurl's built-in store.  libcurl as a library reads none of them. */

#define TLS_DEFAULTS_KEY "tide.tls_defaults"
#define TLS_WARNED_KEY "tide.tls_unverified"
#define KEY_PASSWORD_ENV "TIDE_KEY_PASSWORD"

typedef struct tls_args {
  const char *ca_file, *ca_path;
  const char *cert_file, *key_file, *key_password;
  const char *proxy;       /* the proxy to use, or NULL for none */
  int verify;
} tls_args;

static const char *env_value(const char *name)
{
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* [-0, +0, v] opts[field], or the engine default's when opts has none: a string
 * without NUL bytes, or NULL.  The string lives in a table the caller keeps. */
static const char *tls_string(lua_State *L, int opts, const char *field, int *from_default)
{
  const char *v = NULL;
  size_t n;
  int t = lua_getfield(L, opts, field);
  if (t == LUA_TNIL && from_default) {
    lua_pop(L, 1);
    t = lua_getfield(L, LUA_REGISTRYINDEX, TLS_DEFAULTS_KEY) == LUA_TTABLE
          ? lua_getfield(L, -1, field) : (lua_pushnil(L), LUA_TNIL);
    lua_remove(L, -2);   /* the defaults, or the nil in their place */
    *from_default = t != LUA_TNIL;
  }
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING)
      luaL_argerror(L, opts, lua_pushfstring(L, "field '%s' must be a string", field));
    v = lua_tolstring(L, -1, &n);
    if (strlen(v) != n)
      luaL_argerror(L, opts, lua_pushfstring(L, "field '%s' contains a NUL byte", field));
  }
  lua_pop(L, 1);
  return v;
}

/* [-0, +0, v] raises a tls error unless path names a readable file (or, with
 * dir, a directory); source says where the path came from. */
static void check_readable(lua_State *L, const char *path, int dir, const char *source)
{
  struct stat st;
  const char *why = NULL;
  if (stat(path, &st) != 0)
    why = strerror(errno);
  else if (dir && !S_ISDIR(st.st_mode))
    why = "not a directory";
  else if (!dir && S_ISDIR(st.st_mode))
    why = "a directory, not a file";
  else if (access(path, R_OK) != 0)
    why = strerror(errno);
  if (why)
    error_raise(L, "tls", "%s names '%s', which cannot be read: %s", source, path, why);
}

/* The CAs to trust (t->ca_file, t->ca_path), by the order above, each checked.
 * [-0, +0, v] */
static void tls_trust(lua_State *L, int opts, int https, tls_args *t)
{
  int dflt = 0;
  const char *file_src = "field 'ca_file'", *path_src = "field 'ca_path'";
  t->ca_file = tls_string(L, opts, "ca_file", NULL);
  t->ca_path = tls_string(L, opts, "ca_path", NULL);
  if (!t->ca_file && !t->ca_path) {
    t->ca_file = tls_string(L, opts, "ca_file", &dflt);
    t->ca_path = tls_string(L, opts, "ca_path", &dflt);
    file_src = "tide.configure's tls.ca_file";
    path_src = "tide.configure's tls.ca_path";
  }
  if (!t->ca_file && !t->ca_path && https) {
    static const char *const files[] = {"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"};
    size_t i;
    t->ca_path = env_value("SSL_CERT_DIR");
    path_src = "SSL_CERT_DIR";
    for (i = 0; i < sizeof files / sizeof *files && !t->ca_file; i++) {
      if (i > 0 && t->ca_path)   /* SSL_CERT_DIR goes with SSL_CERT_FILE only */
        break;
      t->ca_file = env_value(files[i]);
      file_src = files[i];
    }
    /* requests takes a directory in REQUESTS_CA_BUNDLE too */
    if (t->ca_file && strcmp(file_src, "REQUESTS_CA_BUNDLE") == 0) {
      struct stat st;
      if (stat(t->ca_file, &st) == 0 && S_ISDIR(st.st_mode)) {
        t->ca_path = t->ca_file;
        path_src = file_src;
        t->ca_file = NULL;
      }
    }
  }
  if (t->ca_file)
    check_readable(L, t->ca_file, 0, file_src);
  if (t->ca_path)
    check_readable(L, t->ca_path, 1, path_src);
}

/* The client certificate: cert_file and key_file (the request's, else the
 * defaults'), the key's password from key_password or TIDE_KEY_PASSWORD.
 * [-0, +0, v] */
static void tls_client(lua_State *L, int opts, tls_args *t)
{
  int cert_dflt = 0, key_dflt = 0, pass_dflt = 0;
  t->cert_file = tls_string(L, opts, "cert_file", &cert_dflt);
  t->key_file = tls_string(L, opts, "key_file", &key_dflt);
  t->key_password = tls_string(L, opts, "key_password", &pass_dflt);
  if (t->cert_file)
    check_readable(L, t->cert_file, 0,
                   cert_dflt ? "tide.configure's tls.cert_file" : "field 'cert_file'");
  if (t->key_file)
    check_readable(L, t->key_file, 0, key_dflt ? "tide.configure's tls.key_file" : "field 'key_file'");
  if (!t->key_password && (t->cert_file || t->key_file))
    t->key_password = env_value(KEY_PASSWORD_ENV);
}

/* The host of url (an http:// or https:// URL), with its port but without the
 * user info: *hlen bytes from the pointer returned. */
static const char *url_host(const char *url, size_t *hlen)
{
  const char *host = strstr(url, "://") + 3;
  size_t n = strcspn(host, "/?#");
  const char *at = memchr(host, '@', n);
  if (at) {
    n -= (size_t)(at + 1 - host);
    host = at + 1;
  }
  *hlen = n;
  return host;
}

/* Whether host[0..hlen) is in a NO_PROXY list, by libcurl's rules: "*" alone
 * matches every host; an entry matches the host itself and the names under it
 * (a leading dot changes nothing); an address matches itself, or with /bits the
 * addresses in its range (IPv4 and IPv6). */
static int no_proxy_entry(const char *e, size_t elen, const char *host, size_t hlen)
{
  char ebuf[64], hbuf[64];
  unsigned char ea[16], ha[16];
  const char *slash = memchr(e, '/', elen);
  while (elen > 0 && *e == '.') {
    e++;
    elen--;
  }
  if (elen == 0)
    return 0;
  if (slash && elen < sizeof ebuf && hlen < sizeof hbuf) {
    size_t alen = (size_t)(slash - e), bits = (size_t)atoi(slash + 1), i;
    int fam;
    memcpy(ebuf, e, alen);
    ebuf[alen] = 0;
    memcpy(hbuf, host, hlen);
    hbuf[hlen] = 0;
    fam = strchr(ebuf, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, ebuf, ea) != 1 || inet_pton(fam, hbuf, ha) != 1)
      return 0;
    if (bits > (fam == AF_INET ? 32u : 128u))
      return 0;
    for (i = 0; i < bits; i++)
      if (((ea[i / 8] ^ ha[i / 8]) >> (7 - i % 8)) & 1)
        return 0;
    return 1;
  }
  if (hlen < elen || strncasecmp(host + hlen - elen, e, elen) != 0)
    return 0;
  return hlen == elen || host[hlen - elen - 1] == '.';
}

static int no_proxy_match(const char *list, const char *url)
{
  size_t hlen;
  const char *host = url_host(url, &hlen);
  while (*list == ' ')
    list++;
  if (strcmp(list, "*") == 0)
    return 1;
  if (*host == '[') {   /* [v6]:port */
    const char *close = memchr(host, ']', hlen);
    host++;
    hlen = close ? (size_t)(close - host) : hlen - 1;
  } else {
    const char *colon = memchr(host, ':', hlen);
    if (colon)
      hlen = (size_t)(colon - host);
  }
  while (*list) {
    size_t n = strcspn(list, ",");
    const char *e = list, *end = list + n;
    while (e < end && (*e == ' ' || *e == '\t'))
      e++;
    while (end > e && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    if (no_proxy_entry(e, (size_t)(end - e), host, hlen))
      return 1;
    list += n + (list[n] == ',');
  }
  return 0;
}

/* The proxy for url: the `proxy` option (false: none), else the environment by
 * libcurl's rules — https_proxy or HTTPS_PROXY for https, http_proxy (lower
 * case only: a CGI program's HTTP_PROXY may come from a request's "Proxy:"
 * header) for http, then all_proxy or ALL_PROXY — unless no_proxy or NO_PROXY
 * names the host.  [-0, +0, v] */
static const char *tls_proxy(lua_State *L, int opts, const char *url)
{
  const char *proxy, *no;
  size_t n;
  int t = lua_getfield(L, opts, "proxy");
  if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (t != LUA_TNIL) {
    proxy = t == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (proxy == NULL || strlen(proxy) != n)
      luaL_argerror(L, opts, "field 'proxy' must be a URL (a string without NUL bytes) or false");
    lua_pop(L, 1);   /* the options table keeps the string */
    return *proxy ? proxy : NULL;
  }
  lua_pop(L, 1);
  if (strncmp(url, "https://", 8) == 0) {
    if (!(proxy = env_value("https_proxy")))
      proxy = env_value("HTTPS_PROXY");
  } else {
    proxy = env_value("http_proxy");
  }
  if (!proxy && !(proxy = env_value("all_proxy")))
    proxy = env_value("ALL_PROXY");
  if (proxy && (no = env_value("no_proxy") ? env_value("no_proxy") : env_value("NO_PROXY")) &&
      no_proxy_match(no, url))
    return NULL;
  return proxy;
}

/* [-0, +0, m] once per host, the warning that its certificate goes unchecked. */
static void warn_unverified(lua_State *L, const char *url)
{
  size_t hlen;
  const char *host = url_host(url, &hlen);
  if (lua_getfield(L, LUA_REGISTRYINDEX, TLS_WARNED_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, TLS_WARNED_KEY);
  }
  lua_pushlstring(L, host, hlen);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    fprintf(stderr, "tide: warning: TLS verification is off for %.*s (tls_verify = false): "
            "anyone on the path can read and change its traffic\n", (int)hlen, host);
    fflush(stderr);
    lua_pushlstring(L, host, hlen);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
}

/* [-0, +0, v] reads the TLS and proxy options of a request to url. */
static void tls_read(lua_State *L, int opts, const char *url, tls_args *t)
{
  int https = strncmp(url, "https://", 8) == 0;
  tls_trust(L, opts, https, t);
  tls_client(L, opts, t);
  t->verify = 1;
  if (lua_getfield(L, opts, "tls_verify") != LUA_TNIL) {
    if (!lua_isboolean(L, -1))
      luaL_argerror(L, opts, "field 'tls_verify' must be a boolean");
    t->verify = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  if (!t->verify && https)
    warn_unverified(L, url);
  t->proxy = tls_proxy(L, opts, url);
}

static void tls_setopts(CURL *easy, const tls_args *t)
{
  if (t->ca_file || t->ca_path) {   /* replaces the built-in store: both are set */
    curl_easy_setopt(easy, CURLOPT_CAINFO, t->ca_file);
    curl_easy_setopt(easy, CURLOPT_CAPATH, t->ca_path);
  }
  if (t->cert_file)
    curl_easy_setopt(easy, CURLOPT_SSLCERT, t->cert_file);
  if (t->key_file)
    curl_easy_setopt(easy, CURLOPT_SSLKEY, t->key_file);
  if (t->key_password)
    curl_easy_setopt(easy, CURLOPT_KEYPASSWD, t->key_password);
  if (!t->verify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  /* tide chose the proxy (tls_proxy): curl reads no variable of its own */
  curl_easy_setopt(easy, CURLOPT_PROXY, t->proxy ? t->proxy : "");
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
}

/* core.tls_defaults{ca_file, ca_path, cert_file, key_file, key_password} sets
 * what requests use when they do not say (tide.configure{tls = ...}); nil
 * clears them.  Every file is checked now.  → the defaults (a copy). */
static int http_ltls_defaults(lua_State *L)
{
  static const char *const fields[] = {"ca_file", "ca_path", "cert_file", "key_file", "key_password"};
  size_t i;
  if (lua_isnoneornil(L, 1)) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, TLS_DEFAULTS_KEY);
    lua_newtable(L);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L);   /* 2: the copy */
  for (i = 0; i < sizeof fields / sizeof *fields; i++) {
    const char *v = tls_string(L, 1, fields[i], NULL);
    if (v == NULL)
      continue;
    if (i < 4)
      check_readable(L, v, i == 1, lua_pushfstring(L, "tide.configure's tls.%s", fields[i]));
    lua_pushstring(L, v);
    lua_setfield(L, 2, fields[i]);
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, TLS_DEFAULTS_KEY);
  return 1;
}

/* core.tls_check(opts, url): what a request to url with these options would
 * raise about its TLS and proxy options, raised now (an LM checks its options
 * when it is made), and the one-time warning of tls_verify = false.  → the
 * proxy it would use (without credentials), or nil. */
static int http_ltls_check(lua_State *L)
{
  tls_args t;
  const char *url;
  luaL_checktype(L, 1, LUA_TTABLE);
  url = luaL_checkstring(L, 2);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    luaL_argerror(L, 2, "a URL starting with http:// or https:// expected");
  lua_settop(L, 2);
  tls_read(L, 1, url, &t);
  if (t.proxy == NULL)
    return 0;
  push_redacted_url(L, t.proxy);
  return 1;
}

/* The request's strings, read from the options in transfer_start. */
typedef struct request_args {
  const char *url, *method, *body;
  size_t body_len;
  int has_body;
  double timeout, connect_timeout;
  size_t max_body;
} request_args;

/* [-0, +3, v] checks the options at L[opts] and pushes the URL, the body (or
 * nil) and the method — in the order of their slots, SLOT_URL first — which a
 * points into. */
static void request_read(lua_State *L, int opts, request_args *a)
{
  int base = lua_gettop(L);
  size_t url_len;
  if (lua_getfield(L, opts, "url") != LUA_TSTRING)
    luaL_argerror(L, opts, "field 'url' must be a string");
  a->url = lua_tolstring(L, base + 1, &url_len);
  if (strncmp(a->url, "http://", 7) != 0 && strncmp(a->url, "https://", 8) != 0)
    luaL_argerror(L, opts, "field 'url' must start with http:// or https://");
  if (strlen(a->url) != url_len)   /* curl would read the URL up to the NUL only */
    luaL_argerror(L, opts, "field 'url' contains a NUL byte");
  if (lua_getfield(L, opts, "body") != LUA_TNIL && lua_type(L, base + 2) != LUA_TSTRING)
    luaL_argerror(L, opts, "field 'body' must be a string");
  a->has_body = !lua_isnil(L, base + 2);
  a->body = a->has_body ? lua_tolstring(L, base + 2, &a->body_len) : "";
  if (!a->has_body)
    a->body_len = 0;
  if (lua_getfield(L, opts, "method") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushstring(L, a->has_body ? "POST" : "GET");
  } else if (lua_type(L, base + 3) != LUA_TSTRING || !valid_method(L, base + 3)) {
    luaL_argerror(L, opts, "field 'method' must be an upper-case HTTP method");
  }
  a->method = lua_tostring(L, base + 3);
  a->timeout = opt_seconds(L, opts, "timeout");
  a->connect_timeout = opt_seconds(L, opts, "connect_timeout");
  a->max_body = opt_max_body(L, opts);
}

/* What this request asks of its easy handle, beyond what every transfer has. */
static void request_setopts(CURL *easy, const request_args *a, struct curl_slist *headers)
{
  curl_easy_setopt(easy, CURLOPT_URL, a->url);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   a->connect_timeout > 0 ? curl_ms(a->connect_timeout) : DEFAULT_CONNECT_TIMEOUT_MS);
  if (a->timeout > 0)
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, curl_ms(a->timeout));
  if (strncmp(a->url, "https://", 8) == 0)
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);   /* prefer one multiplexed h2 connection */
  if (strcmp(a->method, "GET") == 0 && !a->has_body) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(a->method, "HEAD") == 0 && !a->has_body) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(a->method, "POST") != 0)
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, a->method);
    /* the body string stays referenced (the transfer's SLOT_BODY) until the
     * transfer ends: curl sends it without a copy */
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, a->body);
  }
}

transfer *transfer_start(tide_engine *E, lua_State *L, int opts, const char *fname,
                         int streaming, int extra_slots)
{
  struct curl_slist *headers = NULL;
  request_args a;
  tls_args t;
  transfer *x;
  int base, slot;

  opts = lua_absindex(L, opts);
  luaL_checkstack(L, 8, fname);
  base = lua_gettop(L);
  request_read(L, opts, &a);   /* base + SLOT_URL .. base + SLOT_METHOD */
  tls_read(L, opts, a.url, &t);
  if (t.proxy)
    push_redacted_url(L, t.proxy);   /* base + SLOT_PROXY */
  else
    lua_pushnil(L);
  engine_check_wait(E, L, fname);
  if (build_headers(L, opts, &headers) != 0)
    luaL_error(L, "%s: out of memory", fname);

  x = (transfer *)lua_newuserdatauv(L, sizeof *x, TRANSFER_SLOTS + extra_slots);
  memset(x, 0, sizeof *x);
  op_init(&x->op, &transfer_class, E);
  luaL_setmetatable(L, streaming ? STREAM_MT : TRANSFER_MT);
  x->headers = headers;
  x->streaming = streaming;
  x->body.max = streaming ? (size_t)-1 : a.max_body;
  x->max_total = a.max_body;
  x->head.max = MAX_HEADER_BYTES;
  for (slot = 1; slot <= TRANSFER_SLOTS; slot++) {
    lua_pushvalue(L, base + slot);
    lua_setiuservalue(L, -2, slot);
  }
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);     /* the strings a points into live on in the slots */
  if (transfer_attach(E, x) == NULL) {
    transfer_release(x);
    luaL_error(L, "%s: out of memory", fname);
  }
  request_setopts(x->easy, &a, headers);
  tls_setopts(x->easy, &t);
  if (transfer_run(E, x) != 0) {
    transfer_release(x);
    luaL_error(L, "%s: libcurl refused the transfer", fname);
  }
  return x;
}

/* tide.request{url, method, headers, body, timeout, connect_timeout, max_body,
 *              ca_file, ca_path, cert_file, key_file, key_password, tls_verify, proxy}
 *   → {status, headers, body, timings}
 * HTTP statuses are answers, not errors; transport failures raise error objects
 * with kind timeout | connect | dns | tls | too_large | cancelled | reset (the
 * connection broke mid-transfer) | protocol. */
static int http_lrequest(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  transfer *x;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  x = transfer_start(E, L, 1, "tide.request", 0, 0);   /* 2: the transfer */
  return engine_await(E, L, &x->op, http_request_k);
}

/* tide.http_limits{connections = n, per_host = n} → {connections, per_host}
 * Caps the open connections in all and to one host; transfers over a cap wait
 * (their timeout runs while they wait).  Without a table, returns the caps. */
static int http_llimits(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  long total = E->http->max_connections, per_host = E->http->max_host_connections;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "connections") != LUA_TNIL) {
      lua_Integer n = lua_tointeger(L, -1);
      if (!lua_isinteger(L, -1) || n < 1)
        luaL_argerror(L, 1, "field 'connections' must be a positive integer");
      total = (long)n;
    }
    if (lua_getfield(L, 1, "per_host") != LUA_TNIL) {
      lua_Integer n = lua_tointeger(L, -1);
      if (!lua_isinteger(L, -1) || n < 1)
        luaL_argerror(L, 1, "field 'per_host' must be a positive integer");
      per_host = (long)n;
    }
    lua_pop(L, 2);
    http_set_limits(E, total, per_host);
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, total);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, per_host);
  lua_setfield(L, -2, "per_host");
  return 1;
}

void http_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"request", http_lrequest},
    {"http_limits", http_llimits},
    {"tls_defaults", http_ltls_defaults},
    {"tls_check", http_ltls_check},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, TRANSFER_MT)) {
    lua_pushcfunction(L, transfer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
