/* http.c: the listener and connections; request.c frames the requests.
   One request per connection is answered at a time; later pipelined requests
   wait in the input buffer, so responses go out in order. */
#include "mockllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINGER_MS 2000

static void conn_pump(struct conn *c);
static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *out);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void conn_free_cb(uv_handle_t *h)
{
  struct conn *c = h->data;
  if (--c->handles > 0)
    return;
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->tail);
  free(c->ev_end);
  free(c);
}

void conn_close(struct conn *c, int rst)
{
  struct server *s = c->srv;
  if (c->closing)
    return;
  c->closing = 1;
  if (c->counted) {
    c->counted = 0;
    stats_finish(s, 1);
    log_abort(&s->log, c->log_seq);  /* the client went first: no answer reached it */
  }
  c->busy = 0;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  stats_conn_close(s);
  uv_close((uv_handle_t *)&c->timer, conn_free_cb);
  /* close_reset refuses after a shutdown; a plain close is the fallback. */
  if (!rst || uv_tcp_close_reset(&c->tcp, conn_free_cb) != 0)
    uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
}

static void on_write(uv_write_t *w, int status)
{
  struct conn *c = w->data;
  if (c->closing)
    return;
  if (status < 0) {
    conn_close(c, 0);  /* the client went away mid-response */
    return;
  }
  c->after(c);
}

void conn_send(struct conn *c, const char *p, size_t n, void (*after)(struct conn *))
{
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  c->after = after;
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0)
    conn_close(c, 0);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
  (void)r;
  (void)status;  /* the drain ends on EOF or on the linger timer */
}

static void on_linger_timeout(uv_timer_t *t)
{
  conn_close(t->data, 0);
}

/* After a 4xx that ends the connection, the client may still be sending a
   body; closing with unread input would make the kernel send RST and the
   client could lose our answer. So: FIN, read and discard, then close. */
static void linger_start(struct conn *c)
{
  c->draining = 1;
  c->in.len = c->in_off;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    conn_close(c, 0);
    return;
  }
  uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
  if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
}

void conn_done(struct conn *c)
{
  struct server *s = c->srv;
  if (c->counted) {
    c->counted = 0;
    stats_finish(s, 0);
  }
  c->busy = 0;
  uv_timer_stop(&c->timer);
  buf_free(&c->out);  /* idle connections should hold no buffers */
  buf_free(&c->tail);
  free(c->ev_end);
  c->ev_end = NULL;
  c->nev = c->iev = 0;
  c->stream = c->chunked = c->cut = c->cut_rst = c->bom = 0;
  c->filler_left = 0;
  c->filler_event = NULL;
  c->out_off = 0;
  c->fill_left = 0;
  c->tail_sent = 0;
  c->fault = FAULT_NONE;
  if (c->linger)
    linger_start(c);
  else if (!c->keepalive || s->stopping)
    conn_close(c, 0);
  else
    conn_pump(c);
}

