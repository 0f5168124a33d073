/* schema.c: structured outputs. A request may pin the reply to a JSON schema
   (OpenAI response_format json_schema, Gemini responseJsonSchema or
   responseSchema, an Anthropic tool forced by tool_choice); mockllm then
   answers a value valid against it: every property, each array with its
   minimum of items, enums and consts as given, numbers within their bounds,
   $ref resolved against $defs or definitions. */
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 12          /* deeper (or recursive) schemas end in null */

struct walk {
  const struct json *root;    /* the schema $refs point into */
  const struct prompt *p;
  struct buf *out;
};

/* A JSON value written back as JSON text. */
static void put_json(struct buf *b, const struct json *v)
{
  const struct json *c;
  switch (v->type) {
  case JSON_NULL: buf_adds(b, "null"); return;
  case JSON_TRUE: buf_adds(b, "true"); return;
  case JSON_FALSE: buf_adds(b, "false"); return;
  case JSON_NUMBER: buf_add(b, v->s, v->n); return;
  case JSON_STRING: json_put_str(b, v->s, v->n); return;
  default: break;
  }
  buf_addc(b, v->type == JSON_ARRAY ? '[' : '{');
  for (c = v->child; c; c = c->next) {
    if (c != v->child)
      buf_addc(b, ',');
    if (v->type == JSON_OBJECT) {
      json_put_str(b, c->key, c->keylen);
      buf_addc(b, ':');
    }
    put_json(b, c);
  }
  buf_addc(b, v->type == JSON_ARRAY ? ']' : '}');
}

static double number_of(const struct json *v, double dflt)
{
  char tmp[64];
  if (v == NULL || v->type != JSON_NUMBER || v->n >= sizeof tmp)
    return dflt;
  memcpy(tmp, v->s, v->n);
  tmp[v->n] = '\0';
  return strtod(tmp, NULL);
}

/* "#/$defs/Name" or "#/definitions/Name", looked up in the root schema. */
static const struct json *resolve(const struct walk *w, const struct json *ref)
{
  static const char *const homes[] = {"#/$defs/", "#/definitions/"};
  static const char *const keys[] = {"$defs", "definitions"};
  size_t i;
  for (i = 0; i < 2; i++) {
    size_t k = strlen(homes[i]);
    const struct json *defs = json_get(w->root, keys[i]), *d;
    if (ref->n <= k || memcmp(ref->s, homes[i], k) != 0)
      continue;
    for (d = defs ? defs->child : NULL; d; d = d->next)
      if (d->keylen == ref->n - k && memcmp(d->key, ref->s + k, d->keylen) == 0)
        return d;
  }
  return NULL;
}

/* The schema's type, lower-cased (Gemini writes "STRING"); of a list of
   types the first that is not "null". */
static void type_of(const struct json *s, char *ty, size_t len)
{
  const struct json *t = json_get(s, "type");
  size_t i;
  ty[0] = '\0';
  if (t && t->type == JSON_ARRAY) {
    for (t = t->child; t && json_streq(t, "null"); t = t->next) {}
    if (t == NULL)
      t = json_get(s, "type")->child;
  }
  if (t == NULL || t->type != JSON_STRING || t->n >= len)
    return;
  for (i = 0; i < t->n; i++)
    ty[i] = (char)(t->s[i] >= 'A' && t->s[i] <= 'Z' ? t->s[i] | 0x20 : t->s[i]);
  ty[t->n] = '\0';
}

/* "Mock NAME: " and the first 40 bytes of the user's last line of text. */
static void string_value(const struct walk *w, const char *name, size_t nlen)
{
  struct buf tmp = {0};
  const char *u = w->p->last_user;
  size_t n = 0, max = w->p->last_user_len < 40 ? w->p->last_user_len : 40;
  while (n < max && u[n] != '\n')
    n++;
  while (n > 0 && n < w->p->last_user_len && ((unsigned char)u[n] & 0xC0) == 0x80)
    n--;  /* not inside a UTF-8 character */
  buf_adds(&tmp, "Mock ");
  buf_add(&tmp, nlen ? name : "value", nlen ? nlen : 5);
  if (w->p->variant)
    buf_addf(&tmp, " #%d", w->p->variant + 1);  /* another choice's */
  buf_adds(&tmp, ": ");
  buf_add(&tmp, u, n);
  json_put_str(w->out, tmp.data, tmp.len);
  buf_free(&tmp);
}

