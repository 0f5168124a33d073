/*
 * redis_conn.c — one Redis connection on the engine's loop.
 *
 * hiredis's async context does the protocol; this file gives it the loop (a
 * uv_poll_t per socket, as hiredis's own libuv adapter does, but unreferenced:
 * an idle connection must not keep tide.run or a host's loop alive) and keeps
 * it up:
 *
 *   - a host name is resolved with uv_getaddrinfo (hiredis's own connect would
 *     block in getaddrinfo); commands sent meanwhile wait in a queue;
 *   - every connect sends AUTH and SELECT first, so commands pipelined behind
 *     them run as the right user in the right database;
 *   - a watchdog timer runs while commands wait: no reply for `timeout` seconds
 *     drops the link (a stopped or partitioned server must not hang callers);
 *   - a lost or refused link fails what waited on it and tries again after a
 *     back-off (0.1 s doubling to 5 s, with jitter); while down, commands fail at
 *     once, so that callers fall back without waiting.
 *
 * The watchdog is referenced only while a command waits: that is exactly when
 * the loop must stay alive for the waiter.  The connection's memory goes with
 * the close callback of its last timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis.h"

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000

/* A command on its way: hiredis's privdata, or queued while the name resolves. */
struct redis_cmd {
  redis_conn *conn;
  redis_result *result;        /* NULL once its waiter is gone */
  redis_cmd *prev, *next;      /* the connection's commands, oldest first */
  int sent;
  int argc;                    /* a queued command's copy of its arguments */
  char **argv;
  size_t *argvlen;
};

/* Our uv_poll glue for one hiredis context. */
typedef struct redis_events {
  uv_poll_t handle;
  redisAsyncContext *ac;       /* NULL once hiredis let it go */
  int events;
} redis_events;

struct redis_conn {
  tide_engine *E;
  redisAsyncContext *ac;       /* NULL while resolving or down */
  uv_getaddrinfo_t *resolve;   /* in progress, or NULL */
  uv_timer_t watchdog, retry;
  int handles_open;
  int state;
  int handshake_failed;        /* AUTH or SELECT refused: error says why */
  char *host, *user, *password;
  int port, db;
  uint64_t timeout_ms;
  unsigned retry_ms;
  char where[300];             /* host:port, for messages */
  char error[256];
  redis_cmd *head, *tail;
  int pending;
  unsigned long connects, failures;
  redis_conn *prev, *next;     /* the engine's connections */
};

static void conn_connect(redis_conn *c);
static void conn_watchdog_fired(uv_timer_t *h);
static void conn_retry_fired(uv_timer_t *h);

/* ---- the commands' list ------------------------------------------------------ */

static void cmd_link(redis_conn *c, redis_cmd *cmd)
{
  cmd->prev = c->tail;
  cmd->next = NULL;
  if (c->tail)
    c->tail->next = cmd;
  else
    c->head = cmd;
  c->tail = cmd;
  if (c->pending++ == 0) {   /* the loop must now wait for the reply */
    uv_ref((uv_handle_t *)&c->watchdog);
    uv_timer_start(&c->watchdog, conn_watchdog_fired, c->timeout_ms, 0);
  }
}

static void cmd_free(redis_cmd *cmd)
{
  int i;
  for (i = 0; i < cmd->argc; i++)
    free(cmd->argv[i]);
  free(cmd->argv);
  free(cmd->argvlen);
  free(cmd);
}

/* Unlinks cmd and completes its waiter with reply (owned) or, without one, error. */
static void cmd_finish(redis_cmd *cmd, redis_value *reply, const char *error)
{
  redis_conn *c = cmd->conn;
  redis_result *r = cmd->result;
  if (cmd->prev)
    cmd->prev->next = cmd->next;
  else
    c->head = cmd->next;
  if (cmd->next)
    cmd->next->prev = cmd->prev;
  else
    c->tail = cmd->prev;
  if (--c->pending == 0) {
    uv_timer_stop(&c->watchdog);
    uv_unref((uv_handle_t *)&c->watchdog);
  } else if (c->state != REDIS_CLOSED) {   /* progress: the next reply gets its time */
    uv_timer_start(&c->watchdog, conn_watchdog_fired, c->timeout_ms, 0);
  }
  if (r) {
    r->cmd = NULL;
    r->reply = reply;
    if (reply == NULL)
      snprintf(r->error, sizeof r->error, "%s", error);
    op_complete(&r->op);
  } else {
    redis_value_free(reply);
  }
  cmd_free(cmd);
}

