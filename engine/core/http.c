/*
 * http.c — tide.request on libcurl's multi_socket interface, driven by libuv.
 *
 * The canonical integration: CURLMOPT_SOCKETFUNCTION maps each socket curl uses to
 * a uv_poll_t, CURLMOPT_TIMERFUNCTION drives one uv_timer_t, and after every
 * curl_multi_socket_action the finished transfers are collected with
 * curl_multi_info_read.  Callbacks only copy bytes and complete ops; the request's
 * task turns the bytes into Lua values when the scheduler resumes it.
 *
 * One multi handle per engine: its connection cache is shared by all its easy
 * handles already (keep-alive, HTTP/2 multiplexing).  The share handle adds what
 * the multi does not share by itself: TLS sessions, and DNS across engines' future
 * multis.  Easy handles are pooled so a request costs no curl_easy_init.
 */
#include <ctype.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "http.h"

#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define MAX_HEADER_BYTES ((size_t)1 << 20)
#define STREAM_PENDING_MAX ((size_t)1 << 20)   /* unread stream bytes before pausing */
#define EASY_POOL_MAX 512
#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
/* curl's receive buffer, per transfer.  Its default (16 KiB) is most of what a
 * waiting call costs; LM answers and stream events are a few KiB, and 4 KiB
 * keeps 10 000 waiting calls ~2 KiB lighter each (measured: 26 → 24 KiB per
 * call in flight).  A body of megabytes costs more reads: ~5.8 ms per MiB
 * instead of ~4.  One size for every transfer, so pooled handles never meet a
 * buffer sized for another. */
#define RECEIVE_BUFFER_BYTES 4096L

typedef struct http_socket {
  uv_poll_t poll;
  curl_socket_t fd;
  int events;              /* what curl waits for: UV_READABLE | UV_WRITABLE */
  tide_engine *E;
  struct http_socket *prev, *next;
} http_socket;

/* ---- buffers that grow from network input, up to a cap ------------------- */

static int buffer_append(buffer *b, const char *p, size_t n)
{
  if (n > b->max - b->len)
    return -1;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *data;
    while (cap < b->len + n)
      cap *= 2;
    if (cap > b->max)
      cap = b->max;
    data = (char *)realloc(b->data, cap);
    if (data == NULL)
      return -1;
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static void buffer_free(buffer *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- curl callbacks: bytes in, nothing else ------------------------------- */

/* Completes the transfer's op — for a stream only when a reader waits on it. */
static void transfer_wake(transfer *x)
{
  if (x->streaming && !x->reading)
    return;
  x->reading = 0;
  op_complete(&x->op);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
  transfer *x = (transfer *)ud;
  size_t len = size * n;
  if (x->streaming) {
    if (x->body.len >= STREAM_PENDING_MAX) {
      x->paused = 1;   /* the reader is behind: curl keeps these bytes for later */
      return CURL_WRITEFUNC_PAUSE;
    }
    if (len > x->max_total - x->received) {
      x->too_large = 1;
      return 0;
    }
    x->received += len;
  }
  if (buffer_append(&x->body, p, len) != 0) {
    x->too_large = 1;
    return 0;   /* curl stops the transfer with CURLE_WRITE_ERROR */
  }
  if (x->streaming)
    transfer_wake(x);
  return len;
}

/* The status code of a status line p[0..len): curl's header data has no NUL. */
static int status_code(const char *p, size_t len)
{
  size_t i = 0;
  int code = 0, digits = 0;
  while (i < len && p[i] != ' ')
    i++;
  while (i < len && p[i] == ' ')
    i++;
  for (; i < len && digits < 3 && p[i] >= '0' && p[i] <= '9'; i++, digits++)
    code = code * 10 + (p[i] - '0');
  return code;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
  transfer *x = (transfer *)ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    x->head.len = 0;   /* a new response (after 100 Continue): keep only the last */
    x->status = status_code(p, len);
  }
  if (buffer_append(&x->head, p, len) != 0) {
    x->too_large = 1;
    return 0;
  }
  if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
    if (x->status >= 200) {
      x->headers_done = 1;
      if (x->streaming)
        transfer_wake(x);
    }
  }
  return len;
}

