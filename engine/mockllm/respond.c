/* respond.c: turns one parsed request into a response, scripted by its
   scenario: routing, latency, status, and the faults that break HTTP on purpose. */
#include "mockllm.h"
#include "reply.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char html_page[] =
  "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
  "<body><h1>502 Bad Gateway</h1><p>mockllm: scripted HTML answer.</p></body></html>\n";

static const char *reason(int status)
{
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 529: return "Overloaded";
  default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

/* Route from the path; *shape is the error format for it, which for unknown
   paths follows the API prefix so a misrouted client can still parse it. */
static enum route route_of(const char *t, size_t n, enum route *shape,
                           const char **model, size_t *mlen)
{
  static const char gen[] = ":generateContent";
  const char *q = memchr(t, '?', n), *m;
  size_t k = sizeof gen - 1;
  if (q)
    n = (size_t)(q - t);
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(t, lit, n) == 0)
  *shape = ROUTE_OPENAI;
  if (IS("/v1/chat/completions") || IS("/chat/completions"))
    return *shape = ROUTE_OPENAI;
  if (IS("/v1/messages"))
    return *shape = ROUTE_ANTHROPIC;
  if (IS("/health"))
    return ROUTE_HEALTH;
  if (IS("/__stats"))
    return ROUTE_STATS;
  if (IS("/__reset"))
    return ROUTE_RESET;
#undef IS
  if (n > 7 && memcmp(t, "/v1beta", 7) == 0)
    *shape = ROUTE_GEMINI;
  if (n > 8 && memcmp(t, "/v1beta/", 8) == 0)
    m = t + 8;
  else if (n > 4 && memcmp(t, "/v1/", 4) == 0)
    m = t + 4;
  else
    return ROUTE_OTHER;
  if ((size_t)(t + n - m) > 7 + k && memcmp(m, "models/", 7) == 0 &&
      memcmp(t + n - k, gen, k) == 0) {
    *model = m + 7;
    *mlen = (size_t)(t + n - k - *model);
    return *shape = ROUTE_GEMINI;
  }
  return ROUTE_OTHER;
}

static void put_head(struct buf *b, const struct conn *c, int status, const char *ctype,
                     long long clen, const struct scenario *sc)
{
  buf_addf(b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status), ctype);
  if (clen >= 0)
    buf_addf(b, "Content-Length: %lld\r\n", clen);
  if (sc == NULL || status < 300) {
    /* Retry-After only means something on a refusal */
  } else if (sc->retry_after >= 0) {
    buf_addf(b, "Retry-After: %ld\r\n", sc->retry_after);
  } else if (sc->retry_after_date >= 0) {
    char date[64];
    time_t when = time(NULL) + sc->retry_after_date;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    buf_addf(b, "Retry-After: %s\r\n", date);
  }
  if (!c->keepalive)
    buf_adds(b, "Connection: close\r\n");
  else if (c->http10)
    buf_adds(b, "Connection: keep-alive\r\n");
  buf_adds(b, "\r\n");
}

static void finish_close(struct conn *c, int rst)
{
  if (c->counted) {
    c->counted = 0;
    stats_finish(c->srv, 0);  /* the scripted fault was carried out */
  }
  conn_close(c, rst);
}

static void after_rst(struct conn *c) { finish_close(c, 1); }
static void after_fin(struct conn *c) { finish_close(c, 0); }

static void huge_next(struct conn *c)
{
  if (c->fill_left > 0) {
    size_t n = c->fill_left < FILL_CHUNK ? (size_t)c->fill_left : FILL_CHUNK;
    c->fill_left -= n;
    conn_send(c, c->srv->filler, n, huge_next);  /* next chunk when this one is out */
  } else if (!c->tail_sent) {
    c->tail_sent = 1;
    conn_send(c, c->tail.data ? c->tail.data : "", c->tail.len, conn_done);
  } else {
    conn_done(c);
  }
}

static void drip_next(struct conn *c);

static void on_drip(uv_timer_t *t)
{
  drip_next(t->data);
}

static void drip_sent(struct conn *c)
{
  if (c->out_off < c->out.len || c->endless)
    uv_timer_start(&c->timer, on_drip, (uint64_t)c->interval_ms, 0);
  else
    conn_done(c);
}

static void drip_next(struct conn *c)
{
  size_t left = c->out.len - c->out_off, n = c->drip_bytes;
  if (left > 0) {
    const char *p = c->out.data + c->out_off;
    if (n > left)
      n = left;
    c->out_off += n;
    conn_send(c, p, n, drip_sent);
  } else if (c->endless) {
    conn_send(c, c->srv->filler, n, drip_sent);
  } else {
    conn_done(c);
  }
}

