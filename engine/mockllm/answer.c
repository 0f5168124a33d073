/* answer.c: the default reply text. Deterministic: it depends only on the
   request, through an FNV-1a hash of the prompt. */
#include "reply.h"

#include <string.h>

#define MAX_FIELDS 64

enum ftype { T_STR, T_INT, T_FLOAT, T_BOOL, T_LIST_STR, T_LIST_INT, T_DICT, T_LITERAL };

struct field {
  const char *name;
  size_t nlen;
  const char *type;
  size_t tlen;
  enum ftype kind;
  long ival;                  /* T_INT */
};

static unsigned long long fnv1a(unsigned long long h, const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

#define FNV_SEED 14695981039346656037ULL

static int contains(const char *s, size_t n, const char *word)
{
  return mem_find(s, n, word, strlen(word)) != NULL;
}

static int starts(const char *s, size_t n, const char *prefix)
{
  size_t k = strlen(prefix);
  return n >= k && memcmp(s, prefix, k) == 0;
}

/* The first `max` characters of the user's words on one line. A DSPy user
   message starts with "[[ ## input ## ]]": skip that marker and stop at the
   paragraph break, so the snippet is the input value. */
static void snippet(struct buf *b, const char *s, size_t n, size_t max, int no_brackets)
{
  const char *end = s + n, *q;
  size_t chars = 0;
  int space = 0;
  if (n >= 6 && memcmp(s, "[[ ## ", 6) == 0 && (q = mem_find(s, n, " ## ]]", 6))) {
    s = q + 6;
    if ((q = mem_find(s, (size_t)(end - s), "\n\n", 2)) != NULL) {
      const char *p = s;
      while (p < q && (*p == '\n' || *p == ' ')) p++;
      if (p < q)  /* a blank line right after the marker is not the end */
        end = q;
    }
  }
  while (s < end && (unsigned char)*s <= ' ')
    s++;
  for (; s < end; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= ' ' || ch == 0x7f) {
      space = 1;
      continue;
    }
    if ((ch & 0xC0) != 0x80) {  /* a character starts here, not a continuation */
      if (chars + space >= max)
        break;
      chars += 1 + (size_t)space;
    }
    if (space) {
      buf_addc(b, ' ');
      space = 0;
    }
    if (no_brackets && ch == '[')
      ch = '(';
    else if (no_brackets && ch == ']')
      ch = ')';
    buf_addc(b, (char)ch);
  }
}

/* Type text like "int", "Optional[list[str]]", "Literal['a', 'b']". */
static enum ftype classify(const char *t, size_t n)
{
  if (starts(t, n, "Optional[") && t[n - 1] == ']')
    return classify(t + 9, n - 10);
  if (n == 3 && memcmp(t, "int", 3) == 0)
    return T_INT;
  if (n == 5 && memcmp(t, "float", 5) == 0)
    return T_FLOAT;
  if (n == 4 && memcmp(t, "bool", 4) == 0)
    return T_BOOL;
  if (starts(t, n, "list") || starts(t, n, "List"))
    return contains(t, n, "[int]") ? T_LIST_INT : T_LIST_STR;
  if (starts(t, n, "dict") || starts(t, n, "Dict"))
    return T_DICT;
  if (starts(t, n, "Literal["))
    return T_LITERAL;
  return T_STR;
}

/* Lines like "1. `score` (int): description" between "Your output fields
   are:" and "All interactions will be structured"; anything else between
   them is a wrapped description. */
