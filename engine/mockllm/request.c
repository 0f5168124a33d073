/* request.c: HTTP/1.1 request framing, with no I/O: from the bytes a
   connection has buffered, a request head and its body (Content-Length or
   chunked), or the status and message of the error that ends the connection.
   Kept apart from http.c so the fuzzer can drive it without sockets. */
#include "mockllm.h"

#include <string.h>
#include <strings.h>

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

/* The static name of a header that carries credentials, or NULL. */
static const char *auth_header(const char *name, size_t n)
{
  static const char *const names[] = {"authorization", "x-api-key", "x-goog-api-key", "api-key"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (name_is(name, n, names[i]))
      return names[i];
  return NULL;
}

/* Keeps where the first non-empty credential lies, for echo_key: the header
   value v[0..ve), without an Authorization's "Bearer " scheme. */
static void note_credential(struct head *h, const char *p, const char *v, const char *ve,
                            int authorization)
{
  if (h->cred_len > 0)
    return;
  if (authorization && ve - v > 7 && strncasecmp(v, "bearer ", 7) == 0)
    for (v += 7; v < ve && (*v == ' ' || *v == '\t'); v++) {}
  else if (authorization && ve - v == 6 && strncasecmp(v, "bearer", 6) == 0)
    v = ve;  /* "Bearer" and no token (its trailing blank trimmed): no credential */
  h->cred_off = (size_t)(v - p);
  h->cred_len = (size_t)(ve - v);
}

/* Fills h from the head p[0..len). Returns NULL or a message for a 400. */
static const char *parse_head(struct head *h, const char *p, size_t len)
{
  const char *end = p + len, *line = p, *eol, *lend, *sp1, *sp2, *name;
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
    } else if ((name = auth_header(line, nlen)) != NULL) {
      /* the log keeps which header came, never its value */
      if (h->auth == NULL)
        h->auth = name;
      note_credential(h, p, v, ve, name[0] == 'a' && name[1] == 'u');
    } else if (name_is(line, nlen, "anthropic-version")) {
      h->anthropic_version = ve > v;
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

/* A chunk-size line with its extensions; longer is refused. */
#define MAX_CHUNK_LINE 4096

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
      return n - i > MAX_CHUNK_LINE ? -1 : 0;
    lend = (size_t)(nl - p);
    /* the same bound when the whole line came in one read: the framing must not
       depend on how TCP cut the bytes (fuzz finding M1) */
    if (lend - i > MAX_CHUNK_LINE)
      return -1;
    for (j = i; j < lend && hexval((unsigned char)p[j]) >= 0; j++) {
      if (++digits > 15)
        return -1;
      sz = sz * 16 + (unsigned)hexval((unsigned char)p[j]);
    }
    if (digits == 0 || (j < lend && p[j] != ';' && p[j] != '\r' && p[j] != ' ' && p[j] != '\t'))
      return -1;
    i = lend + 1;
    if (sz == 0) {
      size_t trailers = i;
      for (;;) {  /* optional trailers, then the blank line */
        size_t ll;
        nl = memchr(p + i, '\n', n - i);
        if (nl == NULL)
          return n - trailers > MAX_HEADER ? -1 : 0;
        ll = (size_t)(nl - (p + i));
        i = (size_t)(nl - p) + 1;
        /* all the trailers together, like a head: endless short trailer lines
           grew the input buffer without bound (fuzz finding M2) */
        if (i - trailers > MAX_HEADER)
          return -1;
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

int request_frame(struct head *h, const char *p, size_t n, struct request *rq,
                  struct buf *body, size_t *used, struct frame_error *fe)
{
  const char *err;
  size_t skip = 0, blen = 0;
  *used = 0;
  if (!h->done) {
    size_t end;
    if (h->scan == 0)  /* stray CRLFs between requests are allowed */
      while (skip < n && (p[skip] == '\r' || p[skip] == '\n'))
        skip++;
    *used = skip;
    p += skip;
    n -= skip;
    if (h->scan == 0 && !method_plausible(p, n)) {
      /* e.g. a TLS ClientHello: answering at once lets the client fail
         fast with a protocol error instead of waiting for a timeout */
      fe->status = 400;
      fe->msg = "not an HTTP/1.x request";
      return -1;
    }
    end = head_end(p, n, &h->scan);
    if (end == 0 || end > MAX_HEADER) {
      if (n > MAX_HEADER) {
        fe->status = 431;
        fe->msg = "request header fields too large";
        return -1;
      }
      return 0;
    }
    memset(h, 0, sizeof *h);
    err = parse_head(h, p, end);
    if (err) {
      fe->status = 400;
      fe->msg = err;
      return -1;
    }
    h->done = 1;
    h->len = end;
    if (h->clen > MAX_REQUEST) {
      fe->status = 413;
      fe->msg = "request body too large";
      return -1;
    }
  }
  if (h->chunked) {
    int r = chunked_scan(p + h->len, n - h->len, NULL, &blen);
    if (r < 0) {
      fe->status = r == -2 ? 413 : 400;
      fe->msg = r == -2 ? "request body too large" : "malformed chunked body";
      return -1;
    }
    if (r == 0)
      return 0;
    chunked_scan(p + h->len, n - h->len, body, &blen);
    rq->body = body->data ? body->data : "";
    rq->body_len = body->len;
  } else {
    if (n - h->len < h->clen)
      return 0;
    blen = h->clen;
    rq->body = p + h->len;
    rq->body_len = h->clen;
  }
  rq->method = p;
  rq->method_len = h->target_off - 1;
  rq->is_get = h->is_get;
  rq->is_post = h->is_post;
  rq->http10 = h->http10;
  rq->keepalive = h->keepalive;
  rq->target = p + h->target_off;
  rq->target_len = h->target_len;
  rq->scenario = h->has_scen ? p + h->scen_off : NULL;
  rq->scenario_len = h->scen_len;
  rq->auth = h->auth;
  rq->cred = p + h->cred_off;
  rq->cred_len = h->cred_len;
  rq->anthropic_version = h->anthropic_version;
  rq->t_ns = 0;
  *used = skip + h->len + blen;
  memset(h, 0, sizeof *h);
  return 1;
}