/* Fails every command not yet sent (a resolution failed, or the link closed). */
static void conn_fail_queued(redis_conn *c, const char *why)
{
  redis_cmd *cmd = c->head, *next;
  for (; cmd; cmd = next) {
    next = cmd->next;
    if (!cmd->sent)
      cmd_finish(cmd, NULL, why);
  }
}

void redis_result_detach(redis_result *r)
{
  if (r->cmd) {
    r->cmd->result = NULL;
    r->cmd = NULL;
  }
}

/* ---- hiredis's replies ----------------------------------------------------------- */

/* The message for commands a dropped link took with it. */
static const char *conn_lost_message(redis_conn *c, const redisAsyncContext *ac)
{
  if (c->error[0] && (c->handshake_failed || c->state != REDIS_READY))
    return c->error;
  if (ac && ac->err && ac->errstr[0])
    return ac->errstr;
  return c->error[0] ? c->error : "the connection was lost before the reply";
}

static void cmd_replied(redisAsyncContext *ac, void *reply, void *privdata)
{
  redis_cmd *cmd = (redis_cmd *)privdata;
  redis_value *copy = NULL;
  if (reply) {
    copy = redis_value_copy(reply);
    if (copy == NULL) {
      cmd_finish(cmd, NULL, "out of memory copying a reply");
      return;
    }
    cmd_finish(cmd, copy, NULL);
    return;
  }
  cmd_finish(cmd, NULL, conn_lost_message(cmd->conn, ac));
}

/* Sends an already linked command; 0, or -1 (hiredis refused: it is closing). */
static int cmd_write(redis_conn *c, redis_cmd *cmd, int argc, const char **argv,
                     const size_t *argvlen)
{
  if (redisAsyncCommandArgv(c->ac, cmd_replied, cmd, argc, argv, argvlen) != REDIS_OK)
    return -1;
  cmd->sent = 1;
  return 0;
}

/* ---- the loop's side: our uv_poll glue for hiredis ----------------------------- */

static void events_ready(uv_poll_t *h, int status, int events)
{
  redis_events *ev = (redis_events *)h->data;
  if (ev->ac && (status < 0 || (events & UV_READABLE)))
    redisAsyncHandleRead(ev->ac);   /* an error surfaces as a failed read */
  if (ev->ac && status == 0 && (events & UV_WRITABLE))
    redisAsyncHandleWrite(ev->ac);
}

static void events_update(redis_events *ev, int add, int flag)
{
  ev->events = add ? ev->events | flag : ev->events & ~flag;
  if (ev->events)
    uv_poll_start(&ev->handle, ev->events, events_ready);
  else
    uv_poll_stop(&ev->handle);
}

static void events_add_read(void *p) { events_update((redis_events *)p, 1, UV_READABLE); }
static void events_del_read(void *p) { events_update((redis_events *)p, 0, UV_READABLE); }
static void events_add_write(void *p) { events_update((redis_events *)p, 1, UV_WRITABLE); }
static void events_del_write(void *p) { events_update((redis_events *)p, 0, UV_WRITABLE); }

static void events_closed(uv_handle_t *h)
{
  free(h->data);
}

static void events_cleanup(void *p)
{
  redis_events *ev = (redis_events *)p;
  ev->ac = NULL;
  uv_close((uv_handle_t *)&ev->handle, events_closed);
}

static int events_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
  redis_events *ev = (redis_events *)calloc(1, sizeof *ev);
  if (ev == NULL)
    return -1;
  if (uv_poll_init(loop, &ev->handle, ac->c.fd) != 0) {
    free(ev);
    return -1;
  }
  uv_unref((uv_handle_t *)&ev->handle);   /* the watchdog holds the loop for waiters */
  ev->handle.data = ev;
  ev->ac = ac;
  ac->ev.data = ev;
  ac->ev.addRead = events_add_read;
  ac->ev.delRead = events_del_read;
  ac->ev.addWrite = events_add_write;
  ac->ev.delWrite = events_del_write;
  ac->ev.cleanup = events_cleanup;
  return 0;
}

/* ---- going down, and coming back -------------------------------------------------- */

/* Forgets a resolution in progress (its callback frees the request). */
static void conn_stop_resolving(redis_conn *c)
{
  if (c->resolve) {
    c->resolve->data = NULL;
    uv_cancel((uv_req_t *)c->resolve);
    c->resolve = NULL;
  }
}

