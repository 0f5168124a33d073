/*
 * http_multi.c — libcurl's multi_socket interface driven by libuv: the glue
 * under tide.request and tide.stream.
 *
 * The canonical integration: CURLMOPT_SOCKETFUNCTION maps each socket curl uses to
 * a uv_poll_t, CURLMOPT_TIMERFUNCTION drives one uv_timer_t, and after every
 * curl_multi_socket_action the finished transfers are collected with
 * curl_multi_info_read.  Callbacks only copy bytes and complete ops; the request's
 * task turns the bytes into Lua values when the scheduler resumes it
 * (http_request.c, stream.c).
 *
 * One multi handle per engine: its connection cache is shared by all its easy
 * handles already (keep-alive, HTTP/2 multiplexing).  The share handle adds what
 * the multi does not share by itself: TLS sessions, and DNS across engines' future
 * multis.  Easy handles are pooled so a request costs no curl_easy_init.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "http.h"

#define STREAM_PENDING_MAX ((size_t)1 << 20)   /* unread stream bytes before pausing */
#define EASY_POOL_MAX 512
/* curl's receive buffer, per transfer.  Its default is most of what a waiting
 * call costs, and LM answers and stream events are small, so a smaller buffer
 * makes every call in flight lighter for a few more reads on a large body
 * (spec/memory_spec.lua bounds the memory of a waiting call; `make bench` reports
 * RSS per call in flight).  One size for every transfer, so pooled handles never
 * meet a buffer sized for another. */
#define RECEIVE_BUFFER_BYTES 4096L
#define H2_MAX_STREAMS 1000L

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
  curl_multi_remove_handle(E->http->multi, x->easy);
  x->active = 0;
  E->http->transfers--;
}

/* A handle for a new transfer, its receive buffer set to RECEIVE_BUFFER_BYTES.
 * libcurl (7.88) refuses CURLOPT_BUFFERSIZE on a handle that still holds a
 * receive buffer — one whose transfer failed before connecting (a name that did
 * not resolve) keeps its small buffer across curl_easy_reset — and would then
 * read up to its larger default into that buffer: a heap overflow.  Such a
 * handle is dropped, not reused. */
