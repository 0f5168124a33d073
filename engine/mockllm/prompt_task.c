/* prompt_task.c: a task whose accuracy depends on the prompt, so optimizer
   specs can show a score rise offline.

   The model `mock-task` (any name starting so, on any route) is asked to
   answer with the first input's letters reversed ("apple" -> "elppa"). It
   does so only when the prompt teaches it: the conversation holds a demo (an
   assistant turn before the question) or the text says "revers" (any case,
   as an instruction "Reverse the letters ..." does). Otherwise it repeats the
   input unchanged, a plausible wrong answer.

   Output fields named like `*instruction*` (the proposers' proposed_instruction
   and new_instruction) get an instruction: the good one when the prompt shows
   the rule ("revers" in its demos' reasoning or in a metric's feedback), a
   vague one otherwise. Every other str output gets a fixed sentence. Only
   ChatAdapter prompts with str outputs are answered here; others fall back to
   the default answer. */
#include "prompt_task.h"

#include <string.h>

#define MAX_OUTPUTS 16
#define GOOD_INSTRUCTION "Reverse the letters of the input and answer with the reversed text."
#define VAGUE_INSTRUCTION "Read the input carefully and answer it."

struct name { const char *s; size_t n; };

static int lower(int c)
{
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Case-insensitive search for an ASCII lowercase word. */
static int has_word(const char *s, size_t n, const char *word)
{
  size_t k = strlen(word), i, j;
  for (i = 0; i + k <= n; i++) {
    for (j = 0; j < k && lower((unsigned char)s[i + j]) == word[j]; j++) {}
    if (j == k)
      return 1;
  }
  return 0;
}

static int contains(const char *s, size_t n, const char *w)
{
  return mem_find(s, n, w, strlen(w)) != NULL;
}

/* The output names the ChatAdapter asks for in its last user message:
   "Respond with the corresponding output fields, starting with the field
   `[[ ## a ## ]]`, then `[[ ## b ## ]]`, and then ending with ...". */
static int output_names(const struct prompt *p, struct name *out)
{
  static const char lead[] = "Respond with the corresponding output fields";
  const char *s = p->last_user, *end = s + p->last_user_len, *q, *e;
  int count = 0;
  q = mem_find(s, p->last_user_len, lead, sizeof lead - 1);
  if (q == NULL)
    return 0;
  for (s = q; (q = mem_find(s, (size_t)(end - s), "`[[ ## ", 7)) != NULL; s = e) {
    q += 7;
    e = mem_find(q, (size_t)(end - q), " ## ]]`", 7);
    if (e == NULL)
      break;
    if ((size_t)(e - q) == 9 && memcmp(q, "completed", 9) == 0)
      break;
    if (count == MAX_OUTPUTS)
      return 0;
    out[count].s = q;
    out[count].n = (size_t)(e - q);
    count++;
  }
  return count;
}

/* Every output is declared "`name` (str)" in the system message. */
static int all_str(const struct prompt *p, const struct name *out, int n)
{
  struct buf decl = {0};
  int i, ok = 1;
  for (i = 0; i < n && ok; i++) {
    decl.len = 0;
    buf_addc(&decl, '`');
    buf_add(&decl, out[i].s, out[i].n);
    buf_adds(&decl, "` (str)");
    ok = mem_find(p->all.data, p->all.len, decl.data, decl.len) != NULL;
  }
  buf_free(&decl);
  return ok;
}

/* The first input's value in the question: the text after the first
   "[[ ## name ## ]]" line up to the blank line, trimmed. */
static void first_input(const struct prompt *p, const char **v, size_t *vn)
{
  const char *s = p->last_user, *end = s + p->last_user_len, *q;
  *v = "";
  *vn = 0;
  if ((q = mem_find(s, p->last_user_len, " ## ]]", 6)) == NULL)
    return;
  s = q + 6;
  if ((q = mem_find(s, (size_t)(end - s), "\n\n", 2)) != NULL)
    end = q;
  while (s < end && (unsigned char)*s <= ' ') s++;
  while (end > s && (unsigned char)end[-1] <= ' ') end--;
  *v = s;
  *vn = (size_t)(end - s);
}

/* s[0..n) with its UTF-8 characters in reverse order. */
static void add_reversed(struct buf *b, const char *s, size_t n)
{
  size_t end = n;
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80)
      start--;
    buf_add(b, s + start, end - start);
    end = start;
  }
}

static void field_text(struct buf *b, const struct name *f, const struct prompt *p,
                       int knows, int shown)
{
  const char *v;
  size_t vn;
  first_input(p, &v, &vn);
  if (contains(f->s, f->n, "instruction")) {
    buf_adds(b, shown ? GOOD_INSTRUCTION : VAGUE_INSTRUCTION);
  } else if (contains(f->s, f->n, "reasoning") || contains(f->s, f->n, "rationale")) {
    buf_adds(b, "The input is '");
    buf_add(b, v, vn);
    if (knows) {
      buf_adds(b, "'; its letters reversed read '");
      add_reversed(b, v, vn);
      buf_adds(b, "'.");
    } else {
      buf_adds(b, "', which answers itself.");
    }
  } else if (f->n != 6 || memcmp(f->s, "answer", 6) != 0) {
    buf_adds(b, "A note on ");   /* a proposer's summary or description */
    buf_add(b, f->s, f->n);
    buf_adds(b, ".");
  } else if (knows) {
    add_reversed(b, v, vn);
  } else {
    buf_add(b, v, vn);
  }
}

int task_answer(struct buf *out, const struct prompt *p, const struct json *root)
{
  struct name f[MAX_OUTPUTS];
  int n, i, knows, shown;
  if (p->model == NULL || p->model_len < 9 || memcmp(p->model, "mock-task", 9) != 0)
    return 0;
  n = output_names(p, f);
  if (n == 0 || !all_str(p, f, n))
    return 0;
  shown = has_word(p->all.data, p->all.len, "revers");
  knows = shown || prompt_model_turns(p->route, root) > 0;  /* a demo */
  for (i = 0; i < n; i++) {
    buf_adds(out, "[[ ## ");
    buf_add(out, f[i].s, f[i].n);
    buf_adds(out, " ## ]]\n");
    field_text(out, &f[i], p, knows, shown);
    buf_adds(out, "\n\n");
  }
  buf_adds(out, "[[ ## completed ## ]]");
  return 1;
}
