/* mockllm_answer: everything mockllm builds from a request's target and body
   once it is framed: the route (route.c), the JSON body (json.c), the prompt
   of each wire format (reply.c), the default answer that reads DSPy's field
   markers out of the prompt (answer.c), and the reply, plain or streamed
   (reply.c, sse.c).

   Input: one flags byte, the target up to the first '\n', then the body.
   Properties: every body and every streamed event mockllm writes is valid
   JSON, however hostile the request; a 404 for an unknown path is too. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "reply.h"

static void check_json(const char *p, size_t n)
{
  struct json_doc d;
  int r = json_parse(&d, p, n);
  if (r != 0)
    fprintf(stderr, "not JSON (%s at %zu): %.*s\n", d.error, d.error_at, (int)n, p);
  CHECK(r == 0);
  json_free(&d);
}

/* Each "data: " line of an event is JSON, except OpenAI's [DONE]. */
static void check_event(const char *p, size_t n)
{
  const char *end = p + n;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((eol ? eol : end) - p);
    if (len > 0 && p[len - 1] == '\r')
      len--;
    if (len >= 6 && memcmp(p, "data: ", 6) == 0 &&
        !(len == 12 && memcmp(p + 6, "[DONE]", 6) == 0))
      check_json(p + 6, len - 6);
    p = eol ? eol + 1 : end;
  }
}

static void check_stream(enum route r, const struct prompt *p, const char *text,
                         size_t n, enum finish fin, unsigned flags)
{
  struct events ev;
  struct stream_opts o;
  size_t i, start = 0;
  memset(&ev, 0, sizeof ev);
  o.include_usage = (flags >> 4) & 1;
  o.json_array = r == ROUTE_GEMINI && ((flags >> 5) & 1);
  o.end = (enum stream_end)(((flags >> 6) & 3) % 3);
  sse_reply(&ev, r, p, 1, text, n, 7, fin, &o);
  CHECK(ev.n > 0 && ev.end[ev.n - 1] == ev.data.len);
  for (i = 0; i < ev.n; i++) {
    CHECK(ev.end[i] >= start);
    if (!o.json_array)
      check_event(ev.data.data + start, ev.end[i] - start);
    start = ev.end[i];
  }
  if (o.json_array && o.end == STREAM_END_NORMAL)
    check_json(ev.data.data, ev.data.len);
  events_free(&ev);
}

/* model: Gemini's, from the URL (NULL for the others: theirs is in the body) */
static void answer(enum route r, const char *body, size_t n, unsigned flags,
                   const char *model, size_t mlen)
{
  struct json_doc d;
  struct prompt p;
  struct buf text = {0}, out = {0};
  const char *err;
  enum finish fin = (enum finish)((flags >> 2) & 3);
  size_t at = 0;
  if (json_parse(&d, body, n) != 0) {
    json_free(&d);
    return;
  }
  err = prompt_read(r, d.root, &p);
  if (err == NULL) {
    if (r == ROUTE_GEMINI && model) {
      p.model = model;
      p.model_len = mlen;
    }
    answer_default(&text, &p, d.root);
    reply_ok(&out, r, &p, 1, text.data ? text.data : "", text.len, 7, fin, &at);
    check_json(out.data, out.len);
    CHECK(at <= out.len);
    check_stream(r, &p, text.data ? text.data : "", text.len, fin, flags);
  } else {
    reply_error(&out, r, 400, err, -1);
    check_json(out.data, out.len);
  }
  buf_free(&text);
  buf_free(&out);
  prompt_free(&p);
  json_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const enum route providers[] = {ROUTE_OPENAI, ROUTE_ANTHROPIC, ROUTE_GEMINI};
  const char *target, *nl, *body;
  size_t tlen;
  enum route r, shape;
  const char *model = NULL;
  size_t mlen = 0;
  int gstream = 0;
  unsigned flags;
  if (size < 2)
    return 0;
  flags = data[0];
  target = (const char *)data + 1;
  nl = memchr(target, '\n', size - 1);
  tlen = nl ? (size_t)(nl - target) : size - 1;
  body = nl ? nl + 1 : target + tlen;
  r = route_of(target, tlen, &shape, &model, &mlen, &gstream);
  if (r == ROUTE_OTHER) {
    struct buf out = {0};
    reply_no_route(&out, shape, "POST", 4, target, path_len(target, tlen));
    check_json(out.data, out.len);
    buf_free(&out);
    r = providers[flags % 3];  /* the body is still worth reading */
  } else if (r >= ROUTE_HEALTH) {
    r = providers[flags % 3];
  }
  answer(r, body, (size_t)((const char *)data + size - body), flags,
         r == ROUTE_GEMINI ? model : NULL, mlen);
  return 0;
}
