/* reply.h: reading a provider request and writing provider-shaped bodies. */
#ifndef MOCKLLM_REPLY_H
#define MOCKLLM_REPLY_H

#include "buf.h"
#include "json.h"
#include "mockllm.h"

struct prompt {
  struct buf all;             /* system + every message text, '\n'-joined */
  const char *last_user;      /* text of the last user message (points into doc) */
  size_t last_user_len;
  struct buf last_user_buf;   /* holds it when it had several parts */
  const char *model;
  size_t model_len;
};

/* Collect the prompt of an OpenAI/Anthropic/Gemini request body.
   Returns NULL, or a static message for a 400. */
const char *prompt_read(enum route r, const struct json *root, struct prompt *p);
void prompt_free(struct prompt *p);

/* ceil(bytes / 4), at least 1. */
unsigned long long token_count(size_t bytes);

/* Success body for route r. *text_at receives the offset just inside the
   reply string's opening quote (fault=huge inserts its filler there). */
void reply_ok(struct buf *b, enum route r, const struct prompt *p,
              unsigned long long id, const char *text, size_t n,
              unsigned long long ctok, size_t *text_at);

/* Error body in route r's shape; retry_after < 0 means none. */
void reply_error(struct buf *b, enum route r, int status, const char *msg,
                 long retry_after);

/* answer.c: the deterministic default reply text. */
void answer_default(struct buf *out, const struct prompt *p, const struct json *root);

#endif
