/* embeddings.c: OpenAI's POST /v1/embeddings and Gemini's
   :batchEmbedContents, answered with deterministic vectors. Each text's vector
   is a hashed bag of its words, normalised, so texts that share words are near
   by cosine and a text's vector never changes: a client's ranking can be
   checked exactly. The request is checked as strictly as the real API checks
   it (lenient skips the checks that go beyond reading it). */
#include "apis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPENAI_MAX_INPUTS 2048    /* inputs in one OpenAI request */
#define GEMINI_MAX_REQUESTS 100   /* requests in one batchEmbedContents */
#define MAX_DIMS 3072

static unsigned long long hash_word(const char *s, size_t n)
{
  unsigned long long h = 14695981039346656037ULL;  /* FNV-1a */
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 'A' && ch <= 'Z')
      ch = (unsigned char)(ch - 'A' + 'a');  /* "Paris" and "paris" are one word */
    h ^= ch;
    h *= 1099511628211ULL;
  }
  return h;
}

static int word_byte(unsigned char ch)
{
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         ch >= 0x80;
}

/* The unit vector of a text: a hashed bag of its words, so texts sharing
   words are near (cosine) and the same text always gets the same vector. */
static void embed_text(float *v, size_t dims, const char *s, size_t n)
{
  size_t i = 0, start;
  double norm = 0;
  memset(v, 0, dims * sizeof *v);
  while (i < n) {
    while (i < n && !word_byte((unsigned char)s[i]))
      i++;
    start = i;
    while (i < n && word_byte((unsigned char)s[i]))
      i++;
    if (i > start) {
      unsigned long long h = hash_word(s + start, i - start);
      v[h % dims] += (h >> 63) ? -1.0f : 1.0f;
    }
  }
  for (i = 0; i < dims; i++)
    norm += (double)v[i] * v[i];
  if (norm == 0) {
    v[0] = 1.0f;  /* no words at all: still a unit vector */
    return;
  }
  norm = sqrt(norm);
  for (i = 0; i < dims; i++)
    v[i] = (float)(v[i] / norm);
}

static void put_vector(struct buf *b, float *v, size_t dims, const char *s, size_t n)
{
  size_t i;
  embed_text(v, dims, s, n);
  buf_addc(b, '[');
  for (i = 0; i < dims; i++)
    buf_addf(b, i ? ",%.6f" : "%.6f", (double)v[i]);
  buf_addc(b, ']');
}

static void fail(struct api_answer *a, enum route r, int status, const char *msg)
{
  a->status = status;
  a->body.len = 0;
  reply_error(&a->body, r, status, msg, -1);
}

/* dimensions / outputDimensionality: *dims, or 0 with a message. */
static const char *dims_of(const struct json *v, size_t def, size_t *dims)
{
  char *end;
  long d;
  *dims = def;
  if (v == NULL)
    return NULL;
  if (v->type != JSON_NUMBER)
    return "dimensions must be an integer";
  d = strtol(v->s, &end, 10);
  if (end != v->s + v->n || d < 1 || (size_t)d > def)
    return "dimensions must be an integer between 1 and the model's size";
  *dims = (size_t)d;
  return NULL;
}

static int model_is(const char *m, size_t n, const char *name)
{
  size_t k = strlen(name);
  return n >= k && memcmp(m, name, k) == 0;
}

/* The OpenAI members a request may have. */
static int openai_member(const struct json *m)
{
  static const char *const known[] = {"model", "input", "encoding_format", "dimensions", "user"};
  size_t i;
  for (i = 0; i < sizeof known / sizeof *known; i++)
    if (m->keylen == strlen(known[i]) && memcmp(m->key, known[i], m->keylen) == 0)
      return 1;
  return 0;
}