static void respond_go(struct conn *c)
{
  const char *p = c->out.data ? c->out.data : "";
  switch (c->fault) {
  case FAULT_HANG:
    return;  /* until the client gives up */
  case FAULT_DROP:
    finish_close(c, 0);
    return;
  case FAULT_DRIP:
    drip_next(c);
    return;
  case FAULT_RESET_HEADERS:
  case FAULT_RESET_BODY:
    conn_send(c, p, c->out.len, after_rst);
    return;
  case FAULT_TRUNCATE:
    conn_send(c, p, c->out.len, after_fin);
    return;
  case FAULT_HUGE:
    conn_send(c, p, c->out.len, huge_next);
    return;
  default:
    conn_send(c, p, c->out.len, conn_done);
  }
}

static void on_latency(uv_timer_t *t)
{
  respond_go(t->data);
}

/* The response as it would be without faults: status, body, and where the
   reply text sits in the body (0 when there is none). */
struct answer {
  int status;
  enum route shape;
  struct buf body;
  size_t text_at;
};

static void answer_error(struct answer *a, int status, const char *msg, long retry_after)
{
  a->status = status;
  a->body.len = 0;
  a->text_at = 0;
  reply_error(&a->body, a->shape, status, msg, retry_after);
}

static void answer_provider(struct answer *a, struct conn *c, const struct request *rq,
                            enum route r, const struct scenario *sc,
                            const char *model, size_t mlen)
{
  struct json_doc doc;
  struct prompt p;
  struct buf text = {0};
  const char *err;
  char msg[160];
  unsigned long long ctok;
  if (json_parse(&doc, rq->body, rq->body_len) != 0) {
    snprintf(msg, sizeof msg, "invalid JSON in request body: %s at byte %zu",
             doc.error, doc.error_at);
    json_free(&doc);
    answer_error(a, 400, msg, -1);
    return;
  }
  err = prompt_read(r, doc.root, &p);
  if (err) {
    answer_error(a, 400, err, -1);
  } else {
    if (r == ROUTE_GEMINI) {
      p.model = model;
      p.model_len = mlen;
    }
    if (sc->reply)
      buf_add(&text, sc->reply, sc->reply_len);
    else
      answer_default(&text, &p, doc.root);
    ctok = token_count(sc->fault == FAULT_HUGE ? (size_t)sc->size : text.len);
    if (sc->fault == FAULT_HUGE)
      text.len = 0;  /* the filler becomes the text */
    a->status = 200;
    reply_ok(&a->body, r, &p, ++c->srv->next_id, text.data ? text.data : "", text.len,
             ctok, &a->text_at);
  }
  buf_free(&text);
  prompt_free(&p);
  json_free(&doc);
}

/* Fills c->out with what respond_go will send for fault sc->fault. */
static void build(struct conn *c, struct answer *a, const struct scenario *sc)
{
  struct buf *out = &c->out, head = {0};
  const char *body = a->body.data ? a->body.data : "";
  size_t blen = a->body.len;
  c->fault = sc->fault;
  switch (sc->fault) {
  case FAULT_MALFORMED:
    blen = blen > 1 ? blen / 2 : 0;
    if (blen == 0)
      body = "{", blen = 1;
    a->status = 200;
    break;
  case FAULT_EMPTY:
    blen = 0;
    a->status = 200;
    break;
  case FAULT_HTML:
    put_head(out, c, 200, "text/html; charset=utf-8", (long long)(sizeof html_page - 1), sc);
    buf_add(out, html_page, sizeof html_page - 1);
    return;
  case FAULT_ERROR_BODY:
    answer_error(a, sc->status >= 400 ? sc->status : 500, "mock: error body with HTTP 200",
                 sc->retry_after);
    body = a->body.data;
    blen = a->body.len;
    a->status = 200;
    break;
  case FAULT_HUGE: {
    unsigned long long size = sc->size > blen ? sc->size : blen;
    size_t at = a->text_at ? a->text_at : blen;
    put_head(out, c, 200, "application/json", (long long)size, sc);
    buf_add(out, body, at);
    buf_add(&c->tail, body + at, blen - at);
    c->fill_left = size - blen;
    c->tail_sent = 0;
    return;
  }
  case FAULT_DRIP:
    c->interval_ms = sc->interval_ms;
    c->drip_bytes = (size_t)sc->drip_bytes;
    c->endless = sc->endless;
    c->out_off = 0;
    if (c->endless) {
      c->keepalive = 0;  /* the body ends only when the connection does */
      put_head(out, c, a->status, "application/json", -1, sc);
      buf_add(out, body, blen);
      return;
    }
    break;
  case FAULT_DROP:
  case FAULT_HANG:
    return;
  default:
    break;
  }
  put_head(&head, c, a->status, "application/json", (long long)blen, sc);
  if (sc->fault == FAULT_RESET_HEADERS) {
    buf_add(out, head.data, head.len / 2);
  } else {
    buf_add(out, head.data, head.len);
    if (sc->fault == FAULT_RESET_BODY || sc->fault == FAULT_TRUNCATE)
      blen /= 2;
    buf_add(out, body, blen);
  }
  buf_free(&head);
}

