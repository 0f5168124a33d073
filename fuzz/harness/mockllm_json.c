/* mockllm_json: mockllm's JSON reader (json.c), which reads every provider
   request body, and its string escaper, which writes every reply.

   Properties: a parse either succeeds or names an error at an offset inside
   the input; the tree stays inside its depth bound; and writing the tree back
   (strings through json_put_str) gives JSON that parses to the same tree. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "json.h"

#define DEPTH_BOUND 256

/* Writes v as JSON; numbers keep their source text. */
static void put_value(struct buf *b, const struct json *v)
{
  const struct json *c;
  switch (v->type) {
  case JSON_NULL: buf_adds(b, "null"); break;
  case JSON_FALSE: buf_adds(b, "false"); break;
  case JSON_TRUE: buf_adds(b, "true"); break;
  case JSON_NUMBER: buf_add(b, v->s, v->n); break;
  case JSON_STRING: json_put_str(b, v->s, v->n); break;
  case JSON_ARRAY:
  case JSON_OBJECT:
    buf_addc(b, v->type == JSON_ARRAY ? '[' : '{');
    for (c = v->child; c; c = c->next) {
      if (c != v->child)
        buf_addc(b, ',');
      if (v->type == JSON_OBJECT) {
        CHECK(c->key != NULL);
        json_put_str(b, c->key, c->keylen);
        buf_addc(b, ':');
      }
      put_value(b, c);
    }
    buf_addc(b, v->type == JSON_ARRAY ? ']' : '}');
    break;
  }
}

static int same(const struct json *a, const struct json *b, int depth)
{
  const struct json *x, *y;
  CHECK(depth <= DEPTH_BOUND + 1);
  if (a->type != b->type || a->n != b->n || (a->n && memcmp(a->s, b->s, a->n) != 0))
    return 0;
  if (a->keylen != b->keylen || (a->keylen && memcmp(a->key, b->key, a->keylen) != 0))
    return 0;
  for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
    if (!same(x, y, depth + 1))
      return 0;
  return x == NULL && y == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct json_doc d, again;
  struct buf out = {0};
  if (json_parse(&d, (const char *)data, size) != 0) {
    CHECK(d.error != NULL && d.error_at <= size);
    json_free(&d);
    return 0;
  }
  CHECK(d.error == NULL && d.root != NULL);
  put_value(&out, d.root);
  CHECK(json_parse(&again, out.data, out.len) == 0);
  CHECK(same(d.root, again.root, 0));
  (void)json_get(d.root, "messages");
  json_free(&again);
  json_free(&d);
  buf_free(&out);
  return 0;
}
