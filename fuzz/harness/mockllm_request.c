/* mockllm_request: mockllm's HTTP/1.1 request framing (request.c), and what
   respond.c reads from each framed request: its route and query (route.c) and
   its X-Mock-Scenario script (scenario.c).

   The input is a connection's byte stream. It is framed twice: all at once,
   and as it would arrive over TCP, in pieces whose sizes come from the first
   input byte. Properties: every framed request lies inside the input, each
   frame consumes bytes, and the split never changes a request that the whole
   stream framed (a split may only go on past an error the whole stream hit,
   because a method is checked only while the head's first bytes arrive). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "mockllm.h"

#define MAX_SEEN 64

struct framing {
  unsigned long long seen[MAX_SEEN];  /* a digest per framed request */
  size_t n;
  int failed;                         /* ended on an error answer */
};

static unsigned long long request_digest(const struct request *rq)
{
  unsigned long long h = FUZZ_HASH_SEED;
  h = fuzz_hash(h, rq->method, rq->method_len);
  h = fuzz_hash(h, rq->target, rq->target_len);
  h = fuzz_hash(h, rq->body, rq->body_len);
  if (rq->scenario)
    h = fuzz_hash(h, rq->scenario, rq->scenario_len);
  return fuzz_hash(h, &rq->keepalive, sizeof rq->keepalive);
}

/* What respond_start does with a request before any I/O. */
static void read_request(const struct request *rq)
{
  enum route shape;
  const char *model = NULL;
  size_t mlen = 0;
  int gstream = 0;
  enum route r = route_of(rq->target, rq->target_len, &shape, &model, &mlen, &gstream);
  CHECK(path_len(rq->target, rq->target_len) <= rq->target_len);
  if (r == ROUTE_GEMINI)
    CHECK(model >= rq->target && model + mlen <= rq->target + rq->target_len);
  (void)query_has(rq->target, rq->target_len, "alt", "sse");
  (void)query_has(rq->target, rq->target_len, "key", NULL);
  if (rq->scenario) {
    struct scenario sc;
    char err[160];
    scenario_init(&sc, 0);
    if (scenario_parse(&sc, rq->scenario, rq->scenario_len, err, sizeof err) != 0)
      CHECK(memchr(err, '\0', sizeof err) != NULL);
    else if (sc.key)
      CHECK(sc.key >= rq->scenario && sc.key + sc.keylen <= rq->scenario + rq->scenario_len);
    scenario_free(&sc);
  }
}

/* One connection: the bytes arrive `step` at a time (all at once for 0). */
static void frame(const char *data, size_t size, unsigned step, struct framing *out)
{
  struct head h;
  size_t off = 0, have = step ? 0 : size;
  memset(&h, 0, sizeof h);
  memset(out, 0, sizeof *out);
  for (;;) {
    struct request rq;
    struct buf body = {0};
    struct frame_error fe = {0, NULL};
    size_t used = 0;
    int r = request_frame(&h, data + off, have - off, &rq, &body, &used, &fe);
    CHECK(used <= have - off);
    off += used;
    if (r < 0) {
      CHECK(fe.status == 400 || fe.status == 413 || fe.status == 431);
      CHECK(fe.msg != NULL);
      out->failed = 1;
      buf_free(&body);
      return;
    }
    if (r > 0) {
      CHECK(used > 0);
      CHECK(rq.method_len > 0 && rq.target_len > 0 && rq.target[0] == '/');
      CHECK(rq.method >= data && rq.target + rq.target_len <= data + off);
      CHECK(rq.body_len == 0 || (rq.body >= data && rq.body + rq.body_len <= data + off) ||
            (body.data != NULL && rq.body == body.data));
      read_request(&rq);
      if (out->n < MAX_SEEN)
        out->seen[out->n++] = request_digest(&rq);
      buf_free(&body);
      continue;
    }
    buf_free(&body);
    if (have == size)
      return;  /* needs more than the stream holds */
    have = have + step < size ? have + step : size;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct framing whole, split;
  unsigned step;
  size_t i;
  if (size < 1)
    return 0;
  step = 1u + data[0] % 97u;  /* 1-byte pieces reach every "need more" path */
  frame((const char *)data + 1, size - 1, 0, &whole);
  frame((const char *)data + 1, size - 1, step, &split);
  CHECK(split.n >= whole.n);
  for (i = 0; i < whole.n; i++)
    CHECK(split.seen[i] == whole.seen[i]);
  if (!whole.failed)
    CHECK(split.n == whole.n && !split.failed);
  return 0;
}
