/* sse.c: streamed answers as each provider sends them, one event per entry
   of a struct events. The text goes out in a handful of deltas cut between
   words, so their concatenation is exactly the non-streamed reply. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIECES 6              /* deltas a reply is cut into, at most */
#define TEXT_DELTAS_BEFORE_FAULT 2
#define TEXT_DELTAS_BEFORE_CLEAN_CUT 1

void events_free(struct events *ev)
{
  buf_free(&ev->data);
  free(ev->end);
  memset(ev, 0, sizeof *ev);
}

void events_set_eol(struct events *ev, const char *eol)
{
  struct buf out = {0};
  size_t i, e = 0, elen = strlen(eol);
  const char *d = ev->data.data;
  /* Every CR LF or lone LF in an event is framing: JSON escapes its own. */
  for (i = 0; i < ev->data.len; i++) {
    while (e < ev->n && ev->end[e] == i)
      ev->end[e++] = out.len;
    if (d[i] == '\r' && i + 1 < ev->data.len && d[i + 1] == '\n')
      continue;  /* the LF that follows writes the ending */
    if (d[i] == '\n')
      buf_add(&out, eol, elen);
    else
      buf_addc(&out, d[i]);
  }
  while (e < ev->n)
    ev->end[e++] = out.len;
  buf_free(&ev->data);
  ev->data = out;
}

void events_mark(struct events *ev)
{
  if (ev->n == ev->cap) {
    size_t cap = ev->cap ? ev->cap * 2 : 16;
    size_t *end = xmalloc(cap * sizeof *end);
    if (ev->n)
      memcpy(end, ev->end, ev->n * sizeof *end);
    free(ev->end);
    ev->end = end;
    ev->cap = cap;
  }
  ev->end[ev->n++] = ev->data.len;
}

/* End of the piece of text[0..n) that starts at `at`: the first word break
   at least `target` bytes on, else (a long run without one) the nearest
   UTF-8 character boundary, so no delta splits a character. */
static size_t piece_end(const char *t, size_t n, size_t at, size_t target)
{
  size_t e = at + target, i, limit;
  if (e >= n)
    return n;
  limit = e + target < n ? e + target : n;
  for (i = e; i < limit; i++)
    if (t[i - 1] == ' ' || t[i - 1] == '\n')
      return i;
  while (e < n && ((unsigned char)t[e] & 0xC0) == 0x80)
    e++;
  return e;
}

void pieces_init(struct pieces *ps, const char *text, size_t n, const struct stream_opts *o)
{
  ps->text = text;
  ps->n = n;
  ps->at = 0;
  ps->target = n / PIECES + 1;
  ps->sent = 0;
  ps->o = o;
}

int pieces_next(struct pieces *ps, const char **p, size_t *len)
{
  size_t e;
  if (ps->at >= ps->n)
    return 0;
  if (ps->o->end != STREAM_END_NORMAL &&
      ps->sent == (ps->o->end == STREAM_END_CLEAN ? TEXT_DELTAS_BEFORE_CLEAN_CUT
                                                   : TEXT_DELTAS_BEFORE_FAULT))
    return 0;
  e = piece_end(ps->text, ps->n, ps->at, ps->target);
  *p = ps->text + ps->at;
  *len = e - ps->at;
  ps->at = e;
  ps->sent++;
  return 1;
}

static int pieces_last(const struct pieces *ps)
{
  return ps->at >= ps->n;
}

/* ---- OpenAI: data: CHUNK, ..., data: [DONE] */

static void openai_begin(struct buf *b, unsigned long long id, long long created,
                         const struct prompt *p)
{
  buf_addf(b, "data: {\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion.chunk\","
           "\"created\":%lld,\"model\":", id, created);
  reply_put_model(b, p);
  buf_adds(b, ",\"service_tier\":\"default\",\"system_fingerprint\":\"" OPENAI_FINGERPRINT
           "\",\"choices\":[");
}