static size_t dspy_fields(const char *s, size_t n, struct field *f)
{
  static const char open[] = "Your output fields are:";
  static const char close[] = "All interactions will be structured";
  const char *p = mem_find(s, n, open, sizeof open - 1), *end, *eol;
  size_t count = 0;
  if (p == NULL)
    return 0;
  p += sizeof open - 1;
  end = mem_find(p, (size_t)(s + n - p), close, sizeof close - 1);
  if (end == NULL)
    end = s + n;
  for (; p < end && count < MAX_FIELDS; p = eol + 1) {
    const char *q, *name, *name_end, *type;
    int depth = 0;
    char quote = 0;
    eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
      eol = end;
    for (q = p; q < eol && (*q == ' ' || *q == '\t'); q++) {}
    if (q >= eol || *q < '0' || *q > '9')
      continue;
    while (q < eol && *q >= '0' && *q <= '9') q++;
    if (eol - q < 4 || q[0] != '.' || q[1] != ' ' || q[2] != '`')
      continue;
    name = q + 3;
    if ((q = memchr(name, '`', (size_t)(eol - name))) == NULL || q == name)
      continue;
    name_end = q;
    if (eol - q < 3 || q[1] != ' ' || q[2] != '(')
      continue;
    type = q + 3;
    /* The type ends at the ')' that closes the '('; quotes and brackets in
       Literal[...] may hold parentheses of their own. */
    for (q = type; q < eol; q++) {
      if (quote) {
        if (*q == quote) quote = 0;
      } else if (*q == '\'' || *q == '"') {
        quote = *q;
      } else if (*q == '(' || *q == '[') {
        depth++;
      } else if (*q == ']') {
        depth--;
      } else if (*q == ')') {
        if (depth-- == 0) break;
      }
    }
    if (q >= eol)
      continue;
    f[count].name = name;
    f[count].nlen = (size_t)(name_end - name);
    f[count].type = type;
    f[count].tlen = (size_t)(q - type);
    f[count].kind = classify(type, f[count].tlen);
    count++;
  }
  return count;
}

static void literal_first(struct buf *b, const struct field *f)
{
  const char *p = f->type + 8, *end = f->type + f->tlen, *q;
  while (p < end && *p == ' ') p++;
  if (p < end && (*p == '\'' || *p == '"')) {
    q = memchr(p + 1, *p, (size_t)(end - p - 1));
    if (q) {
      buf_add(b, p + 1, (size_t)(q - p - 1));
      return;
    }
  }
  for (q = p; q < end && *q != ',' && *q != ']'; q++) {}
  buf_add(b, p, (size_t)(q - p));
}

static void str_value(struct buf *b, const struct field *f, const struct prompt *p)
{
  if (contains(f->name, f->nlen, "feedback") || contains(f->name, f->nlen, "critique")) {
    buf_adds(b, "The draft is clear; tighten the second paragraph.");
    if (p->variant)
      buf_addf(b, " (#%d)", p->variant + 1);
  } else if (contains(f->name, f->nlen, "reasoning") || contains(f->name, f->nlen, "rationale")) {
    buf_adds(b, "Let me think step by step. The input is clear, so the answer follows directly.");
    if (p->variant)
      buf_addf(b, " (#%d)", p->variant + 1);
  } else {
    buf_adds(b, "Mock ");
    buf_add(b, f->name, f->nlen);
    if (p->variant)
      buf_addf(b, " #%d", p->variant + 1);
    buf_adds(b, ": ");
    snippet(b, p->last_user, p->last_user_len, 40, 1);
  }
}

static int is_approval(const struct field *f)
{
  return f->kind == T_BOOL && contains(f->name, f->nlen, "approved");
}

/* One value; as_json selects JSON literals (JSONAdapter) over Python ones. */
static void field_value(struct buf *b, const struct field *f, const struct prompt *p,
                        unsigned long long h, const struct field *score, int as_json)
{
  struct buf tmp = {0};
  switch (f->kind) {
  case T_INT:
    buf_addf(b, "%ld", f->ival);
    break;
  case T_FLOAT:
    buf_addf(b, "0.%02u", (unsigned)(50 + fnv1a(h, f->name, f->nlen) % 50));
    break;
  case T_BOOL: {
    int yes = !(is_approval(f) && score && score->ival < 70);
    buf_adds(b, as_json ? (yes ? "true" : "false") : (yes ? "True" : "False"));
    break;
  }
  case T_LIST_INT:
    buf_adds(b, "[1, 2]");
    break;
  case T_LIST_STR:
    buf_addf(b, "[\"%.*s item 1\", \"%.*s item 2\"]", (int)f->nlen, f->name,
             (int)f->nlen, f->name);
    break;
  case T_DICT:
    buf_adds(b, "{\"key\": \"value\"}");
    break;
  case T_LITERAL:
    if (as_json) {
      literal_first(&tmp, f);
      json_put_str(b, tmp.data ? tmp.data : "", tmp.len);
    } else {
      literal_first(b, f);
    }
    break;
  default:
    if (as_json) {
      str_value(&tmp, f, p);
      json_put_str(b, tmp.data ? tmp.data : "", tmp.len);
    } else {
      str_value(b, f, p);
    }
  }
  buf_free(&tmp);
}