/* The link is gone (ac already freed or being freed by hiredis), or never came (a
 * name that did not resolve in time): try again later. */
static void conn_down(redis_conn *c, const char *why)
{
  unsigned jitter;
  if (c->state == REDIS_CLOSED)
    return;
  conn_stop_resolving(c);
  if (why != c->error)
    snprintf(c->error, sizeof c->error, "%s", why);
  c->state = REDIS_DOWN;
  c->ac = NULL;
  c->failures++;
  conn_fail_queued(c, c->error);
  jitter = (unsigned)(uv_hrtime() % (c->retry_ms / 4 + 1));
  uv_timer_start(&c->retry, conn_retry_fired, c->retry_ms + jitter, 0);
  c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
}

/* Drops the link now (from outside hiredis's callbacks): waiters fail with why. */
static void conn_drop(redis_conn *c, const char *why)
{
  redisAsyncContext *ac = c->ac;
  snprintf(c->error, sizeof c->error, "%s", why);
  c->state = REDIS_DOWN;   /* before the free: lost commands say `why` */
  if (ac) {
    ac->data = NULL;       /* the disconnect callback leaves c alone */
    c->ac = NULL;
    redisAsyncFree(ac);
  }
  conn_down(c, c->error);   /* counts the failure and arms the retry */
}

static void conn_retry_fired(uv_timer_t *h)
{
  redis_conn *c = (redis_conn *)h->data;
  if (c->state == REDIS_DOWN)
    conn_connect(c);
}

static void conn_watchdog_fired(uv_timer_t *h)
{
  redis_conn *c = (redis_conn *)h->data;
  char why[128];
  snprintf(why, sizeof why, "no reply within %.3g s", (double)c->timeout_ms / 1000);
  conn_drop(c, why);
}

static void conn_connected(const redisAsyncContext *ac, int status)
{
  redis_conn *c = (redis_conn *)ac->data;
  if (c == NULL)
    return;
  if (status != REDIS_OK) {   /* hiredis frees ac after this */
    conn_down(c, ac->errstr[0] ? ac->errstr : "the connection failed");
    return;
  }
  c->connects++;
  if (!c->password && c->db == 0) {
    c->state = REDIS_READY;
    c->retry_ms = RETRY_FIRST_MS;
    c->error[0] = '\0';
  }
}

static void conn_disconnected(const redisAsyncContext *ac, int status)
{
  redis_conn *c = (redis_conn *)ac->data;
  (void)status;
  if (c == NULL)
    return;
  conn_down(c, c->handshake_failed ? c->error
               : ac->err && ac->errstr[0] ? ac->errstr : "the server closed the connection");
}

/* AUTH's and SELECT's replies: the last one's success makes the link ready. */
static void conn_handshake_replied(redisAsyncContext *ac, void *reply, void *privdata)
{
  redis_conn *c = (redis_conn *)ac->data;
  redisReply *r = (redisReply *)reply;
  int last = privdata != NULL;
  if (c == NULL || r == NULL || c->handshake_failed)
    return;
  if (r->type == REDIS_REPLY_ERROR) {
    snprintf(c->error, sizeof c->error, "the server refused %s: %.*s",
             last && c->db ? "SELECT" : "the credentials", (int)r->len, r->str);
    c->handshake_failed = 1;
    redisAsyncFree(ac);   /* deferred by hiredis until this callback returns */
    return;
  }
  if (last) {
    c->state = REDIS_READY;
    c->retry_ms = RETRY_FIRST_MS;
    c->error[0] = '\0';
  }
}

/* AUTH [user] password, then SELECT db; the last one's privdata is non-NULL. */
static void conn_handshake(redis_conn *c)
{
  char db[24];
  const char *argv[3];
  int argc = 0;
  if (c->password) {
    argv[argc++] = "AUTH";
    if (c->user)
      argv[argc++] = c->user;
    argv[argc++] = c->password;
    redisAsyncCommandArgv(c->ac, conn_handshake_replied, c->db ? NULL : c, argc, argv, NULL);
  }
  if (c->db) {
    snprintf(db, sizeof db, "%d", c->db);
    argv[0] = "SELECT";
    argv[1] = db;
    redisAsyncCommandArgv(c->ac, conn_handshake_replied, c, 2, argv, NULL);
  }
}

