/* json.h: a minimal JSON reader (a tree in one arena) and a string escaper. */
#ifndef MOCKLLM_JSON_H
#define MOCKLLM_JSON_H

#include <stddef.h>
#include "buf.h"

enum json_type {
  JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
};

struct json {
  enum json_type type;
  const char *s;          /* string: decoded UTF-8; number: its source text */
  size_t n;
  const char *key;        /* set when this value is an object member */
  size_t keylen;
  struct json *child;     /* first element or member */
  struct json *next;      /* next sibling */
};

struct json_block;

struct json_doc {
  struct json *root;
  struct json_block *mem;
  const char *error;      /* static message when json_parse fails */
  size_t error_at;        /* byte offset of the failure */
};

/* Parse text[0..len); number nodes point into text, so it must outlive the doc.
   Returns 0, or -1 with d->error set. Always call json_free afterwards. */
int json_parse(struct json_doc *d, const char *text, size_t len);
void json_free(struct json_doc *d);

/* Member of an object by key, or NULL (also when obj is not an object). */
const struct json *json_get(const struct json *obj, const char *key);
/* Non-zero when v is a string equal to s. */
int json_streq(const struct json *v, const char *s);

/* Append s as a quoted JSON string. Bytes >= 0x80 pass through unchanged. */
void json_put_str(struct buf *b, const char *s, size_t n);

#endif