/* /__stats and /__reset: never delayed, scripted, or counted. */
static void respond_internal(struct conn *c, enum route r)
{
  struct buf body = {0};
  if (r == ROUTE_STATS) {
    stats_json(c->srv, &body);
  } else {
    stats_reset(c->srv);
    buf_adds(&body, "{\"ok\":true}");
  }
  put_head(&c->out, c, 200, "application/json", (long long)body.len, NULL);
  buf_add(&c->out, body.data, body.len);
  buf_free(&body);
  c->fault = FAULT_NONE;
  conn_send(c, c->out.data, c->out.len, conn_done);
}

void respond_start(struct conn *c, const struct request *rq)
{
  struct server *s = c->srv;
  struct scenario sc;
  struct answer a;
  const char *model = NULL;
  size_t mlen = 0;
  char err[160];
  enum route r = route_of(rq->target, rq->target_len, &a.shape, &model, &mlen);
  if (r == ROUTE_STATS || r == ROUTE_RESET) {
    respond_internal(c, r);
    return;
  }
  stats_request(s, r);
  c->counted = 1;
  memset(&a.body, 0, sizeof a.body);
  a.text_at = 0;
  a.status = 200;
  scenario_init(&sc, s->latency_ms);
  if (s->default_scenario)
    scenario_parse(&sc, s->default_scenario, strlen(s->default_scenario), err, sizeof err);
  if (rq->scenario && scenario_parse(&sc, rq->scenario, rq->scenario_len, err, sizeof err) != 0) {
    scenario_free(&sc);
    scenario_init(&sc, 0);
    answer_error(&a, 400, err, -1);
  } else {
    if (sc.fail_first >= 0) {
      unsigned long hits = failtab_hit(&s->fails, sc.key ? sc.key : "", sc.keylen);
      if (hits > (unsigned long)sc.fail_first) {
        sc.fault = FAULT_NONE;  /* past the failures: a plain success */
        sc.status = 0;
        sc.retry_after = sc.retry_after_date = -1;
      } else if (sc.status == 0 && sc.fault == FAULT_NONE) {
        sc.status = 500;
      }
    }
    if (r == ROUTE_OTHER) {
      char msg[160];
      snprintf(msg, sizeof msg, "mock: no route for %.*s",
               (int)(rq->target_len > 100 ? 100 : rq->target_len), rq->target);
      answer_error(&a, 404, msg, -1);
    } else if (r == ROUTE_HEALTH ? !rq->is_get : !rq->is_post) {
      answer_error(&a, 405, "mock: method not allowed", -1);
    } else if (sc.status != 0 && sc.status != 200) {
      char msg[64];
      snprintf(msg, sizeof msg, "mock: scripted HTTP %d", sc.status);
      answer_error(&a, sc.status, msg, sc.retry_after);
    } else if (r == ROUTE_HEALTH) {
      buf_adds(&a.body, "{\"status\":\"ok\"}");
    } else {
      answer_provider(&a, c, rq, r, &sc, model, mlen);
    }
  }
  if (s->verbose)
    fprintf(stderr, "mockllm: %s %.*s -> %d%s\n", rq->is_post ? "POST" : rq->is_get ? "GET" : "?",
            (int)rq->target_len, rq->target, a.status, sc.fault ? " (fault)" : "");
  build(c, &a, &sc);
  buf_free(&a.body);
  if (sc.fault != FAULT_HANG) {  /* a hang waits for the client, not a timer */
    if (sc.latency_ms > 0)
      uv_timer_start(&c->timer, on_latency, (uint64_t)sc.latency_ms, 0);
    else
      respond_go(c);
  }
  scenario_free(&sc);
}

void respond_fail(struct conn *c, int status, const char *msg)
{
  struct buf body = {0};
  c->busy = 1;
  c->keepalive = 0;
  c->linger = 1;
  stats_request(c->srv, ROUTE_OTHER);
  c->counted = 1;
  reply_error(&body, ROUTE_OPENAI, status, msg, -1);
  put_head(&c->out, c, status, "application/json", (long long)body.len, NULL);
  buf_add(&c->out, body.data, body.len);
  buf_free(&body);
  c->fault = FAULT_NONE;
  conn_send(c, c->out.data, c->out.len, conn_done);
}