static void maybe_continue(struct conn *c)
{
  static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b;
  if (!c->h.expect || c->h.continued)
    return;
  c->h.continued = 1;
  b = uv_buf_init((char *)msg, sizeof msg - 1);
  /* A fresh socket's send buffer has room; if not, the client will send
     the body anyway after its own timeout. */
  (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

/* 1: *rq holds a complete request (consumed from the input); 0: need more
   input; -1: answered with an error, the connection is ending. */
static int parse_request(struct conn *c, struct request *rq, struct buf *body)
{
  struct frame_error fe;
  size_t used = 0;
  int r = request_frame(&c->h, c->in.data + c->in_off, c->in.len - c->in_off, rq, body,
                        &used, &fe);
  c->in_off += used;  /* the bytes stay put until the next read compacts */
  if (r < 0) {
    respond_fail(c, fe.status, fe.msg);
    return -1;
  }
  if (r == 0) {
    if (c->h.done)  /* the head is in, the body is not */
      maybe_continue(c);
    return 0;
  }
  rq->t_ns = c->read_ns;
  c->keepalive = rq->keepalive != 0;
  c->http10 = rq->http10 != 0;
  return 1;
}

static void conn_pump(struct conn *c)
{
  if (c->in_pump)
    return;
  c->in_pump = 1;
  while (!c->busy && !c->closing) {
    struct request rq;
    struct buf body = {0};
    int r = parse_request(c, &rq, &body);
    if (r > 0) {
      c->busy = 1;
      respond_start(c, &rq);
    }
    buf_free(&body);
    if (r <= 0)
      break;
  }
  c->in_pump = 0;
  if (c->closing)
    return;
  /* Thousands of clients may sit idle or wait on a delayed answer: a
     connection with nothing buffered keeps no input buffer. */
  if (!c->h.done && c->in_off == c->in.len) {
    buf_free(&c->in);
    c->in_off = 0;
    c->h.scan = 0;
  }
  if (!c->reading && !c->busy &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *out)
{
  struct conn *c = hd->data;
  struct buf *in = &c->in;
  (void)hint;
  if (c->in_off > 0 && (c->in_off == in->len || in->cap - in->len < READ_CHUNK)) {
    memmove(in->data, in->data + c->in_off, in->len - c->in_off);
    in->len -= c->in_off;
    c->in_off = 0;
  }
  buf_reserve(in, READ_CHUNK);
  out->base = in->data + in->len;
  out->len = in->cap - in->len;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct conn *c = st->data;
  (void)b;
  if (nread > 0) {
    c->read_ns = uv_hrtime();
    c->in.len += (size_t)nread;
    if (c->draining)
      c->in.len = c->in_off;
    else if (!c->busy)
      conn_pump(c);
    else if (c->in.len - c->in_off > MAX_REQUEST + MAX_HEADER) {
      uv_read_stop(st);  /* a pipelining client must wait for us */
      c->reading = 0;
    }
    return;
  }
  if (nread < 0)
    conn_close(c, 0);  /* EOF or error: whatever was in progress is abandoned */
}

static void on_connection(uv_stream_t *ls, int status)
{
  struct server *s = ls->data;
  struct conn *c;
  if (status < 0) {
    if (!s->quiet)
      fprintf(stderr, "mockllm: accept: %s\n", uv_strerror(status));
    return;
  }
  c = xcalloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  stats_conn_open(s);
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c, 0);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->keepalive = 1;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c, 0);
    return;
  }
  c->reading = 1;
}

/* --no-accept: a connection is left unaccepted, so libuv stops taking more and
 * the kernel's queue (backlog 0) fills; later clients time out connecting. */
static void on_connection_ignored(uv_stream_t *ls, int status)
{
  (void)ls;
  (void)status;
}

int http_listen(struct server *s, const char *host, int port, char *addr, size_t addrlen)
{
  struct sockaddr_storage ss;
  int namelen = sizeof ss, r, v6 = 0;
  char ip[64];
  memset(&ss, 0, sizeof ss);
  uv_tcp_init(s->loop, &s->listener);  /* first, so a failure can still close it */
  s->listener.data = s;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0) {
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
      return UV_EINVAL;
    v6 = 1;
  }
  r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&s->listener, s->no_accept ? 0 : 8192,
                  s->no_accept ? on_connection_ignored : on_connection);
  if (r == 0)
    r = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &namelen);
  if (r != 0)
    return r;
  if (v6) {
    uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(addr, addrlen, "http://[%s]:%d", ip, port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(addr, addrlen, "http://%s:%d", ip, port);
  }
  return 0;
}

void http_close_all(struct server *s)
{
  if (!uv_is_closing((uv_handle_t *)&s->listener))
    uv_close((uv_handle_t *)&s->listener, NULL);
  while (s->conns)
    conn_close(s->conns, 0);
}
