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
 * whose kind says what broke (timeout, connect, dns, tls, too_large, reset,
 * protocol, cancelled) and whose `retryable` says whether another attempt may
 * go through (tide.retry reads it).
 */
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

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

int raise_transfer_error(lua_State *L, int tidx, transfer *x)
{
  const char *kind = error_kind(x), *method;
  tidx = lua_absindex(L, tidx);
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
  if (x->result != CURLE_OK)
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
  transfer *x;
  int base, slot;

  opts = lua_absindex(L, opts);
  luaL_checkstack(L, 8, fname);
  base = lua_gettop(L);
  request_read(L, opts, &a);   /* base + SLOT_URL .. base + SLOT_METHOD */
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
  if (transfer_run(E, x) != 0) {
    transfer_release(x);
    luaL_error(L, "%s: libcurl refused the transfer", fname);
  }
  return x;
}

/* tide.request{url, method, headers, body, timeout, connect_timeout, max_body}
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
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, TRANSFER_MT)) {
    lua_pushcfunction(L, transfer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