static void value(const struct walk *w, const struct json *s, const char *name, size_t nlen,
                  int depth);

static void object_value(const struct walk *w, const struct json *s, int depth)
{
  const struct json *m, *props = json_get(s, "properties");
  buf_addc(w->out, '{');
  for (m = props && props->type == JSON_OBJECT ? props->child : NULL; m; m = m->next) {
    if (m != props->child)
      buf_addc(w->out, ',');
    json_put_str(w->out, m->key, m->keylen);
    buf_addc(w->out, ':');
    value(w, m, m->key, m->keylen, depth + 1);
  }
  buf_addc(w->out, '}');
}

static void array_value(const struct walk *w, const struct json *s, const char *name,
                        size_t nlen, int depth)
{
  const struct json *items = json_get(s, "items");
  long count = (long)number_of(json_get(s, "minItems"), 1), i;
  long most = (long)number_of(json_get(s, "maxItems"), 1000);
  if (count > most)
    count = most;
  if (count > 100)
    count = 100;
  buf_addc(w->out, '[');
  for (i = 0; items && items->type == JSON_OBJECT && i < count; i++) {
    if (i)
      buf_addc(w->out, ',');
    value(w, items, name, nlen, depth + 1);
  }
  buf_addc(w->out, ']');
}

/* A number within minimum/maximum (exclusive bounds moved by one). */
static void number_value(const struct walk *w, const struct json *s, int integer,
                         const char *name, size_t nlen)
{
  unsigned h = 2166136261u;
  size_t i;
  double v, lo, hi;
  for (i = 0; i < nlen; i++)
    h = (h ^ (unsigned char)name[i]) * 16777619u;
  v = integer ? 1 + h % 10 : 0.75;
  lo = number_of(json_get(s, "minimum"), number_of(json_get(s, "exclusiveMinimum"), -1e300) + 1);
  hi = number_of(json_get(s, "maximum"), number_of(json_get(s, "exclusiveMaximum"), 1e300) - 1);
  if (v < lo)
    v = lo;
  if (v > hi)
    v = hi;
  if (integer)
    buf_addf(w->out, "%.0f", v);
  else
    buf_addf(w->out, "%g", v);
}

static void value(const struct walk *w, const struct json *s, const char *name, size_t nlen,
                  int depth)
{
  const struct json *v;
  char ty[16];
  if (depth > MAX_DEPTH || s == NULL || s->type != JSON_OBJECT) {
    buf_adds(w->out, "null");
    return;
  }
  if ((v = json_get(s, "$ref")) != NULL && v->type == JSON_STRING) {
    value(w, resolve(w, v), name, nlen, depth + 1);
    return;
  }
  if ((v = json_get(s, "const")) != NULL) {
    put_json(w->out, v);
    return;
  }
  if ((v = json_get(s, "enum")) != NULL && v->type == JSON_ARRAY && v->child) {
    put_json(w->out, v->child);
    return;
  }
  if (((v = json_get(s, "anyOf")) != NULL || (v = json_get(s, "oneOf")) != NULL ||
       (v = json_get(s, "allOf")) != NULL) && v->type == JSON_ARRAY && v->child) {
    value(w, v->child, name, nlen, depth + 1);
    return;
  }
  type_of(s, ty, sizeof ty);
  if (strcmp(ty, "object") == 0 || (ty[0] == '\0' && json_get(s, "properties")))
    object_value(w, s, depth);
  else if (strcmp(ty, "array") == 0)
    array_value(w, s, name, nlen, depth);
  else if (strcmp(ty, "integer") == 0 || strcmp(ty, "number") == 0)
    number_value(w, s, ty[0] == 'i', name, nlen);
  else if (strcmp(ty, "boolean") == 0)
    buf_adds(w->out, "true");
  else if (strcmp(ty, "null") == 0)
    buf_adds(w->out, "null");
  else
    string_value(w, name, nlen);
}

