/* check.h: the harnesses' oracle. A broken property aborts, which libFuzzer
   reports as a crash and saves the input that caused it. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__,    \
              #cond);                                                        \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* FNV-1a: requests framed two ways are compared by digest, not by copies. */
static inline unsigned long long fuzz_hash(unsigned long long h, const void *p, size_t n)
{
  const unsigned char *s = p;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

#define FUZZ_HASH_SEED 14695981039346656037ULL

#endif