static CURL *easy_get(struct http_state *H)
{
  CURL *easy;
  while (H->easy_pooled > 0) {
    easy = H->easy_pool[--H->easy_pooled];
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
  struct http_state *H = E->http;
  if (!E->closed && H->easy_pooled < H->easy_pool_cap) {
    curl_easy_reset(easy);
    H->easy_pool[H->easy_pooled++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

static void transfer_hold(struct http_state *H, transfer *x)
{
  x->prev = NULL;
  x->next = H->transfers_live;
  if (x->next)
    x->next->prev = x;
  H->transfers_live = x;
}

static void transfer_unhold(struct http_state *H, transfer *x)
{
  if (x->prev)
    x->prev->next = x->next;
  else
    H->transfers_live = x->next;
  if (x->next)
    x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

CURL *transfer_attach(tide_engine *E, transfer *x)
{
  struct http_state *H = E->http;
  CURL *easy = easy_get(H);
  if (easy == NULL)
    return NULL;
  x->easy = easy;
  transfer_hold(H, x);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(easy, CURLOPT_SHARE, H->share);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
  return easy;
}

int transfer_run(tide_engine *E, transfer *x)
{
  if (curl_multi_add_handle(E->http->multi, x->easy) != CURLM_OK)
    return -1;
  x->active = 1;
  E->http->transfers++;
  return 0;
}

/* After the engine was released its easy handles are gone (http_release): x then
 * holds none, and E->http is not touched. */
void transfer_release(transfer *x)
{
  tide_engine *E = x->op.E;
  transfer_detach(E, x);
  if (x->easy) {
    transfer_unhold(E->http, x);
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
  while ((msg = curl_multi_info_read(E->http->multi, &left)) != NULL) {
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

/* ---- sockets and the timer: libuv tells curl ------------------------------ */

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
  curl_multi_socket_action(E->http->multi, s->fd, flags, &running);
  /* s stays allocated until its close callback, which runs after this one */
  if (status < 0 && !uv_is_closing((uv_handle_t *)&s->poll) && !uv_is_active((uv_handle_t *)&s->poll))
    uv_poll_start(&s->poll, s->events, on_poll);
  collect_finished(E);
}

static void on_curl_timeout(uv_timer_t *h)
{
  tide_engine *E = (tide_engine *)h->data;
  int running;
  curl_multi_socket_action(E->http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect_finished(E);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  tide_engine *E = (tide_engine *)userp;
  (void)multi;
  if (timeout_ms < 0)
    uv_timer_stop(E->http->curl_timer);
  else
    uv_timer_start(E->http->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static void socket_closed(uv_handle_t *h)
{
  free(h->data);
}

static void socket_close(struct http_state *H, http_socket *s)
{
  if (s->prev)
    s->prev->next = s->next;
  else
    H->sockets_live = s->next;
  if (s->next)
    s->next->prev = s->prev;
  H->sockets--;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, socket_closed);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  tide_engine *E = (tide_engine *)userp;
  struct http_state *H = E->http;
  http_socket *s = (http_socket *)socketp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(H->multi, fd, NULL);
      socket_close(H, s);
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
    s->next = H->sockets_live;
    if (s->next)
      s->next->prev = s;
    H->sockets_live = s;
    H->sockets++;
    curl_multi_assign(H->multi, fd, s);
  }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  s->events = events;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

/* ---- the engine's HTTP state: setup and teardown --------------------------- */

/* The default cap on connections: below the process's descriptor limit, with room
 * left for the program's own files, so calls beyond it wait in libcurl's queue
 * instead of failing with "too many open files".  The limit is only read: a
 * library leaves the process's limits to the program (the tide binary raises its
 * own, and lowers the caps by the descriptors it holds: engine/cli/fdlimit.c); a
 * host with many descriptors open sets tide.http_limits. */
static long default_connection_cap(void)
{
  struct rlimit rl;
  long limit = 1024, reserve;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
  reserve = limit / 4;
  reserve = reserve < 16 ? 16 : reserve > 256 ? 256 : reserve;
  return limit - reserve > 1 ? limit - reserve : 1;
}

void http_set_limits(tide_engine *E, long total, long per_host)
{
  struct http_state *H = E->http;
  H->max_connections = total;
  H->max_host_connections = per_host;
  curl_multi_setopt(H->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
  curl_multi_setopt(H->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  /* The idle connections kept for reuse.  curl's default is a multiple of the
   * transfers in the multi handle at the moment one ends, and ours leave it
   * before their task has started the next call: a burst of answers shrank the
   * cache and closed the very connections the next calls wanted.  Up to the cap,
   * they are kept (spec/limits_spec.lua: "keep their connections for the next
   * calls when calls go a few at a time"). */
  curl_multi_setopt(H->multi, CURLMOPT_MAXCONNECTS, total);
}

/* Frees what http_init allocated, in any state it reached (no uv handle
 * started yet, or every one closed already); stops libcurl. */
static void http_free(struct http_state *H)
{
  if (H) {
    if (H->multi)
      curl_multi_cleanup(H->multi);
    if (H->share)
      curl_share_cleanup(H->share);
    free(H->easy_pool);
    free(H);
  }
  curl_global_cleanup();
}

int http_init(tide_engine *E)
{
  struct http_state *H;
  long cap = default_connection_cap();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -1;
  H = (struct http_state *)calloc(1, sizeof *H);
  if (H)
    H->curl_timer = (uv_timer_t *)malloc(sizeof *H->curl_timer);
  if (H == NULL || H->curl_timer == NULL || (H->multi = curl_multi_init()) == NULL ||
      (H->share = curl_share_init()) == NULL ||
      (H->easy_pool = (CURL **)malloc(EASY_POOL_MAX * sizeof *H->easy_pool)) == NULL) {
    if (H)
      free(H->curl_timer);   /* never given to libuv */
    http_free(H);
    return -1;
  }
  E->http = H;
  H->easy_pool_cap = EASY_POOL_MAX;
  uv_timer_init(E->loop, H->curl_timer);
  H->curl_timer->data = E;
  curl_share_setopt(H->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(H->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_multi_setopt(H->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(H->multi, CURLMOPT_SOCKETDATA, E);
  curl_multi_setopt(H->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(H->multi, CURLMOPT_TIMERDATA, E);
  curl_multi_setopt(H->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* Streams on one HTTP/2 connection: up to what the server allows.  curl's own
   * cap (100) made the 101st concurrent call open a connection of its own, and
   * every call after it too (PIPEWAIT waits only for a connection not yet known
   * to multiplex): 200 calls took 101 connections (spec/h2_spec.lua). */
  curl_multi_setopt(H->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS);
  http_set_limits(E, cap, cap);
  return 0;
}

static void timer_handle_closed(uv_handle_t *h)
{
  free(h);
}

void http_release(tide_engine *E)
{
  struct http_state *H = E->http;
  /* Every easy handle goes now, those of streams still open in Lua too (their
   * userdata outlives the engine until lua_close): one still attached to the share
   * handle would keep curl_share_cleanup from freeing it, and be cleaned up after
   * curl_global_cleanup.  The userdata's __gc finds no handle then. */
  while (H->transfers_live) {
    transfer *x = H->transfers_live;
    transfer_detach(E, x);
    transfer_unhold(H, x);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
  }
  while (H->easy_pooled > 0)
    curl_easy_cleanup(H->easy_pool[--H->easy_pooled]);
  /* closes the cached connections, through on_curl_socket: H is whole till then */
  curl_multi_cleanup(H->multi);
  H->multi = NULL;
  curl_share_cleanup(H->share);
  H->share = NULL;
  while (H->sockets_live)
    socket_close(H, H->sockets_live);
  uv_timer_stop(H->curl_timer);
  uv_close((uv_handle_t *)H->curl_timer, timer_handle_closed);
  E->http = NULL;
  http_free(H);
}

void http_push_stats(lua_State *L, const tide_engine *E)
{
  lua_pushinteger(L, E->http->transfers);
  lua_setfield(L, -2, "transfers");
  lua_pushinteger(L, E->http->sockets);
  lua_setfield(L, -2, "sockets");
  lua_pushinteger(L, E->http->easy_pooled);
  lua_setfield(L, -2, "idle_handles");
}

/* ---- the transfer's op ------------------------------------------------------ */

static void transfer_cancel(op *o)
{
  transfer *x = (transfer *)o;
  transfer_detach(o->E, x);   /* curl closes the connection mid-transfer */
  x->result = CURLE_ABORTED_BY_CALLBACK;
  x->finished = 1;
  x->reading = 0;
  op_complete(&x->op);
}

const op_class transfer_class = {"request", transfer_cancel};