/* Connects to a numeric address; the queued commands follow the handshake. */
static void conn_open_ip(redis_conn *c, const char *ip)
{
  redisAsyncContext *ac = redisAsyncConnect(ip, c->port);
  redis_cmd *cmd;
  if (ac == NULL) {
    conn_down(c, "out of memory");
    return;
  }
  if (ac->err || events_attach(ac, c->E->loop) != 0) {
    char why[256];
    snprintf(why, sizeof why, "%s", ac->err ? ac->errstr : "cannot watch its socket");
    redisAsyncFree(ac);
    conn_down(c, why);
    return;
  }
  ac->data = c;
  redisAsyncSetConnectCallback(ac, conn_connected);
  redisAsyncSetDisconnectCallback(ac, conn_disconnected);
  c->ac = ac;
  c->state = REDIS_CONNECTING;
  c->handshake_failed = 0;
  conn_handshake(c);
  for (cmd = c->head; cmd && c->ac; cmd = cmd->next) {
    if (!cmd->sent && cmd_write(c, cmd, cmd->argc, (const char **)cmd->argv, cmd->argvlen) != 0)
      break;
  }
  conn_fail_queued(c, "the connection failed");
}

static void conn_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  redis_conn *c = (redis_conn *)req->data;
  char ip[64] = "";
  if (c && status == 0 && res) {
    if (res->ai_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
    else
      uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
  }
  uv_freeaddrinfo(res);
  free(req);
  if (c == NULL)
    return;   /* closed meanwhile */
  c->resolve = NULL;
  if (ip[0] == '\0') {
    char why[256];
    snprintf(why, sizeof why, "cannot resolve %s: %s", c->host,
             status ? uv_strerror(status) : "no address");
    conn_down(c, why);
    return;
  }
  conn_open_ip(c, ip);
}

static int is_numeric_host(const char *host)
{
  unsigned char buf[sizeof(struct in6_addr)];
  return uv_inet_pton(AF_INET, host, buf) == 0 || uv_inet_pton(AF_INET6, host, buf) == 0;
}

static void conn_connect(redis_conn *c)
{
  struct addrinfo hints;
  char port[16];
  if (is_numeric_host(c->host)) {
    conn_open_ip(c, c->host);
    return;
  }
  c->resolve = (uv_getaddrinfo_t *)malloc(sizeof *c->resolve);
  if (c->resolve == NULL) {
    conn_down(c, "out of memory");
    return;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof port, "%d", c->port);
  c->resolve->data = c;
  c->state = REDIS_RESOLVING;
  if (uv_getaddrinfo(c->E->loop, c->resolve, conn_resolved, c->host, port, &hints) != 0) {
    free(c->resolve);
    c->resolve = NULL;
    conn_down(c, "cannot start resolving the host name");
  }
}

/* ---- the API of redis.h ------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
  char *d;
  size_t n;
  if (s == NULL)
    return NULL;
  n = strlen(s) + 1;
  d = (char *)malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

static void conn_link(redis_conn *c)
{
  tide_engine *E = c->E;
  c->prev = NULL;
  c->next = E->redis;
  if (E->redis)
    E->redis->prev = c;
  E->redis = c;
}

static void conn_unlink(redis_conn *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    c->E->redis = c->next;
  if (c->next)
    c->next->prev = c->prev;
}

static void conn_free_secret(char *s)
{
  if (s) {
    volatile char *p = s;
    while (*p)
      *p++ = '\0';
    free(s);
  }
}

static void conn_freed(redis_conn *c)
{
  free(c->host);
  free(c->user);
  conn_free_secret(c->password);
  free(c);
}

redis_conn *redis_conn_open(tide_engine *E, const redis_options *o)
{
  redis_conn *c = (redis_conn *)calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->host = dup_or_null(o->host);
  c->user = dup_or_null(o->user);
  c->password = dup_or_null(o->password);
  if (!c->host || (o->user && !c->user) || (o->password && !c->password)) {
    conn_freed(c);
    return NULL;
  }
  c->E = E;
  c->port = o->port;
  c->db = o->db;
  c->timeout_ms = (uint64_t)(o->timeout * 1000 + 0.5);
  if (c->timeout_ms == 0)
    c->timeout_ms = 1;
  c->retry_ms = RETRY_FIRST_MS;
  snprintf(c->where, sizeof c->where, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d",
           c->host, c->port);
  uv_timer_init(E->loop, &c->watchdog);
  uv_timer_init(E->loop, &c->retry);
  c->watchdog.data = c->retry.data = c;
  uv_unref((uv_handle_t *)&c->watchdog);
  uv_unref((uv_handle_t *)&c->retry);   /* a reconnection alone keeps nothing alive */
  c->handles_open = 2;
  conn_link(c);
  conn_connect(c);
  return c;
}

