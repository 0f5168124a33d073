/* scenario.c: the X-Mock-Scenario script ("k=v;k=v") and fail_first counters. */
#include "mockllm.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void scenario_init(struct scenario *sc, long default_latency)
{
  memset(sc, 0, sizeof *sc);
  sc->latency_ms = default_latency;
  sc->retry_after = -1;
  sc->retry_after_date = -1;
  sc->fail_first = -1;
  sc->size = 64ULL << 20;
  sc->interval_ms = 100;
  sc->drip_bytes = 1;
}

void scenario_free(struct scenario *sc)
{
  free(sc->reply);
  sc->reply = NULL;
  free(sc->tool_calls);
  sc->tool_calls = NULL;
  free(sc->tool_turns);
  sc->tool_turns = NULL;
  free(sc->react);
  sc->react = NULL;
}

static int keyis(const char *k, size_t n, const char *name)
{
  return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* Decimal, optionally with a k/m/g multiplier (for size=). */
static int parse_num(const char *v, size_t n, unsigned long long max,
                     unsigned long long *out)
{
  unsigned long long x = 0, mul = 1;
  size_t i;
  if (n > 0 && (v[n - 1] | 0x20) == 'k') mul = 1ULL << 10;
  else if (n > 0 && (v[n - 1] | 0x20) == 'm') mul = 1ULL << 20;
  else if (n > 0 && (v[n - 1] | 0x20) == 'g') mul = 1ULL << 30;
  if (mul > 1)
    n--;
  if (n == 0 || n > 12)
    return -1;
  for (i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -1;
    x = x * 10 + (unsigned)(v[i] - '0');
  }
  x *= mul;
  if (x > max)
    return -1;
  *out = x;
  return 0;
}

static int hexdigit(int ch)
{
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20;
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

char *url_decode(const char *v, size_t n, size_t *outlen)
{
  char *out = xmalloc(n + 1), *o = out;
  size_t i;
  for (i = 0; i < n; i++) {
    int hi, lo;
    if (v[i] == '+') {
      *o++ = ' ';
    } else if (v[i] == '%' && i + 2 < n &&
               (hi = hexdigit((unsigned char)v[i + 1])) >= 0 &&
               (lo = hexdigit((unsigned char)v[i + 2])) >= 0) {
      *o++ = (char)(hi * 16 + lo);
      i += 2;
    } else {
      *o++ = v[i];
    }
  }
  *o = '\0';
  *outlen = (size_t)(o - out);
  return out;
}

static const struct { const char *name; enum fault f; } faults[] = {
  {"none", FAULT_NONE}, {"drop", FAULT_DROP}, {"reset_headers", FAULT_RESET_HEADERS},
  {"reset_body", FAULT_RESET_BODY}, {"truncate", FAULT_TRUNCATE},
  {"malformed", FAULT_MALFORMED}, {"empty", FAULT_EMPTY}, {"html", FAULT_HTML},
  {"error_body", FAULT_ERROR_BODY}, {"huge", FAULT_HUGE}, {"drip", FAULT_DRIP},
  {"hang", FAULT_HANG}, {"blocked", FAULT_BLOCKED}, {"no_text", FAULT_NO_TEXT},
  {"stream_error", FAULT_STREAM_ERROR}, {"stream_drop", FAULT_STREAM_DROP},
  {"stream_cut", FAULT_STREAM_CUT}, {"stream_reset", FAULT_STREAM_RESET},
};

/* The words of the keys whose value is one of a few names. */
struct word { const char *name; int value; };

static const struct word echo_words[] = {
  {"0", ECHO_NONE}, {"1", ECHO_PLAIN}, {"escaped", ECHO_ESCAPED},
};
static const struct word usage_words[] = {
  {"real", USAGE_REAL}, {"huge", USAGE_HUGE}, {"negative", USAGE_NEGATIVE},
  {"float", USAGE_FLOAT}, {"string", USAGE_STRING},
};
static const struct word eol_words[] = {
  {"lf", EOL_LF}, {"cr", EOL_CR}, {"crlf", EOL_CRLF},
};

/* *out = the value of the word v[0..n) in list, or -1 when it is none of them. */
static int word_of(const struct word *list, size_t count, const char *v, size_t n, int *out)
{
  size_t i;
  for (i = 0; i < count; i++)
    if (strlen(list[i].name) == n && memcmp(v, list[i].name, n) == 0) {
      *out = list[i].value;
      return 0;
    }
  return -1;
}

#define WORD_OF(list, v, n, out) word_of(list, sizeof list / sizeof list[0], v, n, out)

static int bad(char *err, size_t errlen, const char *what, const char *k, size_t n)
{
  snprintf(err, errlen, "X-Mock-Scenario: %s '%.*s'", what, (int)(n > 64 ? 64 : n), k);
  return -1;
}

static int set_item(struct scenario *sc, const char *k, size_t kn, const char *v,
                    size_t vn, char *err, size_t errlen)
{
  unsigned long long x = 0;
  size_t i;
  if (keyis(k, kn, "reply")) {
    free(sc->reply);
    sc->reply = url_decode(v, vn, &sc->reply_len);
    return 0;
  }
  if (keyis(k, kn, "tool_calls")) {
    free(sc->tool_calls);
    sc->tool_calls = url_decode(v, vn, &sc->tool_calls_len);
    return tools_script(sc->tool_calls, sc->tool_calls_len, NULL, err, errlen);
  }
  if (keyis(k, kn, "tool_turns")) {
    free(sc->tool_turns);
    sc->tool_turns = url_decode(v, vn, &sc->tool_turns_len);
    return tools_turns_check(sc->tool_turns, sc->tool_turns_len, err, errlen);
  }
  if (keyis(k, kn, "react")) {
    free(sc->react);
    sc->react = url_decode(v, vn, &sc->react_len);
    return react_check(sc->react, sc->react_len, err, errlen);
  }
  if (keyis(k, kn, "context")) {
    if (parse_num(v, vn, 1ULL << 40, &x) != 0 || x == 0)
      return bad(err, errlen, "bad token count for", k, kn);
    sc->context_tokens = x;
    return 0;
  }
  if (keyis(k, kn, "tool_args")) {
    if (!keyis(v, vn, "malformed") && !keyis(v, vn, "valid"))
      return bad(err, errlen, "tool_args wants malformed or valid, got", v, vn);
    sc->tool_args_malformed = keyis(v, vn, "malformed");
    return 0;
  }
  if (keyis(k, kn, "key")) {
    sc->key = v;
    sc->keylen = vn;
    return 0;
  }
  if (keyis(k, kn, "fault")) {
    for (i = 0; i < sizeof faults / sizeof faults[0]; i++)
      if (keyis(v, vn, faults[i].name)) {
        sc->fault = faults[i].f;
        return 0;
      }
    return bad(err, errlen, "unknown fault", v, vn);
  }
  if (keyis(k, kn, "latency") || keyis(k, kn, "interval")) {
    if (parse_num(v, vn, 86400000ULL, &x) != 0)
      return bad(err, errlen, "bad milliseconds for", k, kn);
    *(k[0] == 'l' ? &sc->latency_ms : &sc->interval_ms) = (long)x;
    return 0;
  }
  if (keyis(k, kn, "stream_interval")) {
    if (parse_num(v, vn, 86400000ULL, &x) != 0)
      return bad(err, errlen, "bad milliseconds for", k, kn);
    sc->stream_interval_ms = (long)x;
    return 0;
  }
  if (keyis(k, kn, "finish")) {
    if (keyis(v, vn, "length"))
      sc->finish_length = 1;
    else if (keyis(v, vn, "stop"))
      sc->finish_length = 0;
    else
      return bad(err, errlen, "unknown finish", v, vn);
    return 0;
  }
  if (keyis(k, kn, "error")) {
    if (keyis(v, vn, "context_window"))
      sc->error = ERROR_CONTEXT_WINDOW;
    else if (keyis(v, vn, "insufficient_quota"))
      sc->error = ERROR_QUOTA;
    else if (keyis(v, vn, "none"))
      sc->error = ERROR_NONE;
    else
      return bad(err, errlen, "unknown error", v, vn);
    return 0;
  }
  if (keyis(k, kn, "status")) {
    if (parse_num(v, vn, 599, &x) != 0 || x < 100)
      return bad(err, errlen, "bad HTTP status", v, vn);
    sc->status = (int)x;
    return 0;
  }
  if (keyis(k, kn, "retry_after") || keyis(k, kn, "retry_after_date")) {
    if (parse_num(v, vn, 100000000ULL, &x) != 0)
      return bad(err, errlen, "bad seconds for", k, kn);
    *(kn == 11 ? &sc->retry_after : &sc->retry_after_date) = (long)x;
    return 0;
  }
  if (keyis(k, kn, "fail_first")) {
    if (parse_num(v, vn, 1000000000ULL, &x) != 0)
      return bad(err, errlen, "bad count for", k, kn);
    sc->fail_first = (long)x;
    return 0;
  }
  if (keyis(k, kn, "size")) {
    if (parse_num(v, vn, 1ULL << 40, &x) != 0)
      return bad(err, errlen, "bad byte count for", k, kn);
    sc->size = x;
    return 0;
  }
  if (keyis(k, kn, "bytes")) {
    if (parse_num(v, vn, FILL_CHUNK, &x) != 0 || x == 0)
      return bad(err, errlen, "bad byte count for", k, kn);
    sc->drip_bytes = (long)x;
    return 0;
  }
  if (keyis(k, kn, "echo_key")) {
    int w;
    if (WORD_OF(echo_words, v, vn, &w) != 0)
      return bad(err, errlen, "expected 0, 1 or escaped for", k, kn);
    sc->echo_key = (enum echo_key)w;
    return 0;
  }
  if (keyis(k, kn, "echo_pad")) {
    if (parse_num(v, vn, 1ULL << 20, &x) != 0)
      return bad(err, errlen, "bad byte count for", k, kn);
    sc->echo_pad = (size_t)x;
    return 0;
  }
  if (keyis(k, kn, "bom")) {
    if (parse_num(v, vn, 1, &x) != 0)
      return bad(err, errlen, "expected 0 or 1 for", k, kn);
    sc->bom = (int)x;
    return 0;
  }
  if (keyis(k, kn, "sse_eol")) {
    int w;
    if (WORD_OF(eol_words, v, vn, &w) != 0)
      return bad(err, errlen, "expected cr, lf or crlf for", k, kn);
    sc->sse_eol = (enum sse_eol)w;
    return 0;
  }
  if (keyis(k, kn, "cached")) {
    if (parse_num(v, vn, 1000000000ULL, &x) != 0)
      return bad(err, errlen, "bad token count for", k, kn);
    sc->cached = x;
    return 0;
  }
  if (keyis(k, kn, "sse_filler")) {
    if (parse_num(v, vn, 1000000000ULL, &x) != 0)
      return bad(err, errlen, "bad count for", k, kn);
    sc->sse_filler = x;
    return 0;
  }
  if (keyis(k, kn, "usage")) {
    int w;
    if (WORD_OF(usage_words, v, vn, &w) != 0)
      return bad(err, errlen, "expected huge, negative, float, string or real for", k, kn);
    sc->usage = (enum usage_mode)w;
    return 0;
  }
  if (keyis(k, kn, "lenient") || keyis(k, kn, "invalid_key")) {
    if (parse_num(v, vn, 1, &x) != 0)
      return bad(err, errlen, "expected 0 or 1 for", k, kn);
    *(k[0] == 'l' ? &sc->lenient : &sc->invalid_key) = (int)x;
    return 0;
  }
  if (keyis(k, kn, "endless")) {
    if (parse_num(v, vn, 1, &x) != 0)
      return bad(err, errlen, "expected 0 or 1 for", k, kn);
    sc->endless = (int)x;
    return 0;
  }
  return bad(err, errlen, "unknown scenario key", k, kn);
}

static void trim(const char **s, size_t *n)
{
  while (*n && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*n)--;
  }
  while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
    (*n)--;
}

int scenario_parse(struct scenario *sc, const char *text, size_t len,
                   char *err, size_t errlen)
{
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p)), *eq, *k, *v;
    size_t kn, vn;
    if (semi == NULL)
      semi = end;
    k = p;
    kn = (size_t)(semi - p);
    p = semi + 1;
    trim(&k, &kn);
    if (kn == 0)
      continue;
    eq = memchr(k, '=', kn);
    if (eq == NULL)
      return bad(err, errlen, "expected key=value, got", k, kn);
    v = eq + 1;
    vn = (size_t)(k + kn - v);
    kn = (size_t)(eq - k);
    trim(&k, &kn);
    trim(&v, &vn);
    if (set_item(sc, k, kn, v, vn, err, errlen) != 0)
      return -1;
  }
  return 0;
}