/* Every connection curl opens is closed across exec: a program that runs commands
 * (io.popen, os.execute) must not hand them its connections, which would stay
 * open in the child and count against the child's descriptor limit. */
static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
  int flags = fcntl(fd, F_GETFD);
  (void)ud;
  (void)purpose;
  if (flags != -1)
    fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  return CURL_SOCKOPT_OK;
}

/* ---- the engine's transfers ----------------------------------------------- */

void transfer_detach(tide_engine *E, transfer *x)
{
  if (!x->active)
    return;
  curl_multi_remove_handle(E->multi, x->easy);
  x->active = 0;
  E->transfers--;
}

/* A handle for a new transfer, its receive buffer set to RECEIVE_BUFFER_BYTES.
 * libcurl (7.88) refuses CURLOPT_BUFFERSIZE on a handle that still holds a
 * receive buffer — one whose transfer failed before connecting (a name that did
 * not resolve) keeps its 4 KiB buffer across curl_easy_reset — and would then
 * read up to its 16 KiB default into that buffer: a heap overflow.  Such a
 * handle is dropped, not reused. */
static CURL *easy_get(tide_engine *E)
{
  CURL *easy;
  while (E->easy_pooled > 0) {
    easy = E->easy_pool[--E->easy_pooled];
    if (curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_BYTES) == CURLE_OK)
      return easy;
    curl_easy_cleanup(easy);
  }
  easy = curl_easy_init();
  if (easy && curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_BYTES) != CURLE_OK) {
    curl_easy_cleanup(easy);
    easy = NULL;
  }
  return easy;
}

