/* react.c: DSPy ReAct steps as the react= scenario key scripts them. A
   request whose prompt asks for the `next_tool_name` field is a ReAct step;
   its trajectory input holds `tool_name_N` sections for the steps taken, so
   the step to answer is one past the highest N (truncated trajectories drop
   the oldest steps, not the numbers). The answer is the chat adapter's
   next_thought, next_tool_name and next_tool_args sections for that step of
   the script, and `finish` with no arguments past its end. Stateless: the
   same request always gets the same answer. */
#include "reply.h"

#include <stdio.h>
#include <string.h>

static const char STEP_FIELD[] = "`next_tool_name`";
static const char MARK[] = "[[ ## tool_name_";

/* One past the highest N of the "[[ ## tool_name_N ## ]]" sections in s. */
static int steps_taken(const char *s, size_t n)
{
  const char *end = s + n, *q = s;
  int next = 0;
  while ((q = mem_find(q, (size_t)(end - q), MARK, sizeof MARK - 1)) != NULL) {
    long v = 0;
    int digits = 0;
    q += sizeof MARK - 1;
    while (q < end && *q >= '0' && *q <= '9' && digits < 6) {
      v = v * 10 + (*q++ - '0');
      digits++;
    }
    if (digits && end - q >= 6 && memcmp(q, " ## ]]", 6) == 0 && v + 1 > next)
      next = (int)v + 1;
  }
  return next;
}

int react_check(const char *s, size_t n, char *err, size_t errlen)
{
  const char *t;
  size_t tn;
  int k;
  for (k = 0; mem_piece(s, n, '|', k, &t, &tn); k++) {
    struct prompt one;
    int calls;
    memset(&one, 0, sizeof one);
    if (tools_script(t, tn, &one, err, errlen) != 0) {
      tools_free(&one);
      return -1;
    }
    calls = one.ncalls;
    tools_free(&one);
    if (calls != 1) {
      snprintf(err, errlen, "X-Mock-Scenario: react wants one NAME(JSON_ARGS) per step, "
               "step %d has %d", k + 1, calls);
      return -1;
    }
  }
  return 0;
}

int react_answer(struct buf *out, const struct prompt *p, const struct scenario *sc)
{
  struct prompt one;
  const char *t, *name = "finish", *args = "{}";
  size_t tn, nlen = 6, alen = 2;
  char err[160];
  int k;
  if (p->all.data == NULL ||
      mem_find(p->all.data, p->all.len, STEP_FIELD, sizeof STEP_FIELD - 1) == NULL)
    return 0;
  k = steps_taken(p->last_user ? p->last_user : "", p->last_user ? p->last_user_len : 0);
  memset(&one, 0, sizeof one);
  if (mem_piece(sc->react, sc->react_len, '|', k, &t, &tn) &&
      tools_script(t, tn, &one, err, sizeof err) == 0 && one.ncalls == 1) {
    name = one.calls[0].name;
    nlen = one.calls[0].nlen;
    args = one.calls[0].args.data;
    alen = one.calls[0].args.len;
  }
  buf_addf(out, "[[ ## next_thought ## ]]\nStep %d: I call %.*s.\n\n", k + 1, (int)nlen, name);
  buf_adds(out, "[[ ## next_tool_name ## ]]\n");
  buf_add(out, name, nlen);
  buf_adds(out, "\n\n[[ ## next_tool_args ## ]]\n");
  if (one.ncalls == 1 && one.calls[0].malformed)
    alen = alen > 1 ? alen - 1 : 0;  /* NAME!(ARGS): the closing brace cut off */
  buf_add(out, args, alen);
  buf_adds(out, "\n\n[[ ## completed ## ]]");
  tools_free(&one);
  return 1;
}