static int wants_json_object(const struct prompt *p, const struct json *root)
{
  const struct json *rf = json_get(root, "response_format");
  const struct json *t = json_get(rf, "type");
  if (json_streq(t, "json_object") || json_streq(t, "json_schema"))
    return 1;
  return contains(p->all.data, p->all.len, "Outputs will be a JSON object") ||
         contains(p->all.data, p->all.len, "Respond with a JSON object");
}

static void dspy_answer(struct buf *out, struct field *f, size_t nf,
                        const struct prompt *p, const struct json *root,
                        unsigned long long h)
{
  const struct field *score = NULL;
  int as_json = wants_json_object(p, root);
  size_t i;
  for (i = 0; i < nf; i++) {
    unsigned long long fh = fnv1a(h, f[i].name, f[i].nlen);
    if (f[i].kind != T_INT)
      continue;
    if (contains(f[i].name, f[i].nlen, "score")) {
      f[i].ival = 60 + (long)(fh % 36);
      if (score == NULL)
        score = &f[i];
    } else {
      f[i].ival = 1 + (long)(fh % 10);
    }
  }
  if (as_json)
    buf_addc(out, '{');
  for (i = 0; i < nf; i++) {
    if (as_json) {
      if (i)
        buf_adds(out, ", ");
      json_put_str(out, f[i].name, f[i].nlen);
      buf_adds(out, ": ");
      if (!schema_field_answer(out, p, root, f[i].name, f[i].nlen))
        field_value(out, &f[i], p, h, score, 1);
    } else {
      buf_adds(out, "[[ ## ");
      buf_add(out, f[i].name, f[i].nlen);
      buf_adds(out, " ## ]]\n");
      if (!schema_field_answer(out, p, root, f[i].name, f[i].nlen))
        field_value(out, &f[i], p, h, score, 0);
      buf_adds(out, "\n\n");
    }
  }
  buf_adds(out, as_json ? "}" : "[[ ## completed ## ]]");
}

/* "Mock reply to: ", or for another choice "Mock reply #2 to: ". */
static void reply_head(struct buf *out, const struct prompt *p)
{
  if (p->variant)
    buf_addf(out, "Mock reply #%d to: ", p->variant + 1);
  else
    buf_adds(out, "Mock reply to: ");
}

void answer_default(struct buf *out, struct prompt *p, const struct json *root)
{
  struct field f[MAX_FIELDS];
  const char *all = p->all.data ? p->all.data : "";
  /* another choice (n > 1) hashes differently, so its numbers differ too */
  unsigned long long h = fnv1a(FNV_SEED, all, p->all.len) ^
                         (unsigned long long)p->variant * 0x9E3779B97F4A7C15ULL;
  size_t nf = dspy_fields(all, p->all.len, f);
  const struct json *tool, *schema = schema_of(p->route, root, &tool);
  if (tool) {  /* a forced tool's input, whatever the prompt asks */
    p->tool = tool;
    schema_answer(out, schema, p);
  } else if (nf > 0) {
    dspy_answer(out, f, nf, p, root, h);
  } else if (schema && schema->type == JSON_OBJECT) {
    schema_answer(out, schema, p);
  } else if (contains(all, p->all.len, "JSON")) {
    struct buf tmp = {0};
    reply_head(&tmp, p);
    snippet(&tmp, p->last_user, p->last_user_len, 80, 0);
    buf_adds(out, "{\"answer\": ");
    json_put_str(out, tmp.data, tmp.len);
    buf_addc(out, '}');
    buf_free(&tmp);
  } else {
    reply_head(out, p);
    snippet(out, p->last_user, p->last_user_len, 80, 0);
  }
}
