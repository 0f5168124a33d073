/* http.c: the listener, connections and HTTP/1.1 request framing.
   One request per connection is answered at a time; later pipelined requests
   wait in the input buffer, so responses go out in order. */
#include "mockllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
  c->stream = c->chunked = c->cut = 0;
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

static int hexval(int ch)
{
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20;
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

/* Length of the head including its blank line, or 0 if not all here yet.
   *scan remembers how far we looked so a slow client costs O(n) in total. */
static size_t head_end(const char *p, size_t n, size_t *scan)
{
  size_t i = *scan;
  while (i < n) {
    const char *q = memchr(p + i, '\n', n - i);
    if (q == NULL)
      break;
    i = (size_t)(q - p) + 1;
    if (i < n && p[i] == '\n')
      return i + 1;
    if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n')
      return i + 2;
  }
  *scan = n >= 2 ? n - 2 : 0;
  return 0;
}

static int token_in(const char *v, size_t n, const char *tok)
{
  size_t k = strlen(tok);
  while (n > 0) {
    const char *comma = memchr(v, ',', n);
    size_t len = comma ? (size_t)(comma - v) : n, a = 0, b = len;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (b - a == k && strncasecmp(v + a, tok, k) == 0)
      return 1;
    if (comma == NULL)
      break;
    n -= len + 1;
    v = comma + 1;
  }
  return 0;
}

static int name_is(const char *name, size_t n, const char *want)
{
  return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Fills h from the head p[0..len). Returns NULL or a message for a 400. */
static const char *parse_head(struct head *h, const char *p, size_t len)
{
  const char *end = p + len, *line = p, *eol, *lend, *sp1, *sp2;
  int conn_close_tok = 0, conn_keep_tok = 0;
  eol = memchr(line, '\n', (size_t)(end - line));
  lend = (eol > line && eol[-1] == '\r') ? eol - 1 : eol;
  sp1 = memchr(line, ' ', (size_t)(lend - line));
  if (sp1 == NULL || sp1 == line)
    return "malformed request line";
  sp2 = memchr(sp1 + 1, ' ', (size_t)(lend - sp1 - 1));
  if (sp2 == NULL || sp2 == sp1 + 1 || sp1[1] != '/')
    return "malformed request line";
  if (lend - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
      (sp2[8] != '0' && sp2[8] != '1'))
    return "unsupported HTTP version";
  h->http10 = sp2[8] == '0';
  h->is_get = sp1 - line == 3 && memcmp(line, "GET", 3) == 0;
  h->is_post = sp1 - line == 4 && memcmp(line, "POST", 4) == 0;
  h->target_off = (size_t)(sp1 + 1 - p);
  h->target_len = (size_t)(sp2 - sp1 - 1);
  for (line = eol + 1; line < end; line = eol + 1) {
    const char *colon, *v, *ve;
    size_t nlen;
    eol = memchr(line, '\n', (size_t)(end - line));
    lend = (eol > line && eol[-1] == '\r') ? eol - 1 : eol;
    if (lend == line)
      break;  /* the blank line */
    if (*line == ' ' || *line == '\t')
      return "obsolete header folding";
    colon = memchr(line, ':', (size_t)(lend - line));
    if (colon == NULL || colon == line || colon[-1] == ' ' || colon[-1] == '\t')
      return "malformed header line";
    nlen = (size_t)(colon - line);
    for (v = colon + 1; v < lend && (*v == ' ' || *v == '\t'); v++) {}
    for (ve = lend; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--) {}
    if (name_is(line, nlen, "content-length")) {
      unsigned long long x = 0;
      const char *q;
      if (v == ve || ve - v > 15)
        return "bad Content-Length";
      for (q = v; q < ve; q++) {
        if (*q < '0' || *q > '9')
          return "bad Content-Length";
        x = x * 10 + (unsigned)(*q - '0');
      }
      if (h->has_clen && h->clen != x)
        return "conflicting Content-Length";
      h->has_clen = 1;
      h->clen = x;
    } else if (name_is(line, nlen, "transfer-encoding")) {
      if (token_in(v, (size_t)(ve - v), "chunked"))
        h->chunked = 1;
      else if (!token_in(v, (size_t)(ve - v), "identity"))
        return "unsupported Transfer-Encoding";
    } else if (name_is(line, nlen, "connection")) {
      conn_close_tok |= token_in(v, (size_t)(ve - v), "close");
      conn_keep_tok |= token_in(v, (size_t)(ve - v), "keep-alive");
    } else if (name_is(line, nlen, "expect")) {
      h->expect = token_in(v, (size_t)(ve - v), "100-continue");
    } else if (name_is(line, nlen, "authorization") || name_is(line, nlen, "x-api-key") ||
               name_is(line, nlen, "x-goog-api-key")) {
      /* the log keeps which header came, never its value */
      if (h->auth == NULL)
        h->auth = name_is(line, nlen, "authorization") ? "authorization"
                : name_is(line, nlen, "x-api-key") ? "x-api-key" : "x-goog-api-key";
    } else if (name_is(line, nlen, "x-mock-scenario")) {
      h->has_scen = 1;
      h->scen_off = (size_t)(v - p);
      h->scen_len = (size_t)(ve - v);
    }
  }
  if (h->chunked) {  /* chunked wins over Content-Length (RFC 9112 6.3) */
    h->has_clen = 0;
    h->clen = 0;
  }
  if (h->http10)
    h->expect = 0;
  /* keep-alive is HTTP/1.1's default and HTTP/1.0's opt-in */
  h->keepalive = h->http10 ? (conn_keep_tok && !conn_close_tok) : !conn_close_tok;
  return NULL;
}

/* Walks a chunked body; with out != NULL also copies the data.
   Returns 1 complete (*used = bytes consumed), 0 incomplete, -1 bad, -2 too big. */
static int chunked_scan(const char *p, size_t n, struct buf *out, size_t *used)
{
  size_t i = 0, total = 0;
  for (;;) {
    const char *nl = memchr(p + i, '\n', n - i);
    unsigned long long sz = 0;
    size_t j, lend;
    int digits = 0;
    if (nl == NULL)
      return n - i > 4096 ? -1 : 0;
    lend = (size_t)(nl - p);
    for (j = i; j < lend && hexval((unsigned char)p[j]) >= 0; j++) {
      if (++digits > 15)
        return -1;
      sz = sz * 16 + (unsigned)hexval((unsigned char)p[j]);
    }
    if (digits == 0 || (j < lend && p[j] != ';' && p[j] != '\r' && p[j] != ' ' && p[j] != '\t'))
      return -1;
    i = lend + 1;
    if (sz == 0) {
      for (;;) {  /* optional trailers, then the blank line */
        size_t ll;
        nl = memchr(p + i, '\n', n - i);
        if (nl == NULL)
          return n - i > MAX_HEADER ? -1 : 0;
        ll = (size_t)(nl - (p + i));
        i = (size_t)(nl - p) + 1;
        if (ll == 0 || (ll == 1 && p[i - 2] == '\r')) {
          *used = i;
          return 1;
        }
      }
    }
    total += sz;
    if (total > MAX_REQUEST)
      return -2;
    if (n - i < sz + 1)
      return 0;
    if (out)
      buf_add(out, p + i, sz);
    i += sz;
    if (p[i] == '\r') {
      if (n - i < 2)
        return 0;
      if (p[i + 1] != '\n')
        return -1;
      i += 2;
    } else if (p[i] == '\n') {
      i++;
    } else {
      return -1;
    }
  }
}

/* The bytes so far can start a request line: upper-case letters, then a space. */
static int method_plausible(const char *p, size_t n)
{
  size_t i;
  for (i = 0; i < n && i < 20; i++) {
    if (p[i] == ' ')
      return i > 0;
    if (p[i] < 'A' || p[i] > 'Z')
      return 0;
  }
  return i < 20;
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
  struct head *h = &c->h;
  const char *p, *err;
  size_t n, total, used = 0;
  if (!h->done) {
    size_t end;
    if (h->scan == 0)  /* stray CRLFs between requests are allowed */
      while (c->in_off < c->in.len &&
             (c->in.data[c->in_off] == '\r' || c->in.data[c->in_off] == '\n'))
        c->in_off++;
    p = c->in.data + c->in_off;
    n = c->in.len - c->in_off;
    if (h->scan == 0 && !method_plausible(p, n)) {
      /* e.g. a TLS ClientHello: answering at once lets the client fail
         fast with a protocol error instead of waiting for a timeout */
      respond_fail(c, 400, "not an HTTP/1.x request");
      return -1;
    }
    end = head_end(p, n, &h->scan);
    if (end == 0 || end > MAX_HEADER) {
      if (n > MAX_HEADER) {
        respond_fail(c, 431, "request header fields too large");
        return -1;
      }
      return 0;
    }
    memset(h, 0, sizeof *h);
    err = parse_head(h, p, end);
    if (err) {
      respond_fail(c, 400, err);
      return -1;
    }
    h->done = 1;
    h->len = end;
    if (h->clen > MAX_REQUEST) {
      respond_fail(c, 413, "request body too large");
      return -1;
    }
  }
  p = c->in.data + c->in_off;
  n = c->in.len - c->in_off;
  if (h->chunked) {
    int r = chunked_scan(p + h->len, n - h->len, NULL, &used);
    if (r < 0) {
      respond_fail(c, r == -2 ? 413 : 400,
                   r == -2 ? "request body too large" : "malformed chunked body");
      return -1;
    }
    if (r == 0) {
      maybe_continue(c);
      return 0;
    }
    chunked_scan(p + h->len, n - h->len, body, &used);
    rq->body = body->data ? body->data : "";
    rq->body_len = body->len;
  } else {
    if (n - h->len < h->clen) {
      maybe_continue(c);
      return 0;
    }
    used = h->clen;
    rq->body = p + h->len;
    rq->body_len = h->clen;
  }
  total = h->len + used;
  rq->method = p;
  rq->method_len = h->target_off - 1;
  rq->is_get = h->is_get;
  rq->is_post = h->is_post;
  rq->http10 = h->http10;
  rq->target = p + h->target_off;
  rq->target_len = h->target_len;
  rq->scenario = h->has_scen ? p + h->scen_off : NULL;
  rq->scenario_len = h->scen_len;
  rq->auth = h->auth;
  rq->t_ns = c->read_ns;
  c->keepalive = h->keepalive != 0;
  c->http10 = h->http10 != 0;
  c->in_off += total;  /* the bytes stay put until the next read compacts */
  memset(h, 0, sizeof *h);
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
    r = uv_listen((uv_stream_t *)&s->listener, 8192, on_connection);
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
