/* buf.h: a growable byte buffer; every writer in mockllm appends to one. */
#ifndef MOCKLLM_BUF_H
#define MOCKLLM_BUF_H

#include <stddef.h>

struct buf {
  char *data;
  size_t len, cap;
};

/* Allocation failure aborts: a test server has no useful way to degrade. */
void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char ch);
void buf_addu(struct buf *b, unsigned long long v);
void buf_addf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

/* First occurrence of needle in hay, or NULL. */
const char *mem_find(const char *hay, size_t hn, const char *needle, size_t nn);

/* The k-th sep-separated piece of s[0..n) (from 0) in *t, *tn; 0 past the
   last one. */
int mem_piece(const char *s, size_t n, char sep, int k, const char **t, size_t *tn);

/* Allocate or die. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);

#endif