/* With include_usage every chunk carries "usage":null until the last. */
static void openai_end(struct events *ev, const struct stream_opts *o)
{
  buf_adds(&ev->data, o->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n");
  events_mark(ev);
}

/* Choice index's role chunk and its text deltas (as o lets them out). */
static void openai_deltas(struct events *ev, const struct prompt *p, unsigned long long id,
                          long long created, int index, const char *text, size_t n,
                          const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  struct pieces ps;
  const char *s;
  size_t len;
  openai_begin(b, id, created, p);
  buf_addf(b, "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
           "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}", index);
  openai_end(ev, o);
  pieces_init(&ps, text, n, o);
  while (pieces_next(&ps, &s, &len)) {
    openai_begin(b, id, created, p);
    buf_addf(b, "{\"index\":%d,\"delta\":{\"content\":", index);
    json_put_str(b, s, len);
    buf_adds(b, "},\"logprobs\":null,\"finish_reason\":null}");
    openai_end(ev, o);
  }
}

/* Choice index's last chunk: an empty delta and its finish reason. */
static void openai_finish(struct events *ev, const struct prompt *p, unsigned long long id,
                          long long created, int index, const char *reason,
                          const struct stream_opts *o)
{
  openai_begin(&ev->data, id, created, p);
  buf_addf(&ev->data, "{\"index\":%d,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}",
           index, reason);
  openai_end(ev, o);
}

/* The usage chunk (with include_usage), then [DONE]. */
static void openai_done(struct events *ev, const struct prompt *p, unsigned long long id,
                        long long created, unsigned long long ctok, const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  if (o->include_usage) {
    openai_begin(b, id, created, p);
    buf_adds(b, "],");
    reply_openai_usage(b, p, token_count(p->all.len), ctok);
    buf_adds(b, "}\n\n");
    events_mark(ev);
  }
  buf_adds(b, "data: [DONE]\n\n");
  events_mark(ev);
}

/* Choices 1.. of a streamed answer with n > 1, each as the first is sent
   (whole: a scripted fault cuts the first). Returns their output tokens. */
static unsigned long long openai_more(struct events *ev, const struct prompt *p,
                                      unsigned long long id, long long created,
                                      const struct stream_opts *o)
{
  struct stream_opts whole = *o;
  unsigned long long toks = 0;
  int i;
  whole.end = STREAM_END_NORMAL;
  for (i = 0; i < p->nmore; i++) {
    const struct choice *c = &p->more[i];
    openai_deltas(ev, p, id, created, i + 1, c->text.data ? c->text.data : "", c->text.len,
                  &whole);
    openai_finish(ev, p, id, created, i + 1, reply_finish_name(ROUTE_OPENAI, (enum finish)c->f),
                  o);
    toks += c->ctok;
  }
  return toks;
}

static void openai_stream(struct events *ev, const struct prompt *p, unsigned long long id,
                          const char *text, size_t n, unsigned long long ctok,
                          enum finish f, const struct stream_opts *o)
{
  long long created = (long long)time(NULL);
  openai_deltas(ev, p, id, created, 0, text, f == FINISH_STOP || f == FINISH_LENGTH ? n : 0, o);
  if (o->end == STREAM_END_CUT || o->end == STREAM_END_CLEAN)
    return;
  if (o->end == STREAM_END_ERROR) {
    buf_adds(&ev->data, "data: {\"error\":{\"message\":\"mock stream error\",\"type\":"
             "\"server_error\",\"param\":null,\"code\":null}}\n\n");
    events_mark(ev);
    return;
  }
  openai_finish(ev, p, id, created, 0, reply_finish_name(ROUTE_OPENAI, f), o);
  if (f == FINISH_STOP || f == FINISH_LENGTH)
    ctok += openai_more(ev, p, id, created, o);
  else
    ctok = 0;  /* blocked, no text */
  openai_done(ev, p, id, created, ctok, o);
}

/* ---- Anthropic: event: NAME / data: JSON */

/* message_start: the message with no content yet and the input usage. */
static void anthropic_message_start(struct events *ev, const struct prompt *p, unsigned long long id)
{
  struct buf *b = &ev->data;
  buf_addf(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
           "{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
  reply_put_model(b, p);
  buf_adds(b, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,");
  reply_anthropic_usage(b, p, 1, 0);
  buf_adds(b, "}}\n\n");
  events_mark(ev);
}

/* message_delta (the stop reason, the output usage) and message_stop. */
static void anthropic_message_end(struct events *ev, const struct prompt *p, enum finish f,
                                  unsigned long long ctok)
{
  struct buf *b = &ev->data;
  buf_adds(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{");
  reply_anthropic_stop(b, p, f);
  buf_adds(b, "},");
  reply_anthropic_usage(b, p, ctok, 1);
  buf_adds(b, "}\n\n");
  events_mark(ev);
  buf_adds(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  events_mark(ev);
}

static void anthropic_stream(struct events *ev, const struct prompt *p, unsigned long long id,
                             const char *text, size_t n, unsigned long long ctok,
                             enum finish f, const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  int has_text = f == FINISH_STOP || f == FINISH_LENGTH;
  struct pieces ps;
  const char *s;
  size_t len;
  anthropic_message_start(ev, p, id);
  if (has_text && p->tool) {
    buf_addf(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
             "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_mock_%llu\",\"name\":", id);
    put_tool_name(b, p);
    buf_adds(b, ",\"input\":{}}}\n\n");
    events_mark(ev);
  } else if (has_text) {
    buf_adds(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
             "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    events_mark(ev);
  }
  buf_adds(b, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
  events_mark(ev);
  pieces_init(&ps, text, has_text && !(p->tool && f != FINISH_STOP) ? n : 0, o);
  while (pieces_next(&ps, &s, &len)) {
    buf_adds(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,");
    buf_adds(b, p->tool ? "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
                        : "\"delta\":{\"type\":\"text_delta\",\"text\":");
    json_put_str(b, s, len);
    buf_adds(b, "}}\n\n");
    events_mark(ev);
  }
  if (o->end == STREAM_END_CUT || o->end == STREAM_END_CLEAN)
    return;
  if (o->end == STREAM_END_ERROR) {
    buf_adds(b, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
             "\"message\":\"Overloaded\"}}\n\n");
    events_mark(ev);
    return;
  }
  if (has_text) {
    buf_adds(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
    events_mark(ev);
  }
  anthropic_message_end(ev, p, f, has_text ? ctok : 0);
}

/* ---- Gemini: data: GenerateContentResponse, lines ended by CRLF as
   Google's servers send them; or, without alt=sse, one JSON array. */

static void gemini_open(struct events *ev, const struct stream_opts *o)
{
  if (!o->json_array)
    buf_adds(&ev->data, "data: ");
  else
    buf_adds(&ev->data, ev->n == 0 ? "[" : ",\r\n");
}

static void gemini_close(struct events *ev, const struct stream_opts *o)
{
  if (!o->json_array)
    buf_adds(&ev->data, "\r\n\r\n");
  events_mark(ev);
}

/* Without alt=sse, the array's ']' ends the last event. */
static void gemini_end_array(struct events *ev, const struct stream_opts *o)
{
  if (o->json_array) {
    buf_addc(&ev->data, ']');
    ev->end[ev->n - 1] = ev->data.len;
  }
}

static void gemini_stream(struct events *ev, const struct prompt *p, unsigned long long id,
                          const char *text, size_t n, unsigned long long ctok,
                          enum finish f, const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  unsigned long long ptok = token_count(p->all.len);
  const char *fin = reply_finish_name(ROUTE_GEMINI, f);
  struct pieces ps;
  const char *s = "";
  size_t len = 0;
  if (f == FINISH_BLOCKED || f == FINISH_NO_TEXT) {
    gemini_open(ev, o);
    if (f == FINISH_BLOCKED)
      buf_addf(b, "{\"promptFeedback\":{\"blockReason\":\"%s\"},", fin);
    else
      buf_addf(b, "{\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":\"%s\","
               "\"index\":0}],", fin);
    reply_gemini_usage(b, p, ptok, 0);
    reply_gemini_end(b, p, id);
    gemini_close(ev, o);
  } else {
    pieces_init(&ps, text, n, o);
    (void)pieces_next(&ps, &s, &len);  /* an empty reply is still one event */
    do {
      /* a scripted fault comes before the finish, so no event may carry it */
      int last = pieces_last(&ps) && o->end == STREAM_END_NORMAL;
      gemini_open(ev, o);
      buf_adds(b, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
      json_put_str(b, s, len);
      buf_adds(b, "}],\"role\":\"model\"}");
      if (last)
        buf_addf(b, ",\"finishReason\":\"%s\"", fin);
      buf_adds(b, ",\"index\":0}],");
      /* until the last event the usage counts the prompt only */
      reply_gemini_usage(b, p, ptok, last ? ctok : 0);
      reply_gemini_end(b, p, id);
      gemini_close(ev, o);
    } while (pieces_next(&ps, &s, &len));
    if (o->end == STREAM_END_ERROR) {
      gemini_open(ev, o);
      buf_adds(b, "{\"error\":{\"code\":500,\"message\":\"mock stream error\","
               "\"status\":\"INTERNAL\"}}");
      gemini_close(ev, o);
    }
    if (o->end != STREAM_END_NORMAL && o->end != STREAM_END_CLEAN)
      return;  /* the array stays open too: the stream ends abnormally */
  }
  gemini_end_array(ev, o);
}

/* ---- Tool calls, streamed as each provider streams them: OpenAI sends
   each call's id and name in its first delta and its arguments in pieces,
   Anthropic a tool_use block per call with input_json_delta pieces, Gemini
   the functionCall parts whole in one event. */

static void openai_tools_stream(struct events *ev, const struct prompt *p,
                                unsigned long long id, unsigned long long ctok,
                                const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  long long created = (long long)time(NULL);
  struct pieces ps;
  const char *s;
  size_t len;
  int i;
  openai_begin(b, id, created, p);
  buf_adds(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"refusal\":null},"
           "\"logprobs\":null,\"finish_reason\":null}");
  openai_end(ev, o);
  for (i = 0; i < p->ncalls; i++) {
    const struct tcall *c = &p->calls[i];
    openai_begin(b, id, created, p);
    buf_addf(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":"
             "\"call_mock_%llu_%d\",\"type\":\"function\",\"function\":{\"name\":", i, id, i);
    json_put_str(b, c->name, c->nlen);
    buf_adds(b, ",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}");
    openai_end(ev, o);
    pieces_init(&ps, c->args.data ? c->args.data : "", c->args.len, o);
    while (pieces_next(&ps, &s, &len)) {
      openai_begin(b, id, created, p);
      buf_addf(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,\"function\":"
               "{\"arguments\":", i);
      json_put_str(b, s, len);
      buf_adds(b, "}}]},\"logprobs\":null,\"finish_reason\":null}");
      openai_end(ev, o);
    }
  }
  openai_finish(ev, p, id, created, 0, "tool_calls", o);
  openai_done(ev, p, id, created, ctok, o);
}

static void anthropic_tools_stream(struct events *ev, const struct prompt *p,
                                   unsigned long long id, unsigned long long ctok,
                                   const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  struct pieces ps;
  const char *s;
  size_t len;
  int i;
  anthropic_message_start(ev, p, id);
  for (i = 0; i < p->ncalls; i++) {
    const struct tcall *c = &p->calls[i];
    buf_addf(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":%d,"
             "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_mock_%llu_%d\",\"name\":",
             i, id, i);
    json_put_str(b, c->name, c->nlen);
    buf_adds(b, ",\"input\":{}}}\n\n");
    events_mark(ev);
    if (i == 0) {
      buf_adds(b, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
      events_mark(ev);
    }
    pieces_init(&ps, c->args.data ? c->args.data : "", c->args.len, o);
    while (pieces_next(&ps, &s, &len)) {
      buf_addf(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":%d,"
               "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":", i);
      json_put_str(b, s, len);
      buf_adds(b, "}}\n\n");
      events_mark(ev);
    }
    buf_addf(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":%d}\n\n",
             i);
    events_mark(ev);
  }
  anthropic_message_end(ev, p, FINISH_STOP, ctok);
}

static void gemini_tools_stream(struct events *ev, const struct prompt *p,
                                unsigned long long id, unsigned long long ctok,
                                const struct stream_opts *o)
{
  struct buf *b = &ev->data;
  gemini_open(ev, o);
  buf_adds(b, "{\"candidates\":[{\"content\":{\"parts\":[");
  tools_gemini_parts(b, p);
  buf_adds(b, "],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],");
  reply_gemini_usage(b, p, token_count(p->all.len), ctok);
  reply_gemini_end(b, p, id);
  gemini_close(ev, o);
  gemini_end_array(ev, o);
}

void sse_reply(struct events *ev, enum route r, const struct prompt *p,
               unsigned long long id, const char *text, size_t n,
               unsigned long long ctok, enum finish f, const struct stream_opts *o)
{
  /* a scripted stream fault or a blocked answer is sent as a text answer */
  if (p->ncalls && f == FINISH_STOP && o->end == STREAM_END_NORMAL) {
    if (r == ROUTE_ANTHROPIC)
      anthropic_tools_stream(ev, p, id, ctok, o);
    else if (r == ROUTE_GEMINI)
      gemini_tools_stream(ev, p, id, ctok, o);
    else
      openai_tools_stream(ev, p, id, ctok, o);
    return;
  }
  if (r == ROUTE_ANTHROPIC)
    anthropic_stream(ev, p, id, text, n, ctok, f, o);
  else if (r == ROUTE_GEMINI)
    gemini_stream(ev, p, id, text, n, ctok, f, o);
  else
    openai_stream(ev, p, id, text, n, ctok, f, o);
}