static void conn_handle_closed(uv_handle_t *h)
{
  redis_conn *c = (redis_conn *)h->data;
  if (--c->handles_open == 0)
    conn_freed(c);
}

void redis_conn_close(redis_conn *c)
{
  redis_cmd *cmd, *next;
  if (c->state == REDIS_CLOSED)
    return;
  snprintf(c->error, sizeof c->error, "the connection was closed");
  conn_stop_resolving(c);
  c->state = REDIS_CLOSED;
  if (c->ac) {
    redisAsyncContext *ac = c->ac;
    ac->data = NULL;
    c->ac = NULL;
    redisAsyncFree(ac);   /* sent commands fail through cmd_replied */
  }
  for (cmd = c->head; cmd; cmd = next) {
    next = cmd->next;
    cmd_finish(cmd, NULL, c->error);
  }
  conn_unlink(c);
  uv_timer_stop(&c->watchdog);
  uv_timer_stop(&c->retry);
  uv_close((uv_handle_t *)&c->watchdog, conn_handle_closed);
  uv_close((uv_handle_t *)&c->retry, conn_handle_closed);
}

void redis_release(tide_engine *E)
{
  while (E->redis)
    redis_conn_close(E->redis);   /* unlinks it */
}

/* Says why a command could not be sent, to its waiter if it has one. */
static int send_failed(redis_result *r, const char *why)
{
  if (r)
    snprintf(r->error, sizeof r->error, "%s", why);
  return -1;
}

/* A queued command's own copy of its arguments; 0, or -1 out of memory (what
 * was copied goes with cmd_free). */
static int cmd_copy_args(redis_cmd *cmd, int argc, const char **argv, const size_t *argvlen)
{
  int i;
  cmd->argv = (char **)calloc((size_t)argc, sizeof *cmd->argv);
  cmd->argvlen = (size_t *)calloc((size_t)argc, sizeof *cmd->argvlen);
  if (!cmd->argv || !cmd->argvlen)
    return -1;
  cmd->argc = argc;   /* cmd_free frees argv[0..argc): NULL until copied */
  for (i = 0; i < argc; i++) {
    cmd->argv[i] = (char *)malloc(argvlen[i] + 1);
    if (cmd->argv[i] == NULL)
      return -1;
    memcpy(cmd->argv[i], argv[i], argvlen[i]);
    cmd->argvlen[i] = argvlen[i];
  }
  return 0;
}

int redis_conn_send(redis_conn *c, redis_result *r, int argc, const char **argv,
                    const size_t *argvlen)
{
  redis_cmd *cmd;
  if (c->state == REDIS_CLOSED || c->state == REDIS_DOWN)
    return send_failed(r, c->error[0] ? c->error : "the connection is down");
  cmd = (redis_cmd *)calloc(1, sizeof *cmd);
  if (cmd == NULL)
    return send_failed(r, "out of memory");
  cmd->conn = c;
  cmd->result = r;
  /* resolving: keep a copy until the link exists (conn_open_ip sends it) */
  if (c->ac == NULL && cmd_copy_args(cmd, argc, argv, argvlen) != 0) {
    cmd_free(cmd);
    return send_failed(r, "out of memory");
  }
  cmd_link(c, cmd);
  if (r)
    r->cmd = cmd;
  if (c->ac == NULL)
    return 0;
  if (cmd_write(c, cmd, argc, argv, argvlen) != 0) {
    if (r)
      r->cmd = NULL;
    cmd->result = NULL;
    cmd_finish(cmd, NULL, "");
    return send_failed(r, "the connection is closing");
  }
  return 0;
}

int redis_conn_state(const redis_conn *c)
{
  return c->state;
}

const char *redis_conn_error(const redis_conn *c)
{
  return c->error;
}

const char *redis_conn_where(const redis_conn *c)
{
  return c->where;
}

void redis_conn_counts(const redis_conn *c, int *pending, unsigned long *connects,
                       unsigned long *failures)
{
  *pending = c->pending;
  *connects = c->connects;
  *failures = c->failures;
}
