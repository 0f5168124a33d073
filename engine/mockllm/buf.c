/* buf.c: growable byte buffer and allocation helpers. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fputs("mockllm: out of memory\n", stderr);
    abort();
  }
  return p;
}

void *xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL) {
    fputs("mockllm: out of memory\n", stderr);
    abort();
  }
  return p;
}

void buf_reserve(struct buf *b, size_t extra)
{
  size_t need = b->len + extra, cap;
  char *p;
  if (need <= b->cap)
    return;
  cap = b->cap ? b->cap * 2 : 256;  /* doubling keeps appends amortised O(1) */
  while (cap < need)
    cap *= 2;
  p = realloc(b->data, cap);
  if (p == NULL) {
    fputs("mockllm: out of memory\n", stderr);
    abort();
  }
  b->data = p;
  b->cap = cap;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
  if (n == 0)
    return;
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void buf_adds(struct buf *b, const char *s)
{
  buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char ch)
{
  buf_reserve(b, 1);
  b->data[b->len++] = ch;
}

void buf_addu(struct buf *b, unsigned long long v)
{
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  buf_add(b, tmp + i, sizeof tmp - i);
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
  va_list ap;
  size_t room;
  int n;
  buf_reserve(b, 256);
  room = b->cap - b->len;
  va_start(ap, fmt);
  n = vsnprintf(b->data + b->len, room, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= room) {  /* did not fit: grow and format again */
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

void buf_free(struct buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

const char *mem_find(const char *hay, size_t hn, const char *needle, size_t nn)
{
  const char *p, *end;
  if (nn == 0)
    return hay;
  if (hn < nn)
    return NULL;
  end = hay + hn - nn + 1;
  for (p = hay; p < end; p++) {
    p = memchr(p, needle[0], (size_t)(end - p));
    if (p == NULL)
      return NULL;
    if (memcmp(p, needle, nn) == 0)
      return p;
  }
  return NULL;
}

int mem_piece(const char *s, size_t n, char sep, int k, const char **t, size_t *tn)
{
  const char *end = s + n, *cut;
  for (; s <= end; s = cut + 1, k--) {
    cut = memchr(s, sep, (size_t)(end - s));
    if (cut == NULL)
      cut = end;
    if (k == 0) {
      *t = s;
      *tn = (size_t)(cut - s);
      return 1;
    }
  }
  return 0;
}