static void easy_put(tide_engine *E, CURL *easy)
{
  if (!E->closed && E->easy_pooled < E->easy_pool_cap) {
    curl_easy_reset(easy);
    E->easy_pool[E->easy_pooled++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

static void transfer_hold(tide_engine *E, transfer *x)
{
  x->prev = NULL;
  x->next = E->transfers_live;
  if (x->next)
    x->next->prev = x;
  E->transfers_live = x;
}

static void transfer_unhold(tide_engine *E, transfer *x)
{
  if (x->prev)
    x->prev->next = x->next;
  else
    E->transfers_live = x->next;
  if (x->next)
    x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

/* Frees everything the transfer holds; safe to call twice, and after the engine
 * was released (its easy handle is gone then). */
void transfer_release(transfer *x)
{
  tide_engine *E = x->op.E;
  transfer_detach(E, x);
  if (x->easy) {
    transfer_unhold(E, x);
    easy_put(E, x->easy);
    x->easy = NULL;
  }
  curl_slist_free_all(x->headers);
  x->headers = NULL;
  buffer_free(&x->body);
  buffer_free(&x->head);
}

int transfer_gc(lua_State *L)
{
  transfer_release((transfer *)lua_touserdata(L, 1));
  return 0;
}

static void collect_finished(tide_engine *E)
{
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(E->multi, &left)) != NULL) {
    transfer *x = NULL;
    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    x->result = msg->data.result;
    transfer_detach(E, x);   /* msg is invalid from here on */
    x->finished = 1;
    transfer_wake(x);
  }
}

/* A socket in error (a reset, most often) is handed to curl as ready for what it
 * waits for, not as CURL_CSELECT_ERR: curl then reads or writes, and reports the
 * socket's own error ("Connection reset by peer", CURLE_RECV_ERROR) rather than
 * "select/poll returned error" (CURLE_SEND_ERROR, whatever the direction).  libuv
 * stops a poll handle that reports an error: it is started again when curl keeps
 * the socket. */
static void on_poll(uv_poll_t *h, int status, int events)
{
  http_socket *s = (http_socket *)h->data;
  tide_engine *E = s->E;
  int flags = 0, running;
  if (status < 0)
    events = s->events;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(E->multi, s->fd, flags, &running);
  /* s stays allocated until its close callback, which runs after this one */
  if (status < 0 && !uv_is_closing((uv_handle_t *)&s->poll) && !uv_is_active((uv_handle_t *)&s->poll))
    uv_poll_start(&s->poll, s->events, on_poll);
  collect_finished(E);
}

static void on_curl_timeout(uv_timer_t *h)
{
  tide_engine *E = (tide_engine *)h->data;
  int running;
  curl_multi_socket_action(E->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect_finished(E);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  tide_engine *E = (tide_engine *)userp;
  (void)multi;
  if (timeout_ms < 0)
    uv_timer_stop(E->curl_timer);
  else
    uv_timer_start(E->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static void socket_closed(uv_handle_t *h)
{
  free(h->data);
}

static void socket_close(tide_engine *E, http_socket *s)
{
  if (s->prev)
    s->prev->next = s->next;
  else
    E->sockets_live = s->next;
  if (s->next)
    s->next->prev = s->prev;
  E->sockets--;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, socket_closed);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  tide_engine *E = (tide_engine *)userp;
  http_socket *s = (http_socket *)socketp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(E->multi, fd, NULL);
      socket_close(E, s);
    }
    return 0;
  }
  if (s == NULL) {
    s = (http_socket *)calloc(1, sizeof *s);
    if (s == NULL)
      return -1;
    if (uv_poll_init_socket(E->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->fd = fd;
    s->E = E;
    s->next = E->sockets_live;
    if (s->next)
      s->next->prev = s;
    E->sockets_live = s;
    E->sockets++;
    curl_multi_assign(E->multi, fd, s);
  }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  s->events = events;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

/* ---- engine setup and teardown -------------------------------------------- */

/* Every request in flight holds a socket: lift the soft descriptor limit to the
 * hard one, as servers do, so 10 000 concurrent calls do not fail at 1 024.
 * Returns the soft limit now in force. */
static long raise_fd_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
}

/* The descriptors open now (those a host or a parent process left us), or 0
 * where /proc cannot tell. */
static long open_descriptors(void)
{
  long n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Connections stay below the descriptors still free, with room left for the
 * program's own files: calls beyond the cap wait in libcurl's queue instead of
 * failing with "too many open files". */
static long default_connection_cap(long fd_limit)
{
  long free_fds = fd_limit - open_descriptors();
  long reserve = free_fds / 4;
  reserve = reserve < 16 ? 16 : reserve > 256 ? 256 : reserve;
  return free_fds - reserve > 1 ? free_fds - reserve : 1;
}

static void set_connection_caps(tide_engine *E, long total, long per_host)
{
  E->max_connections = total;
  E->max_host_connections = per_host;
  curl_multi_setopt(E->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
  curl_multi_setopt(E->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  /* The idle connections kept for reuse.  curl's default is 4 × the transfers in
   * the multi handle at the moment one ends, and ours leave it before their task
   * has started the next call: a burst of answers shrank the cache and closed
   * the very connections the next calls wanted (450 connections for 3 000 calls
   * 64 at a time, where 65 do).  Up to the cap, they are kept. */
  curl_multi_setopt(E->multi, CURLMOPT_MAXCONNECTS, total);
}

int http_init(tide_engine *E)
{
  long cap = default_connection_cap(raise_fd_limit());
  E->multi = curl_multi_init();
  E->share = curl_share_init();
  E->curl_timer = (uv_timer_t *)malloc(sizeof *E->curl_timer);
  E->easy_pool = (CURL **)malloc(EASY_POOL_MAX * sizeof *E->easy_pool);
  if (!E->multi || !E->share || !E->curl_timer || !E->easy_pool) {
    if (E->multi)
      curl_multi_cleanup(E->multi);
    if (E->share)
      curl_share_cleanup(E->share);
    free(E->curl_timer);
    free(E->easy_pool);
    return -1;
  }
  E->easy_pool_cap = EASY_POOL_MAX;
  uv_timer_init(E->loop, E->curl_timer);
  E->curl_timer->data = E;
  curl_share_setopt(E->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(E->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_multi_setopt(E->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(E->multi, CURLMOPT_SOCKETDATA, E);
  curl_multi_setopt(E->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(E->multi, CURLMOPT_TIMERDATA, E);
  curl_multi_setopt(E->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  set_connection_caps(E, cap, cap);
  return 0;
}

static void timer_handle_closed(uv_handle_t *h)
{
  free(h);
}

void http_release(tide_engine *E)
{
  /* Every easy handle goes now, those of streams still open in Lua too (their
   * userdata outlives the engine until lua_close): one still attached to the share
   * handle would keep curl_share_cleanup from freeing it, and be cleaned up after
   * curl_global_cleanup.  The userdata's __gc finds no handle then. */
  while (E->transfers_live) {
    transfer *x = E->transfers_live;
    transfer_detach(E, x);
    transfer_unhold(E, x);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
  }
  while (E->easy_pooled > 0)
    curl_easy_cleanup(E->easy_pool[--E->easy_pooled]);
  curl_multi_cleanup(E->multi);   /* closes cached connections */
  curl_share_cleanup(E->share);
  while (E->sockets_live)
    socket_close(E, E->sockets_live);
  uv_timer_stop(E->curl_timer);
  uv_close((uv_handle_t *)E->curl_timer, timer_handle_closed);
  free(E->easy_pool);
  E->easy_pool = NULL;
  E->multi = NULL;
  E->share = NULL;
}

/* ---- tide.request ---------------------------------------------------------- */

static void transfer_cancel(op *o)
{
  transfer *x = (transfer *)o;
  transfer_detach(o->E, x);   /* curl closes the connection mid-transfer */
  x->result = CURLE_ABORTED_BY_CALLBACK;
  x->finished = 1;
  x->reading = 0;
  op_complete(o);
}

const op_class transfer_class = {"request", transfer_cancel};

/* [-0, +1] the URL without its query, fragment or user info: error messages must
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

/* [-0, +0, v] raises the transport error of a failed transfer. */
int raise_transfer_error(lua_State *L, transfer *x, const char *method, const char *url)
{
  const char *kind = error_kind(x);
  push_redacted_url(L, url);
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

/* [-0, +1] the response headers as a table: lower-case names, repeated ones
 * joined with ", ". */
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

static void set_seconds(lua_State *L, CURL *easy, CURLINFO info, const char *field)
{
  curl_off_t us = 0;
  curl_easy_getinfo(easy, info, &us);
  lua_pushnumber(L, (lua_Number)us / 1e6);
  lua_setfield(L, -2, field);
}

/* Stack of the request's frame: 1 opts, 2 url, 3 method, 4 body, 5 transfer. */
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
    return raise_transfer_error(L, x, lua_tostring(L, 3), lua_tostring(L, 2));
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

/* Reads an optional number of seconds from opts; -1 when absent. */
static double opt_seconds(lua_State *L, const char *field)
{
  double v = -1;
  if (lua_getfield(L, 1, field) != LUA_TNIL)
    v = engine_check_seconds(L, -1, 1, field, 0);
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

/* opts.max_body: a whole number of bytes >= 0; the default when absent. */
static size_t opt_max_body(lua_State *L)
{
  lua_Integer n = (lua_Integer)DEFAULT_MAX_BODY;
  if (lua_getfield(L, 1, "max_body") != LUA_TNIL) {
    int ok;
    n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 0)
      luaL_argerror(L, 1, lua_pushfstring(L, "field 'max_body' must be a whole number of bytes "
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

/* Checks opts.headers and appends them to *list.  Returns 0, or -1 out of memory. */
static int build_headers(lua_State *L, struct curl_slist **list)
{
  struct curl_slist *l = NULL, *n;
  if (lua_getfield(L, 1, "headers") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, 1, "field 'headers' must be a table of name = value");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_argerror(L, 1, "field 'headers' must map names (strings) to strings");
      if (!valid_header_text(L, -2) || !valid_header_text(L, -1))
        luaL_argerror(L, 1, lua_pushfstring(L, "header '%s' contains a line break or a NUL byte",
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

/* Reads the request options at L[1], starts the transfer and leaves the stack as
 * 1 opts, 2 url, 3 method, 4 body (or nil), 5 the transfer userdata (with `nuv`
 * user values).  fname names the caller in errors. */
transfer *transfer_start(tide_engine *E, lua_State *L, const char *fname, int streaming, int nuv)
{
  const char *url, *method;
  size_t body_len = 0, url_len, max_body;
  double timeout, connect_timeout;
  struct curl_slist *headers = NULL;
  transfer *x;
  CURL *easy;

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getfield(L, 1, "url") != LUA_TSTRING)
    luaL_argerror(L, 1, "field 'url' must be a string");
  url = lua_tolstring(L, 2, &url_len);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    luaL_argerror(L, 1, "field 'url' must start with http:// or https://");
  if (strlen(url) != url_len)   /* curl would read the URL up to the NUL only */
    luaL_argerror(L, 1, "field 'url' contains a NUL byte");
  if (lua_getfield(L, 1, "body") != LUA_TNIL && lua_type(L, 3) != LUA_TSTRING)
    luaL_argerror(L, 1, "field 'body' must be a string");
  lua_tolstring(L, 3, &body_len);
  if (lua_getfield(L, 1, "method") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushstring(L, lua_isnil(L, 3) ? "GET" : "POST");
  } else if (lua_type(L, 4) != LUA_TSTRING || !valid_method(L, 4)) {
    luaL_argerror(L, 1, "field 'method' must be an upper-case HTTP method");
  }
  lua_insert(L, 3);   /* 1 opts, 2 url, 3 method, 4 body */
  method = lua_tostring(L, 3);
  timeout = opt_seconds(L, "timeout");
  connect_timeout = opt_seconds(L, "connect_timeout");
  max_body = opt_max_body(L);
  engine_check_wait(E, L, fname);
  if (build_headers(L, &headers) != 0)
    luaL_error(L, "%s: out of memory", fname);

  x = (transfer *)lua_newuserdatauv(L, sizeof *x, nuv);   /* 5 */
  memset(x, 0, sizeof *x);
  op_init(&x->op, &transfer_class, E);
  luaL_setmetatable(L, streaming ? STREAM_MT : TRANSFER_MT);
  x->headers = headers;
  x->streaming = streaming;
  x->body.max = streaming ? (size_t)-1 : max_body;
  x->max_total = max_body;
  x->head.max = MAX_HEADER_BYTES;
  x->easy = easy = easy_get(E);
  if (easy == NULL) {
    transfer_release(x);
    luaL_error(L, "%s: out of memory", fname);
  }
  transfer_hold(E, x);
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(easy, CURLOPT_SHARE, E->share);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   connect_timeout > 0 ? curl_ms(connect_timeout) : DEFAULT_CONNECT_TIMEOUT_MS);
  if (timeout > 0)
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, curl_ms(timeout));
  if (strncmp(url, "https://", 8) == 0)
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);   /* prefer one multiplexed h2 connection */
  if (strcmp(method, "GET") == 0 && lua_isnil(L, 4)) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0 && lua_isnil(L, 4)) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    /* the body string stays referenced (stack slot 4, or the stream's user value)
     * until the transfer ends: curl sends it without a copy */
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, lua_isnil(L, 4) ? "" : lua_tostring(L, 4));
  }
  if (curl_multi_add_handle(E->multi, easy) != CURLM_OK) {
    transfer_release(x);
    luaL_error(L, "%s: libcurl refused the transfer", fname);
  }
  x->active = 1;
  E->transfers++;
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
  transfer *x = transfer_start(E, L, "tide.request", 0, 0);
  return engine_await(E, L, &x->op, http_request_k);
}

/* tide.http_limits{connections = n, per_host = n} → {connections, per_host}
 * Caps the open connections in all and to one host; transfers over a cap wait
 * (their timeout runs while they wait).  Without a table, returns the caps. */
static int http_llimits(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  long total = E->max_connections, per_host = E->max_host_connections;
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
    set_connection_caps(E, total, per_host);
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
