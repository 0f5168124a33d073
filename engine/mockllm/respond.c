/* respond.c: turns one parsed request into a response, scripted by its
   scenario: routing, latency, status, and the faults that break HTTP on purpose. */
#include "mockllm.h"
#include "reply.h"
#include "apis.h"
#include "prompt_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char html_page[] =
  "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
  "<body><h1>502 Bad Gateway</h1><p>mockllm: scripted HTML answer.</p></body></html>\n";

#define BOM "\xEF\xBB\xBF"      /* UTF-8 byte-order mark, for bom=1 */
#define BOM_LEN 3

/* What echo_key answers when the request carried no credential (OpenAI's words). */
static const char no_key_msg[] =
  "You didn't provide an API key. You need to provide your API key in an Authorization "
  "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
static const char key_msg_head[] = "Incorrect API key provided: ";
static const char key_msg_tail[] =
  ". You can find your API key at https://platform.openai.com/account/api-keys.";

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

/* The HTTP-date of now plus secs, as Date and Retry-After write it. */
static void http_date(char *out, size_t len, long secs)
{
  time_t when = time(NULL) + secs;
  struct tm tm;
  gmtime_r(&when, &tm);
  strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The rate-limit headers each provider sends with every answer: generous
   limits, one request used. */
static void put_provider_headers(struct buf *b, const struct conn *c)
{
  char id[48], reset[32];
  time_t now = time(NULL);
  struct tm tm;
  if (c->rid == 0)
    return;
  request_id(id, sizeof id, c->shape, c->rid);
  if (c->shape == ROUTE_OPENAI) {
    buf_addf(b, "x-request-id: %s\r\nopenai-version: 2020-10-01\r\n"
             "openai-processing-ms: %ld\r\n"
             "x-ratelimit-limit-requests: 10000\r\nx-ratelimit-limit-tokens: 30000000\r\n"
             "x-ratelimit-remaining-requests: 9999\r\nx-ratelimit-remaining-tokens: 29999000\r\n"
             "x-ratelimit-reset-requests: 6ms\r\nx-ratelimit-reset-tokens: 2ms\r\n",
             id, c->proc_ms > 0 ? c->proc_ms : 1);
  } else if (c->shape == ROUTE_ANTHROPIC) {
    now += 1;
    gmtime_r(&now, &tm);
    strftime(reset, sizeof reset, "%Y-%m-%dT%H:%M:%SZ", &tm);  /* RFC 3339 */
    buf_addf(b, "request-id: %s\r\n"
             "anthropic-ratelimit-requests-limit: 4000\r\n"
             "anthropic-ratelimit-requests-remaining: 3999\r\n"
             "anthropic-ratelimit-requests-reset: %s\r\n"
             "anthropic-ratelimit-tokens-limit: 2000000\r\n"
             "anthropic-ratelimit-tokens-remaining: 1999000\r\n"
             "anthropic-ratelimit-tokens-reset: %s\r\n"
             "anthropic-ratelimit-input-tokens-limit: 2000000\r\n"
             "anthropic-ratelimit-input-tokens-remaining: 1999000\r\n"
             "anthropic-ratelimit-input-tokens-reset: %s\r\n"
             "anthropic-ratelimit-output-tokens-limit: 400000\r\n"
             "anthropic-ratelimit-output-tokens-remaining: 399000\r\n"
             "anthropic-ratelimit-output-tokens-reset: %s\r\n",
             id, reset, reset, reset, reset);
  }
}

/* What each provider's front end calls itself. */
static const char *server_name(enum route shape)
{
  switch (shape) {
  case ROUTE_OPENAI:
  case ROUTE_ANTHROPIC: return "cloudflare";
  case ROUTE_GEMINI: return "scaffolding on HTTPServer2";
  default: return "mockllm/" MOCKLLM_VERSION;
  }
}

/* A JSON body's type as the route's API sends it: Google adds the charset. */
static const char *json_ctype(enum route shape)
{
  return shape == ROUTE_GEMINI ? "application/json; charset=UTF-8" : "application/json";
}

#define LEN_NONE (-1)       /* the body ends when the connection does */
#define LEN_CHUNKED (-2)

static void put_head(struct buf *b, const struct conn *c, int status, const char *ctype,
                     long long clen, const struct scenario *sc)
{
  char date[64];
  http_date(date, sizeof date, 0);
  buf_addf(b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nDate: %s\r\nServer: %s\r\n", status,
           reason(status), ctype, date, server_name(c->shape));
  put_provider_headers(b, c);
  if (clen >= 0)
    buf_addf(b, "Content-Length: %lld\r\n", clen);
  else if (clen == LEN_CHUNKED)
    buf_adds(b, "Transfer-Encoding: chunked\r\n");
  if (strncmp(ctype, "text/event-stream", 17) == 0)
    buf_adds(b, "Cache-Control: no-cache\r\n");  /* as the providers send it */
  if (sc == NULL || status < 300) {
    /* Retry-After only means something on a refusal */
  } else if (sc->retry_after >= 0) {
    buf_addf(b, "Retry-After: %ld\r\n", sc->retry_after);
  } else if (sc->retry_after_date >= 0) {
    http_date(date, sizeof date, sc->retry_after_date);
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

static void stream_next(struct conn *c);

static void on_stream_timer(uv_timer_t *t)
{
  stream_next(t->data);
}

static void stream_pause(struct conn *c)
{
  uv_timer_start(&c->timer, on_stream_timer, (uint64_t)c->ev_interval_ms, 0);
}

/* stream_reset waits this long after its last delta before the RST: a reset
   that finds data still unread in the client's socket makes libcurl fail at
   once ("select/poll returned error"), losing the deltas the scenario is
   there to deliver. */
#define RESET_GRACE_MS 100

static void on_reset_timer(uv_timer_t *t)
{
  finish_close(t->data, 1);
}

/* Before the first event: bom='s mark and sse_filler='s empty events, in
   writes of at most FILL_CHUNK bytes, so a billion of them need no memory.
   Returns 0 when there is nothing (left) to send. */
static int stream_preamble(struct conn *c)
{
  size_t elen = c->filler_event ? strlen(c->filler_event) : 0, count = 0, i;
  if (!c->bom && c->filler_left == 0)
    return 0;
  if (c->filler_left > 0)
    count = c->filler_left < FILL_CHUNK / elen ? (size_t)c->filler_left : FILL_CHUNK / elen;
  c->filler_left -= count;
  c->out.len = 0;
  if (c->chunked)
    buf_addf(&c->out, "%zx\r\n", (c->bom ? BOM_LEN : 0) + count * elen);
  if (c->bom)
    buf_add(&c->out, BOM, BOM_LEN);
  c->bom = 0;
  for (i = 0; i < count; i++)
    buf_add(&c->out, c->filler_event, elen);
  if (c->chunked)
    buf_adds(&c->out, "\r\n");
  conn_send(c, c->out.data, c->out.len, stream_next);
  return 1;
}

/* One write per event, each after the previous one is out, so a client
   sees them arrive apart even without stream_interval. */
static void stream_next(struct conn *c)
{
  size_t start, end;
  int last;
  if (c->iev == 0 && stream_preamble(c))
    return;
  if (c->iev == c->nev) {
    if (c->cut_rst)
      uv_timer_start(&c->timer, on_reset_timer, RESET_GRACE_MS, 0);
    else if (c->cut)
      finish_close(c, 0);  /* FIN before the stream's end: a mid-stream drop */
    else
      conn_done(c);
    return;
  }
  start = c->iev ? c->ev_end[c->iev - 1] : 0;
  end = c->ev_end[c->iev++];
  last = c->iev == c->nev;
  c->out.len = 0;  /* the previous write is complete: its buffer is free */
  if (c->chunked)
    buf_addf(&c->out, "%zx\r\n", end - start);
  buf_add(&c->out, c->tail.data + start, end - start);
  if (c->chunked)
    buf_adds(&c->out, last && !c->cut ? "\r\n0\r\n\r\n" : "\r\n");
  conn_send(c, c->out.data, c->out.len,
            !last && c->ev_interval_ms > 0 ? stream_pause : stream_next);
}

static void respond_go(struct conn *c)
{
  const char *p = c->out.data ? c->out.data : "";
  if (c->stream) {
    conn_send(c, p, c->out.len, stream_next);  /* the head first, on its own */
    return;
  }
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
   reply text sits in the body (0 when there is none); or, for a stream, its
   events. */
struct answer {
  int status;
  enum route shape;
  struct buf body;
  size_t text_at;
  int stream;
  const char *ctype;          /* of the stream */
  struct events ev;
  const char *filler_event;   /* sse_filler's empty event, or NULL (no SSE) */
};

/* What respond_start learnt of a provider request before answering it. */
struct call {
  struct json_doc doc;
  int parsed;                 /* 1 parsed, -1 not JSON, 0 not a provider POST */
  int stream;                 /* the client asked for a stream */
  const char *model;
  size_t model_len;
};

static void answer_error(struct answer *a, int status, const char *msg, long retry_after)
{
  a->status = status;
  a->body.len = 0;
  a->text_at = 0;
  reply_error(&a->body, a->shape, status, msg, retry_after);
}

static void answer_refusal(struct answer *a, const struct refusal *f)
{
  a->status = f->status;
  a->body.len = 0;
  a->text_at = 0;
  reply_error_extra(&a->body, a->shape, f->status, f->msg, &f->x);
}

/* The key in the message, inside its JSON string: as JSON writes it, or
   (echo_key=escaped) every ASCII character as \u00XX; other bytes, parts of
   UTF-8 characters, go as they are. */
static void put_key(struct buf *q, const char *key, size_t n, enum echo_key how)
{
  struct buf tmp = {0};
  size_t i;
  if (how == ECHO_ESCAPED) {
    for (i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)key[i];
      if (ch < 0x80)
        buf_addf(q, "\\u%04x", ch);
      else
        buf_addc(q, (char)ch);
    }
    return;
  }
  json_put_str(&tmp, key, n);
  buf_add(q, tmp.data + 1, tmp.len - 2);  /* without its quotes */
  buf_free(&tmp);
}

/* echo_key=: the 401 (or status=) OpenAI sends for a wrong key, quoting the
   credential the request carried, echo_pad filler bytes ('.') after
   "provided: ", so the key can be made to straddle a client's truncation
   point. The only answer that ever holds a credential. */
static void answer_echo_key(struct answer *a, const struct request *rq,
                            const struct scenario *sc)
{
  struct buf q = {0};
  const char *key = rq->cred, *v;
  size_t n = rq->cred_len, vn, i;
  char *decoded = NULL;
  if (n == 0 && query_value(rq->target, rq->target_len, "key", &v, &vn)) {
    decoded = url_decode(v, vn, &n);
    key = decoded;
  }
  if (n == 0) {
    json_put_str(&q, no_key_msg, sizeof no_key_msg - 1);
  } else {
    buf_addc(&q, '"');
    buf_adds(&q, key_msg_head);
    for (i = 0; i < sc->echo_pad; i++)
      buf_addc(&q, '.');
    put_key(&q, key, n, sc->echo_key);
    buf_adds(&q, key_msg_tail);
    buf_addc(&q, '"');
  }
  a->status = sc->status >= 400 ? sc->status : 401;
  a->body.len = 0;
  a->text_at = 0;
  reply_error_quoted(&a->body, a->shape, a->status, q.data, q.len, sc->retry_after);
  buf_free(&q);
  free(decoded);
}

/* A fault that shapes the JSON body (drip, huge, truncate, ...) answers a
   stream request without streaming; these are the ones a stream carries. */
static int streams_with(enum fault f)
{
  return f == FAULT_NONE || f == FAULT_BLOCKED || f == FAULT_NO_TEXT ||
         f == FAULT_STREAM_ERROR || f == FAULT_STREAM_DROP || f == FAULT_STREAM_CUT ||
         f == FAULT_STREAM_RESET;
}

static enum stream_end stream_end_of(enum fault f)
{
  switch (f) {
  case FAULT_STREAM_ERROR: return STREAM_END_ERROR;
  case FAULT_STREAM_DROP:
  case FAULT_STREAM_RESET: return STREAM_END_CUT;
  case FAULT_STREAM_CUT: return STREAM_END_CLEAN;
  default: return STREAM_END_NORMAL;
  }
}

/* The SSE line ending sse_eol= asks for; NULL keeps the provider's own. */
static const char *eol_text(enum sse_eol e)
{
  return e == EOL_LF ? "\n" : e == EOL_CR ? "\r" : e == EOL_CRLF ? "\r\n" : NULL;
}

/* One empty event ("data:" and a blank line) in the stream's line ending. */
static const char *filler_event_for(enum sse_eol e, enum route r)
{
  if (e == EOL_DEFAULT)
    e = r == ROUTE_GEMINI ? EOL_CRLF : EOL_LF;  /* as sse.c frames each provider */
  return e == EOL_CR ? "data:\r\r" : e == EOL_CRLF ? "data:\r\n\r\n" : "data:\n\n";
}

/* sse_eol= and sse_filler=: the SSE framing the scenario asks of a stream's events. */
static void sse_framing(struct answer *a, const struct scenario *sc, enum route r)
{
  if (sc->sse_eol != EOL_DEFAULT)
    events_set_eol(&a->ev, eol_text(sc->sse_eol));
  a->filler_event = filler_event_for(sc->sse_eol, r);
}

/* A streamed answer: the events, in the scenario's framing. */
static void answer_stream(struct answer *a, struct conn *c, const struct request *rq,
                          enum route r, const struct scenario *sc, const struct call *k,
                          const struct prompt *p, const struct buf *text,
                          unsigned long long ctok, enum finish fin)
{
  struct stream_opts o;
  const struct json *so = json_get(k->doc.root, "stream_options");
  o.include_usage = r == ROUTE_OPENAI && json_get(so, "include_usage") &&
                    json_get(so, "include_usage")->type == JSON_TRUE;
  o.json_array = r == ROUTE_GEMINI && !query_has(rq->target, rq->target_len, "alt", "sse");
  o.end = stream_end_of(sc->fault);
  a->stream = 1;
  a->ctype = o.json_array ? json_ctype(r) : r == ROUTE_GEMINI ? "text/event-stream"
                                            : "text/event-stream; charset=utf-8";
  sse_reply(&a->ev, r, p, ++c->srv->next_id, text->data ? text->data : "", text->len,
            ctok, fin, &o);
  if (!o.json_array)  /* a JSON array has no SSE framing */
    sse_framing(a, sc, r);
}

/* Stop sequences, then the token limit (which wins when the text reaches it
   before the stop sequence): the text is cut as the real API would end it. */
static void honour_params(enum route r, const struct json *root, struct prompt *p,
                          struct buf *text, enum finish *fin)
{
  struct params pa;
  const struct json *stop;
  if (*fin != FINISH_STOP)
    return;
  params_read(r, root, &pa);
  stop = params_stop(&pa, text);
  if (params_cut(&pa, text)) {
    *fin = FINISH_LENGTH;
  } else if (stop) {
    p->stop_seq = stop->s;
    p->stop_len = stop->n;
  }
}

/* n (OpenAI) or candidateCount (Gemini) > 1: choices 1.. as p->more, each
   a variant of the default reply, cut by the same parameters. */
static void more_choices(enum route r, const struct json *root, struct prompt *p)
{
  struct params pa;
  int i;
  params_read(r, root, &pa);
  if (pa.n < 2 || r == ROUTE_ANTHROPIC)
    return;
  p->more = xcalloc((size_t)pa.n - 1, sizeof *p->more);
  for (i = 1; i < pa.n; i++) {
    struct choice *c = &p->more[p->nmore++];
    enum finish f = FINISH_STOP;
    const char *stop_seq = p->stop_seq;
    size_t stop_len = p->stop_len;
    p->variant = i;
    answer_default(&c->text, p, root);
    honour_params(r, root, p, &c->text, &f);
    p->stop_seq = stop_seq;  /* the first choice's, which Anthropic alone would name */
    p->stop_len = stop_len;
    c->f = f;
    c->ctok = token_count(c->text.len);
  }
  p->variant = 0;
}

/* The Responses API and embeddings (responses.c, embeddings.c): their body,
   or their events in the scenario's framing. */
static void answer_api(struct answer *a, struct conn *c, enum route r, enum api api,
                       const struct scenario *sc, const struct call *k)
{
  struct api_answer x;
  memset(&x, 0, sizeof x);
  if (api == API_RESPONSES)
    responses_answer(&x, k->doc.root, sc, k->stream && streams_with(sc->fault),
                     stream_end_of(sc->fault), ++c->srv->next_id);
  else
    embeddings_answer(&x, r, k->doc.root, k->model, k->model_len, sc->lenient);
  a->status = x.status;
  buf_free(&a->body);
  a->body = x.body;
  a->text_at = 0;
  if (x.stream) {
    a->stream = 1;
    a->ctype = "text/event-stream; charset=utf-8";
    a->ev = x.ev;
    sse_framing(a, sc, r);
  }
}

static void answer_provider(struct answer *a, struct conn *c, const struct request *rq,
                            enum route r, const struct scenario *sc, struct call *k)
{
  enum api api = api_of(rq->target, rq->target_len);
  struct prompt p;
  struct buf text = {0};
  const char *err;
  char msg[160];
  unsigned long long ctok;
  enum finish fin = sc->finish_length ? FINISH_LENGTH : FINISH_STOP;
  struct refusal f;
  if (!sc->lenient && strict_auth(r, rq, sc->invalid_key, &f)) {
    answer_refusal(a, &f);
    return;
  }
  if (k->parsed < 0) {
    snprintf(msg, sizeof msg, "invalid JSON in request body: %s at byte %zu",
             k->doc.error, k->doc.error_at);
    answer_error(a, 400, msg, -1);
    return;
  }
  if (api == API_AZURE && !sc->lenient && strict_azure(rq, &f)) {
    answer_refusal(a, &f);
    return;
  }
  if (api == API_RESPONSES || api == API_EMBEDDINGS) {
    answer_api(a, c, r, api, sc, k);
    return;
  }
  if (sc->fault == FAULT_BLOCKED)
    fin = FINISH_BLOCKED;
  else if (sc->fault == FAULT_NO_TEXT)
    fin = FINISH_NO_TEXT;
  if (!sc->lenient && strict_body(r, api == API_AZURE, rq, k->doc.root, k->model, k->model_len, &f)) {
    answer_refusal(a, &f);
    return;
  }
  err = prompt_read(r, k->doc.root, &p);
  if (err) {
    answer_error(a, 400, err, -1);
  } else if (sc->context_tokens && token_count(p.all.len) > sc->context_tokens) {
    a->status = 400;  /* context=N: the prompt does not fit */
    a->body.len = 0;
    a->text_at = 0;
    reply_context_window(&a->body, r);
  } else {
    if (r == ROUTE_GEMINI) {
      p.model = k->model;
      p.model_len = k->model_len;
    }
    reply_usage_init(&p, r, sc->cached);
    if (sc->reply)  /* a scripted text wins over tool calls */
      buf_add(&text, sc->reply, sc->reply_len);
    else if (sc->react && react_answer(&text, &p, sc))
      ;  /* a ReAct step, as react= scripts it */
    else if ((sc->fault == FAULT_HUGE || tools_plan(r, k->doc.root, sc, &p) == 0) &&
             !task_answer(&text, &p, k->doc.root))
      answer_default(&text, &p, k->doc.root);
    if (sc->fault != FAULT_HUGE && p.tool == NULL && p.ncalls == 0)  /* a tool's input is whole JSON */
      honour_params(r, k->doc.root, &p, &text, &fin);
    if ((!k->stream || r == ROUTE_OPENAI) && sc->fault == FAULT_NONE && !sc->reply &&
        !sc->finish_length && p.ncalls == 0)  /* Gemini streams one candidate */
      more_choices(r, k->doc.root, &p);
    ctok = p.ncalls ? tools_tokens(&p)
                    : token_count(sc->fault == FAULT_HUGE ? (size_t)sc->size : text.len);
    if (sc->fault == FAULT_HUGE)
      text.len = 0;  /* the filler becomes the text */
    a->status = 200;
    p.usage = sc->usage;
    if (k->stream && streams_with(sc->fault)) {
      answer_stream(a, c, rq, r, sc, k, &p, &text, ctok, fin);
    } else {
      reply_ok(&a->body, r, &p, ++c->srv->next_id, text.data ? text.data : "", text.len,
               ctok, fin, &a->text_at);
    }
  }
  buf_free(&text);
  prompt_free(&p);
}

/* Anthropic's error bodies carry the request id beside the error, as its
   request-id header does: {"type":"error","error":{...},"request_id":"req_..."}. */
static void add_request_id(struct answer *a, const struct conn *c)
{
  char id[48];
  if (a->body.len == 0 || a->body.data[a->body.len - 1] != '}')
    return;
  request_id(id, sizeof id, ROUTE_ANTHROPIC, c->rid);
  a->body.len--;
  buf_addf(&a->body, ",\"request_id\":\"%s\"}", id);
}

/* Hands a stream's events to the connection, behind a head without length. */
static void build_stream(struct conn *c, struct answer *a, const struct scenario *sc)
{
  c->stream = 1;
  c->chunked = !c->http10;  /* HTTP/1.0 has no chunks: the close ends it */
  if (!c->chunked)
    c->keepalive = 0;
  put_head(&c->out, c, 200, a->ctype, c->chunked ? LEN_CHUNKED : LEN_NONE, sc);
  c->tail = a->ev.data;
  c->ev_end = a->ev.end;
  c->nev = a->ev.n;
  c->iev = 0;
  memset(&a->ev, 0, sizeof a->ev);
  c->ev_interval_ms = sc->stream_interval_ms;
  c->cut = sc->fault == FAULT_STREAM_DROP || sc->fault == FAULT_STREAM_RESET;
  c->cut_rst = sc->fault == FAULT_STREAM_RESET;
  c->bom = sc->bom != 0;
  c->filler_left = a->filler_event ? sc->sse_filler : 0;
  c->filler_event = a->filler_event;
}

/* bom=1: the JSON body starts with a byte-order mark (an empty one stays empty). */
static void prepend_bom(struct answer *a)
{
  struct buf b = {0};
  if (a->body.len == 0)
    return;
  buf_add(&b, BOM, BOM_LEN);
  buf_add(&b, a->body.data, a->body.len);
  buf_free(&a->body);
  a->body = b;
  if (a->text_at)
    a->text_at += BOM_LEN;
}

/* fault=html: a web server's page, with status= when one is given (a wrong
   base_url reaching a web server gets its 404 page). */
static void build_html(struct conn *c, struct answer *a, const struct scenario *sc)
{
  struct buf page = {0};
  a->status = sc->status ? sc->status : 200;
  if (a->status == 200) {
    buf_add(&page, html_page, sizeof html_page - 1);
  } else {
    buf_addf(&page, "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
             "<body><h1>%d %s</h1><p>mockllm: scripted HTML answer.</p></body></html>\n",
             a->status, reason(a->status), a->status, reason(a->status));
  }
  put_head(&c->out, c, a->status, "text/html; charset=utf-8", (long long)page.len, sc);
  buf_add(&c->out, page.data, page.len);
  buf_free(&page);
}

/* Fills c->out with what respond_go will send for fault sc->fault. */
static void build(struct conn *c, struct answer *a, const struct scenario *sc)
{
  struct buf *out = &c->out, head = {0};
  const char *body;
  size_t blen;
  c->fault = sc->fault;
  if (a->stream) {
    build_stream(c, a, sc);
    return;
  }
  if (sc->fault == FAULT_HTML) {
    build_html(c, a, sc);
    return;
  }
  if (sc->fault == FAULT_ERROR_BODY) {
    answer_error(a, sc->status >= 400 ? sc->status : 500, "mock: error body with HTTP 200",
                 sc->retry_after);
    a->status = 200;
  }
  if (sc->bom)
    prepend_bom(a);
  body = a->body.data ? a->body.data : "";
  blen = a->body.len;
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
  case FAULT_HUGE: {
    unsigned long long size = sc->size > blen ? sc->size : blen;
    size_t at = a->text_at ? a->text_at : blen;
    put_head(out, c, 200, json_ctype(c->shape), (long long)size, sc);
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
      put_head(out, c, a->status, json_ctype(c->shape), LEN_NONE, sc);
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
  put_head(&head, c, a->status, json_ctype(c->shape), (long long)blen, sc);
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

/* /__stats, /__reset and /__log: never delayed, scripted, counted or logged. */
static void respond_internal(struct conn *c, enum route r)
{
  struct buf body = {0};
  c->shape = ROUTE_OTHER;
  c->rid = 0;
  if (r == ROUTE_STATS) {
    stats_json(c->srv, &body);
  } else if (r == ROUTE_LOG) {
    log_json(&c->srv->log, &body);
  } else {
    stats_reset(c->srv);
    log_clear(&c->srv->log);
    buf_adds(&body, "{\"ok\":true}");
  }
  put_head(&c->out, c, 200, "application/json", (long long)body.len, NULL);
  buf_add(&c->out, body.data, body.len);
  buf_free(&body);
  c->fault = FAULT_NONE;
  conn_send(c, c->out.data, c->out.len, conn_done);
}

/* Reads what the log and the answer need from a provider request's body. */
static void call_read(struct call *k, const struct request *rq, enum route r, int gstream)
{
  const struct json *v;
  if (r != ROUTE_OPENAI && r != ROUTE_ANTHROPIC && r != ROUTE_GEMINI)
    return;
  if (!rq->is_post)
    return;
  k->parsed = json_parse(&k->doc, rq->body, rq->body_len) == 0 ? 1 : -1;
  if (r == ROUTE_GEMINI) {
    k->stream = gstream;  /* Gemini streams by URL, not by a body field */
    return;
  }
  if (k->parsed < 0 || k->doc.root->type != JSON_OBJECT)
    return;
  v = json_get(k->doc.root, "stream");
  k->stream = v && v->type == JSON_TRUE;
  v = json_get(k->doc.root, "model");
  if (v && v->type == JSON_STRING) {
    k->model = v->s;
    k->model_len = v->n;
  }
}

static void log_request(struct server *s, const struct request *rq, enum route r, int status,
                        const struct scenario *sc, const struct call *k, unsigned long long rid)
{
  struct logent e;
  memset(&e, 0, sizeof e);
  e.t_ns = rq->t_ns;
  e.route = r;
  e.status = status;
  e.stream = k->stream;
  e.auth = rq->auth;
  if (e.auth == NULL && query_has(rq->target, rq->target_len, "key", NULL))
    e.auth = "?key";  /* a key in the URL: its name only, like the headers */
  e.path = log_dup(rq->target, path_len(rq->target, rq->target_len));
  e.key = sc->key ? log_dup(sc->key, sc->keylen) : NULL;
  e.model = log_dup(k->model, k->model_len);
  e.rid = rid;
  log_add(&s->log, &e);
}

void respond_start(struct conn *c, const struct request *rq)
{
  struct server *s = c->srv;
  struct scenario sc;
  struct answer a;
  struct call k;
  int gstream = 0;
  char err[160];
  enum route r;
  memset(&a, 0, sizeof a);
  memset(&k, 0, sizeof k);
  r = route_of(rq->target, rq->target_len, &a.shape, &k.model, &k.model_len, &gstream);
  if (r >= ROUTE_COUNTED) {
    respond_internal(c, r);
    return;
  }
  stats_request(s, r);
  c->counted = 1;
  c->shape = a.shape;
  c->rid = r == ROUTE_OPENAI || r == ROUTE_ANTHROPIC || r == ROUTE_GEMINI ? ++s->next_rid : 0;
  a.status = 200;
  call_read(&k, rq, r, gstream);
  scenario_init(&sc, s->latency_ms);
  sc.lenient = s->lenient;
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
        sc.error = ERROR_NONE;
        sc.echo_key = ECHO_NONE;
        sc.invalid_key = 0;
        sc.retry_after = sc.retry_after_date = -1;
      } else if (sc.status == 0 && sc.fault == FAULT_NONE && sc.error == ERROR_NONE &&
                 sc.echo_key == ECHO_NONE && !sc.invalid_key) {
        sc.status = 500;
      }
    }
    if (r == ROUTE_OTHER) {
      a.status = 404;
      reply_no_route(&a.body, a.shape, rq->method, rq->method_len, rq->target,
                     path_len(rq->target, rq->target_len));
    } else if (r == ROUTE_HEALTH ? !rq->is_get : !rq->is_post) {
      answer_error(&a, 405, "mock: method not allowed", -1);
    } else if (sc.echo_key != ECHO_NONE && r != ROUTE_HEALTH) {
      answer_echo_key(&a, rq, &sc);
    } else if (sc.error == ERROR_CONTEXT_WINDOW && r != ROUTE_HEALTH) {
      a.status = 400;
      reply_context_window(&a.body, r);
    } else if (sc.error == ERROR_QUOTA && r != ROUTE_HEALTH) {
      a.status = reply_quota(&a.body, r);
    } else if (sc.status != 0 && sc.status != 200) {
      char msg[64];
      snprintf(msg, sizeof msg, "mock: scripted HTTP %d", sc.status);
      answer_error(&a, sc.status, msg, sc.retry_after);
    } else if (r == ROUTE_HEALTH) {
      buf_adds(&a.body, "{\"status\":\"ok\"}");
    } else {
      answer_provider(&a, c, rq, r, &sc, &k);
    }
  }
  if (s->verbose)
    fprintf(stderr, "mockllm: %.*s %.*s -> %d%s%s\n", (int)rq->method_len, rq->method,
            (int)path_len(rq->target, rq->target_len), rq->target, a.status,
            a.stream ? " (stream)" : "", sc.fault ? " (fault)" : "");
  c->proc_ms = sc.latency_ms;
  if (a.shape == ROUTE_ANTHROPIC && c->rid && a.status >= 400)
    add_request_id(&a, c);
  build(c, &a, &sc);
  log_request(s, rq, r, sc.fault == FAULT_DROP || sc.fault == FAULT_HANG ? 0 : a.status, &sc, &k,
              c->rid);
  c->log_seq = s->log.seq;
  buf_free(&a.body);
  events_free(&a.ev);
  if (k.parsed)
    json_free(&k.doc);
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
  struct logent e;
  c->busy = 1;
  c->keepalive = 0;
  c->linger = 1;
  c->shape = ROUTE_OTHER;
  c->rid = 0;
  stats_request(c->srv, ROUTE_OTHER);
  c->counted = 1;
  memset(&e, 0, sizeof e);
  e.t_ns = c->read_ns;
  e.route = ROUTE_OTHER;
  e.status = status;
  log_add(&c->srv->log, &e);
  c->log_seq = c->srv->log.seq;
  reply_error(&body, ROUTE_OPENAI, status, msg, -1);
  put_head(&c->out, c, status, "application/json", (long long)body.len, NULL);
  buf_add(&c->out, body.data, body.len);
  buf_free(&body);
  c->fault = FAULT_NONE;
  conn_send(c, c->out.data, c->out.len, conn_done);
}