struct failent {
  struct failent *next;
  unsigned long long hash;
  unsigned long hits;
  size_t len;
  char key[];
};

static unsigned long long key_hash(const char *s, size_t n)
{
  unsigned long long h = 14695981039346656037ULL;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static void failtab_grow(struct failtab *t)
{
  size_t n = t->nslots ? t->nslots * 2 : 64, i;
  struct failent **slots = xcalloc(n, sizeof *slots);
  for (i = 0; i < t->nslots; i++) {
    struct failent *e = t->slots[i], *next;
    for (; e; e = next) {
      next = e->next;
      e->next = slots[e->hash & (n - 1)];
      slots[e->hash & (n - 1)] = e;
    }
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = n;
}

unsigned long failtab_hit(struct failtab *t, const char *key, size_t len)
{
  unsigned long long h = key_hash(key, len);
  struct failent *e;
  if (t->count >= t->nslots)
    failtab_grow(t);
  for (e = t->slots[h & (t->nslots - 1)]; e; e = e->next)
    if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
      return ++e->hits;
  e = xmalloc(sizeof *e + len + 1);
  e->hash = h;
  e->hits = 1;
  e->len = len;
  memcpy(e->key, key, len);
  e->key[len] = '\0';
  e->next = t->slots[h & (t->nslots - 1)];
  t->slots[h & (t->nslots - 1)] = e;
  t->count++;
  return 1;
}

void failtab_clear(struct failtab *t)
{
  size_t i;
  for (i = 0; i < t->nslots; i++) {
    struct failent *e = t->slots[i], *next;
    for (; e; e = next) {
      next = e->next;
      free(e);
    }
  }
  free(t->slots);
  t->slots = NULL;
  t->nslots = t->count = 0;
}