void schema_answer(struct buf *out, const struct json *schema, const struct prompt *p)
{
  struct walk w;
  w.root = schema;
  w.p = p;
  w.out = out;
  value(&w, schema, "", 0, 0);
}

/* The tool an Anthropic tool_choice forces: {"type":"tool","name":N}, or the
   first tool for {"type":"any"}. */
static const struct json *forced_tool(const struct json *root)
{
  const struct json *choice = json_get(root, "tool_choice"), *tools = json_get(root, "tools"), *t;
  const struct json *want = json_get(choice, "name");
  if (tools == NULL || tools->type != JSON_ARRAY || tools->child == NULL)
    return NULL;
  if (json_streq(json_get(choice, "type"), "any"))
    return tools->child;
  if (!json_streq(json_get(choice, "type"), "tool") || want == NULL || want->type != JSON_STRING)
    return NULL;
  for (t = tools->child; t; t = t->next) {
    const struct json *n = json_get(t, "name");
    if (n && n->type == JSON_STRING && n->n == want->n && memcmp(n->s, want->s, n->n) == 0)
      return t;
  }
  return NULL;
}

const struct json *schema_of(enum route r, const struct json *root, const struct json **tool)
{
  const struct json *gc = json_get(root, "generationConfig"), *s;
  *tool = NULL;
  if (r == ROUTE_ANTHROPIC) {
    *tool = forced_tool(root);
    return *tool ? json_get(*tool, "input_schema") : NULL;
  }
  if (r == ROUTE_GEMINI) {
    s = json_get(gc, "responseJsonSchema");
    if (s == NULL)
      s = json_get(gc, "response_json_schema");
    return s ? s : json_get(gc, "responseSchema");
  }
  return json_get(json_get(json_get(root, "response_format"), "json_schema"), "schema");
}

/* Whether a schema describes an object with properties somewhere (a record:
   pydantic's model, or a list of them), directly or through a $ref. */
static int holds_record(const struct json *s, int depth)
{
  const struct json *c;
  if (s == NULL || depth > MAX_DEPTH)
    return 0;
  if (s->type == JSON_OBJECT && (json_get(s, "properties") || json_get(s, "$ref")))
    return 1;
  for (c = s->type == JSON_OBJECT || s->type == JSON_ARRAY ? s->child : NULL; c; c = c->next)
    if (holds_record(c, depth + 1))
      return 1;
  return 0;
}

int schema_field_answer(struct buf *out, const struct prompt *p, const struct json *root,
                        const char *name, size_t nlen)
{
  static const char note[] = "}        # note: the value you produce must adhere to the JSON schema: ";
  const struct json *tool, *s = schema_of(p->route, root, &tool), *m;
  const char *all = p->all.data, *at, *eol;
  struct buf pat = {0};
  struct json_doc d;
  int done = 0;
  /* the request's structured output (the JSON adapter): the field's property */
  for (m = json_get(s, "properties") ? json_get(s, "properties")->child : NULL; m; m = m->next)
    if (m->keylen == nlen && memcmp(m->key, name, nlen) == 0) {
      if (!holds_record(m, 0))
        return 0;
      schema_answer(out, m, p);
      return 1;
    }
  /* else the chat structure's note: "{name}        # note: ... JSON schema: {...}" */
  if (all == NULL)
    return 0;
  buf_addc(&pat, '{');
  buf_add(&pat, name, nlen);
  buf_adds(&pat, note);
  at = mem_find(all, p->all.len, pat.data, pat.len);
  buf_free(&pat);
  if (at == NULL)
    return 0;
  at += nlen + sizeof note;   /* '{', the name, then the note (sizeof counts its NUL) */
  eol = memchr(at, '\n', p->all.len - (size_t)(at - all));
  if (eol == NULL)
    eol = all + p->all.len;
  if (json_parse(&d, at, (size_t)(eol - at)) == 0 && d.root->type == JSON_OBJECT &&
      holds_record(d.root, 0)) {
    schema_answer(out, d.root, p);
    done = 1;
  }
  json_free(&d);
  return done;
}
