/* json.c: recursive-descent JSON reader into an arena, and the string escaper. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bounded so a hostile body cannot exhaust the C stack. */
#define JSON_MAX_DEPTH 256

struct json_block {
  struct json_block *next;
  size_t used, cap;
};

/* Allocations start on a 16-byte boundary after the block header. */
#define BLOCK_HDR ((sizeof(struct json_block) + 15) & ~(size_t)15)

struct parser {
  const char *start, *p, *end;
  struct json_doc *d;
  int depth;
};

static void *arena_alloc(struct json_doc *d, size_t n)
{
  struct json_block *b = d->mem;
  n = (n + 15) & ~(size_t)15;
  if (b == NULL || b->cap - b->used < n) {
    size_t cap = b ? b->cap * 2 : 4096;
    while (cap < n)
      cap *= 2;
    b = xmalloc(BLOCK_HDR + cap);
    b->cap = cap;
    b->used = 0;
    b->next = d->mem;
    d->mem = b;
  }
  b->used += n;
  return (unsigned char *)b + BLOCK_HDR + b->used - n;
}

static int fail(struct parser *ps, const char *msg)
{
  if (ps->d->error == NULL) {
    ps->d->error = msg;
    ps->d->error_at = (size_t)(ps->p - ps->start);
  }
  return -1;
}

static void skip_ws(struct parser *ps)
{
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static int hexval(int ch)
{
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int read_hex4(const char *p, const char *end, unsigned *out)
{
  unsigned v = 0;
  int i;
  if (end - p < 4)
    return -1;
  for (i = 0; i < 4; i++) {
    int h = hexval((unsigned char)p[i]);
    if (h < 0)
      return -1;
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return 0;
}

static char *put_utf8(char *o, unsigned cp)
{
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xC0 | (cp >> 6));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xE0 | (cp >> 12));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xF0 | (cp >> 18));
    *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  return o;
}

/* At the opening quote. Decoded text is never longer than the source, so the
   source length bounds the arena allocation. */
static int parse_string(struct parser *ps, const char **out, size_t *outlen)
{
  const char *q = ps->p + 1, *close;
  char *dst, *o;
  for (close = q; close < ps->end && *close != '"'; close++) {
    if (*close == '\\')
      close++;
  }
  if (close >= ps->end)
    return fail(ps, "unterminated string");
  dst = o = arena_alloc(ps->d, (size_t)(close - q) + 1);
  while (q < close) {
    unsigned char ch = (unsigned char)*q;
    if (ch < 0x20) {
      ps->p = q;
      return fail(ps, "control character in string");
    }
    if (ch != '\\') {
      *o++ = (char)ch;
      q++;
      continue;
    }
    q++;
    switch (*q) {
    case '"': *o++ = '"'; q++; break;
    case '\\': *o++ = '\\'; q++; break;
    case '/': *o++ = '/'; q++; break;
    case 'b': *o++ = '\b'; q++; break;
    case 'f': *o++ = '\f'; q++; break;
    case 'n': *o++ = '\n'; q++; break;
    case 'r': *o++ = '\r'; q++; break;
    case 't': *o++ = '\t'; q++; break;
    case 'u': {
      unsigned cp, lo;
      if (read_hex4(q + 1, close, &cp) != 0) {
        ps->p = q;
        return fail(ps, "bad \\u escape");
      }
      q += 5;
      if (cp >= 0xD800 && cp <= 0xDBFF && close - q >= 6 && q[0] == '\\' &&
          q[1] == 'u' && read_hex4(q + 2, close, &lo) == 0 &&
          lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        q += 6;
      } else if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD;  /* a lone surrogate has no UTF-8 form */
      }
      o = put_utf8(o, cp);
      break;
    }
    default:
      ps->p = q;
      return fail(ps, "bad escape");
    }
  }
  *o = '\0';
  *out = dst;
  *outlen = (size_t)(o - dst);
  ps->p = close + 1;
  return 0;
}

static int is_digit(const char *p, const char *end)
{
  return p < end && *p >= '0' && *p <= '9';
}