static void openai_embeddings(struct api_answer *a, const struct json *root, int lenient)
{
  const struct json *model, *input, *fmt, *m;
  const char *err;
  size_t dims, count = 0, i;
  unsigned long long tokens = 0;
  float *v;
  char msg[160];
  if (root->type != JSON_OBJECT) {
    fail(a, ROUTE_OPENAI, 400, "request body must be a JSON object");
    return;
  }
  for (m = root->child; m && !lenient; m = m->next)
    if (!openai_member(m)) {
      snprintf(msg, sizeof msg, "Unrecognized request argument supplied: %.*s", (int)(m->keylen > 60 ? 60 : m->keylen), m->key);
      fail(a, ROUTE_OPENAI, 400, msg);
      return;
    }
  model = json_get(root, "model");
  input = json_get(root, "input");
  fmt = json_get(root, "encoding_format");
  if (model == NULL || model->type != JSON_STRING) {
    fail(a, ROUTE_OPENAI, 400, "you must provide a model parameter");
    return;
  }
  if (input == NULL || (input->type != JSON_STRING && input->type != JSON_ARRAY)) {
    fail(a, ROUTE_OPENAI, 400, "'input' is a required property: a string or an array of strings");
    return;
  }
  if (fmt && !json_streq(fmt, "float")) {
    fail(a, ROUTE_OPENAI, 400, json_streq(fmt, "base64")
         ? "mock: encoding_format base64 is not served; ask for float"
         : "'encoding_format' must be 'float' or 'base64'");
    return;
  }
  if (input->type == JSON_ARRAY)
    for (m = input->child; m; m = m->next) {
      if (m->type != JSON_STRING || (m->n == 0 && !lenient)) {
        fail(a, ROUTE_OPENAI, 400, "'$.input' is invalid: each input must be a non-empty string "
             "(token arrays are not served by mockllm)");
        return;
      }
      count++;
    }
  else
    count = 1;
  if ((count == 0 || (input->type == JSON_STRING && input->n == 0)) && !lenient) {
    fail(a, ROUTE_OPENAI, 400, "'$.input' is invalid: it must not be empty");
    return;
  }
  if (count > OPENAI_MAX_INPUTS && !lenient) {
    fail(a, ROUTE_OPENAI, 400, "'$.input' is invalid: at most 2048 inputs in one request");
    return;
  }
  if (!lenient && json_get(root, "dimensions") && !model_is(model->s, model->n, "text-embedding-3")) {
    fail(a, ROUTE_OPENAI, 400, "This model does not support specifying dimensions.");
    return;
  }
  err = dims_of(json_get(root, "dimensions"),
                model_is(model->s, model->n, "text-embedding-3-large") ? 3072 : 1536, &dims);
  if (err) {
    fail(a, ROUTE_OPENAI, 400, err);
    return;
  }
  v = xmalloc(dims * sizeof *v);
  buf_adds(&a->body, "{\"object\":\"list\",\"data\":[");
  i = 0;
  for (m = input->type == JSON_ARRAY ? input->child : input; m; m = input->type == JSON_ARRAY ? m->next : NULL) {
    buf_addf(&a->body, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
    put_vector(&a->body, v, dims, m->s, m->n);
    buf_addc(&a->body, '}');
    tokens += token_count(m->n);
    i++;
  }
  buf_adds(&a->body, "],\"model\":");
  json_put_str(&a->body, model->s, model->n);
  buf_addf(&a->body, ",\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu}}", tokens, tokens);
  a->status = 200;
  free(v);
}

/* The text of a Gemini content: its parts' texts, joined by '\n' into tmp. */
static int gemini_text(const struct json *content, struct buf *tmp)
{
  const struct json *parts = json_get(content, "parts"), *p;
  tmp->len = 0;
  if (parts == NULL || parts->type != JSON_ARRAY)
    return -1;
  for (p = parts->child; p; p = p->next) {
    const struct json *t = json_get(p, "text");
    if (t == NULL || t->type != JSON_STRING)
      return -1;
    if (tmp->len)
      buf_addc(tmp, '\n');
    buf_add(tmp, t->s, t->n);
  }
  return 0;
}

static void gemini_embeddings(struct api_answer *a, const struct json *root, const char *model,
                              size_t mlen, int lenient)
{
  const struct json *reqs = json_get(root, "requests"), *q;
  struct buf text = {0};
  size_t count = 0, dims, i = 0;
  float *v;
  char msg[200];
  if (reqs == NULL || reqs->type != JSON_ARRAY || reqs->child == NULL) {
    fail(a, ROUTE_GEMINI, 400, "* BatchEmbedContentsRequest.requests: contents is not specified");
    return;
  }
  for (q = reqs->child; q; q = q->next) {
    const struct json *m = json_get(q, "model");
    const char *err;
    count++;
    /* every request names the model of the URL, as "models/NAME" */
    if (!lenient && (m == NULL || m->type != JSON_STRING || m->n != mlen + 7 ||
                     memcmp(m->s, "models/", 7) != 0 || memcmp(m->s + 7, model, mlen) != 0)) {
      snprintf(msg, sizeof msg, "* BatchEmbedContentsRequest.requests[%zu].model: the model of "
               "each request must be the model of the URL, models/%.*s", count - 1,
               (int)(mlen > 80 ? 80 : mlen), model);
      fail(a, ROUTE_GEMINI, 400, msg);
      return;
    }
    if (gemini_text(json_get(q, "content"), &text) != 0) {
      snprintf(msg, sizeof msg, "* BatchEmbedContentsRequest.requests[%zu].content: "
               "parts of text expected", count - 1);
      fail(a, ROUTE_GEMINI, 400, msg);
      buf_free(&text);
      return;
    }
    err = dims_of(json_get(q, "outputDimensionality"),
                  model_is(model, mlen, "gemini-embedding") ? MAX_DIMS : 768, &dims);
    if (err) {
      fail(a, ROUTE_GEMINI, 400, err);
      buf_free(&text);
      return;
    }
  }
  if (count > GEMINI_MAX_REQUESTS && !lenient) {
    fail(a, ROUTE_GEMINI, 400, "* BatchEmbedContentsRequest.requests: at most 100 requests "
         "can be in one batch");
    buf_free(&text);
    return;
  }
  v = xmalloc(MAX_DIMS * sizeof *v);
  buf_adds(&a->body, "{\"embeddings\":[");
  for (q = reqs->child; q; q = q->next) {
    (void)gemini_text(json_get(q, "content"), &text);
    (void)dims_of(json_get(q, "outputDimensionality"),
                  model_is(model, mlen, "gemini-embedding") ? MAX_DIMS : 768, &dims);
    buf_adds(&a->body, i++ ? ",{\"values\":" : "{\"values\":");
    put_vector(&a->body, v, dims, text.data ? text.data : "", text.len);
    buf_addc(&a->body, '}');
  }
  buf_adds(&a->body, "]}");
  a->status = 200;
  free(v);
  buf_free(&text);
}

void embeddings_answer(struct api_answer *a, enum route r, const struct json *root,
                       const char *model, size_t mlen, int lenient)
{
  if (r == ROUTE_GEMINI)
    gemini_embeddings(a, root, model ? model : "", model ? mlen : 0, lenient);
  else
    openai_embeddings(a, root, lenient);
}
