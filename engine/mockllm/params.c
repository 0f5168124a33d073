/* params.c: the request parameters mockllm honours as the real APIs do: a
   maximum of output tokens (the reply cut to it, finished by length), stop
   sequences (the reply cut before the first), and the number of choices. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CHOICES 16        /* n / candidateCount past this are clamped */

/* A whole number member, or 0 when absent or not a positive integer. */
static unsigned long long positive(const struct json *v)
{
  char tmp[24];
  char *end;
  unsigned long long x;
  if (v == NULL || v->type != JSON_NUMBER || v->n == 0 || v->n >= sizeof tmp || v->s[0] == '-')
    return 0;
  memcpy(tmp, v->s, v->n);
  tmp[v->n] = '\0';
  x = strtoull(tmp, &end, 10);
  return *end == '\0' ? x : 0;
}

void params_read(enum route r, const struct json *root, struct params *pa)
{
  const struct json *gc = json_get(root, "generationConfig");
  memset(pa, 0, sizeof *pa);
  pa->n = 1;
  if (r == ROUTE_OPENAI) {
    pa->max_tokens = positive(json_get(root, "max_completion_tokens"));
    if (pa->max_tokens == 0)
      pa->max_tokens = positive(json_get(root, "max_tokens"));
    pa->stops = json_get(root, "stop");
    pa->n = (int)positive(json_get(root, "n"));
  } else if (r == ROUTE_ANTHROPIC) {
    pa->max_tokens = positive(json_get(root, "max_tokens"));
    pa->stops = json_get(root, "stop_sequences");
  } else if (r == ROUTE_GEMINI) {
    pa->max_tokens = positive(json_get(gc, "maxOutputTokens"));
    pa->stops = json_get(gc, "stopSequences");
    pa->n = (int)positive(json_get(gc, "candidateCount"));
  }
  if (pa->n < 1)
    pa->n = 1;
  if (pa->n > MAX_CHOICES)
    pa->n = MAX_CHOICES;
}

/* The earliest of the stop sequences in text (a string, or a list of them,
   as OpenAI accepts both), ending the text just before it. */
const struct json *params_stop(const struct params *pa, struct buf *text)
{
  const struct json *one = pa->stops, *s, *found = NULL;
  size_t at = text->len;
  if (one == NULL || (one->type != JSON_STRING && one->type != JSON_ARRAY))
    return NULL;
  for (s = one->type == JSON_STRING ? one : one->child; s; s = one->type == JSON_STRING ? NULL : s->next) {
    const char *hit;
    if (s->type != JSON_STRING || s->n == 0 || text->len == 0)
      continue;
    hit = mem_find(text->data, text->len, s->s, s->n);
    if (hit && (size_t)(hit - text->data) < at) {
      at = (size_t)(hit - text->data);
      found = s;
    }
  }
  text->len = at;
  return found;
}

/* Cuts text to max_tokens of mockllm's tokens (4 bytes each), never inside a
   UTF-8 character. Returns 1 when it had to. */
int params_cut(const struct params *pa, struct buf *text)
{
  size_t keep;
  if (pa->max_tokens == 0 || token_count(text->len) <= pa->max_tokens)
    return 0;
  keep = (size_t)pa->max_tokens * 4;  /* < text->len: it has more tokens than that */
  while (keep > 0 && ((unsigned char)text->data[keep] & 0xC0) == 0x80)
    keep--;
  text->len = keep;
  return 1;
}