static int parse_number(struct parser *ps, struct json *v)
{
  const char *p = ps->p, *end = ps->end;
  if (p < end && *p == '-')
    p++;
  if (!is_digit(p, end))
    return fail(ps, "bad number");
  if (*p == '0')
    p++;
  else
    while (is_digit(p, end)) p++;
  if (p < end && *p == '.') {
    p++;
    if (!is_digit(p, end))
      return fail(ps, "bad number");
    while (is_digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (!is_digit(p, end))
      return fail(ps, "bad number");
    while (is_digit(p, end)) p++;
  }
  v->type = JSON_NUMBER;
  v->s = ps->p;
  v->n = (size_t)(p - ps->p);
  ps->p = p;
  return 0;
}

static int parse_literal(struct parser *ps, const char *word, enum json_type t,
                         struct json *v)
{
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return fail(ps, "unexpected character");
  ps->p += n;
  v->type = t;
  return 0;
}

static int parse_value(struct parser *ps, struct json *v);

static int parse_container(struct parser *ps, struct json *v, int is_object)
{
  struct json **tail = &v->child;
  char closer = is_object ? '}' : ']';
  if (++ps->depth > JSON_MAX_DEPTH)
    return fail(ps, "nesting too deep");
  v->type = is_object ? JSON_OBJECT : JSON_ARRAY;
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == closer) {
    ps->p++;
    ps->depth--;
    return 0;
  }
  for (;;) {
    struct json *item = arena_alloc(ps->d, sizeof *item);
    memset(item, 0, sizeof *item);
    if (is_object) {
      if (ps->p >= ps->end || *ps->p != '"')
        return fail(ps, "expected member name");
      if (parse_string(ps, &item->key, &item->keylen) != 0)
        return -1;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':')
        return fail(ps, "expected ':'");
      ps->p++;
      skip_ws(ps);
    }
    if (parse_value(ps, item) != 0)
      return -1;
    *tail = item;
    tail = &item->next;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      skip_ws(ps);
      continue;
    }
    if (ps->p < ps->end && *ps->p == closer) {
      ps->p++;
      ps->depth--;
      return 0;
    }
    return fail(ps, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int parse_value(struct parser *ps, struct json *v)
{
  if (ps->p >= ps->end)
    return fail(ps, "unexpected end of input");
  switch (*ps->p) {
  case '{': return parse_container(ps, v, 1);
  case '[': return parse_container(ps, v, 0);
  case '"':
    v->type = JSON_STRING;
    return parse_string(ps, &v->s, &v->n);
  case 't': return parse_literal(ps, "true", JSON_TRUE, v);
  case 'f': return parse_literal(ps, "false", JSON_FALSE, v);
  case 'n': return parse_literal(ps, "null", JSON_NULL, v);
  default: return parse_number(ps, v);
  }
}

int json_parse(struct json_doc *d, const char *text, size_t len)
{
  struct parser ps;
  memset(d, 0, sizeof *d);
  ps.start = ps.p = text;
  ps.end = text + len;
  ps.d = d;
  ps.depth = 0;
  d->root = arena_alloc(d, sizeof *d->root);
  memset(d->root, 0, sizeof *d->root);
  skip_ws(&ps);
  if (parse_value(&ps, d->root) != 0)
    return -1;
  skip_ws(&ps);
  if (ps.p != ps.end)
    return fail(&ps, "trailing characters after JSON value");
  return 0;
}

void json_free(struct json_doc *d)
{
  struct json_block *b = d->mem, *next;
  for (; b; b = next) {
    next = b->next;
    free(b);
  }
  d->mem = NULL;
  d->root = NULL;
}

const struct json *json_get(const struct json *obj, const char *key)
{
  const struct json *m;
  size_t n;
  if (obj == NULL || obj->type != JSON_OBJECT)
    return NULL;
  n = strlen(key);
  for (m = obj->child; m; m = m->next)
    if (m->keylen == n && memcmp(m->key, key, n) == 0)
      return m;
  return NULL;
}

int json_streq(const struct json *v, const char *s)
{
  size_t n = strlen(s);
  return v && v->type == JSON_STRING && v->n == n && memcmp(v->s, s, n) == 0;
}

void json_put_str(struct buf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t i, run = 0;
  buf_reserve(b, n + 2);
  buf_addc(b, '"');
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[6];
    size_t elen = 2;
    if (ch >= 0x20 && ch != '"' && ch != '\\')
      continue;
    buf_add(b, s + run, i - run);  /* flush the plain run before this byte */
    run = i + 1;
    esc[0] = '\\';
    switch (ch) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
      esc[4] = hex[ch >> 4]; esc[5] = hex[ch & 15];
      elen = 6;
    }
    buf_add(b, esc, elen);
  }
  buf_add(b, s + run, n - run);
  buf_addc(b, '"');
}
