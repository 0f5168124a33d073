/* tools.c: tool calls. A request that offers tools (OpenAI tools[].function,
   Anthropic tools[], Gemini tools[].functionDeclarations) gets them called, as
   its tool_choice / toolConfig allows: the tools the scenario's tool_calls=
   names, with its arguments, or by default the forced tool or else the first
   one, with arguments the schema filler makes valid against its parameters.
   After a tool result (the conversation's last message), an auto choice
   answers with text, so an agent loop ends. tool_turns= scripts an agent
   instead: a script per turn, the turn being how often the model spoke. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum tool_choice { CHOICE_AUTO, CHOICE_ANY, CHOICE_NAMED, CHOICE_NONE };

/* A tool's name and the schema of its arguments, whatever the format. */
static const struct json *tool_name(enum route r, const struct json *t)
{
  return json_get(r == ROUTE_OPENAI ? json_get(t, "function") : t, "name");
}

static const struct json *tool_schema(enum route r, const struct json *t)
{
  const struct json *s;
  if (r == ROUTE_OPENAI)
    return json_get(json_get(t, "function"), "parameters");
  if (r == ROUTE_ANTHROPIC)
    return json_get(t, "input_schema");
  s = json_get(t, "parametersJsonSchema");
  return s ? s : json_get(t, "parameters");
}

/* The i-th declaration of a Gemini tools entry. */
static const struct json *gemini_decls(const struct json *entry)
{
  const struct json *d = json_get(entry, "functionDeclarations");
  d = d ? d : json_get(entry, "function_declarations");
  return d && d->type == JSON_ARRAY ? d->child : NULL;
}

/* The offered tool named n[0..len) (any tool for n == NULL), or NULL. */
static const struct json *find_tool(enum route r, const struct json *root, const char *n,
                                    size_t len)
{
  const struct json *tools = json_get(root, "tools"), *t, *d;
  for (t = tools && tools->type == JSON_ARRAY ? tools->child : NULL; t; t = t->next) {
    for (d = r == ROUTE_GEMINI ? gemini_decls(t) : t; d; d = r == ROUTE_GEMINI ? d->next : NULL) {
      const struct json *name = tool_name(r, d);
      if (n == NULL || (name && name->type == JSON_STRING && name->n == len &&
                        memcmp(name->s, n, len) == 0))
        return d;
    }
  }
  return NULL;
}

/* What tool_choice / toolConfig asks; *want is the forced tool's name. */
static enum tool_choice choice_of(enum route r, const struct json *root, const struct json **want)
{
  const struct json *c, *ty;
  *want = NULL;
  if (r == ROUTE_GEMINI) {
    const struct json *fc = json_get(json_get(root, "toolConfig"), "functionCallingConfig");
    const struct json *allowed = json_get(fc, "allowedFunctionNames");
    c = json_get(fc, "mode");
    if (json_streq(c, "NONE"))
      return CHOICE_NONE;
    if (json_streq(c, "ANY")) {
      *want = allowed && allowed->type == JSON_ARRAY ? allowed->child : NULL;
      return *want ? CHOICE_NAMED : CHOICE_ANY;
    }
    return CHOICE_AUTO;
  }
  c = json_get(root, "tool_choice");
  if (r == ROUTE_OPENAI) {
    if (json_streq(c, "none"))
      return CHOICE_NONE;
    if (json_streq(c, "required"))
      return CHOICE_ANY;
    *want = json_get(json_get(c, "function"), "name");
    return *want ? CHOICE_NAMED : CHOICE_AUTO;
  }
  ty = json_get(c, "type");
  if (json_streq(ty, "none"))
    return CHOICE_NONE;
  if (json_streq(ty, "any"))
    return CHOICE_ANY;
  *want = json_get(c, "name");
  return json_streq(ty, "tool") && *want ? CHOICE_NAMED : CHOICE_AUTO;
}

/* The conversation ends with a tool's result: OpenAI role "tool", an
   Anthropic tool_result block, a Gemini functionResponse part. */
static int after_tool_result(enum route r, const struct json *root)
{
  const struct json *msgs = json_get(root, r == ROUTE_GEMINI ? "contents" : "messages");
  const struct json *m, *last = NULL, *part;
  for (m = msgs && msgs->type == JSON_ARRAY ? msgs->child : NULL; m; m = m->next)
    last = m;
  if (last == NULL)
    return 0;
  if (r == ROUTE_OPENAI)
    return json_streq(json_get(last, "role"), "tool");
  part = json_get(last, r == ROUTE_GEMINI ? "parts" : "content");
  for (part = part && part->type == JSON_ARRAY ? part->child : NULL; part; part = part->next)
    if (r == ROUTE_GEMINI ? json_get(part, "functionResponse") != NULL
                          : json_streq(json_get(part, "type"), "tool_result"))
      return 1;
  return 0;
}

static struct tcall *add_call(struct prompt *p, const char *name, size_t n)
{
  struct tcall *c;
  struct tcall *more = xcalloc((size_t)p->ncalls + 1, sizeof *more);
  if (p->ncalls)
    memcpy(more, p->calls, (size_t)p->ncalls * sizeof *more);
  free(p->calls);
  p->calls = more;
  c = &p->calls[p->ncalls++];
  c->name = xmalloc(n + 1);
  memcpy(c->name, name, n);
  c->name[n] = '\0';
  c->nlen = n;
  return c;
}

void tools_add_call(struct prompt *p, const char *name, size_t n, const struct json *schema)
{
  struct tcall *c = add_call(p, name, n);
  if (schema && schema->type == JSON_OBJECT)
    schema_answer(&c->args, schema, p);
  else
    buf_adds(&c->args, "{}");
}

/* Arguments that are not what the tool asked: for OpenAI (a JSON string)
   text that is not JSON, elsewhere (a JSON object in the body) an object
   without the schema's properties and with one it does not declare. */
static void malform(enum route r, struct buf *args)
{
  if (r == ROUTE_OPENAI) {
    args->len = args->len > 1 ? args->len - 1 : 0;  /* the closing brace cut off */
    buf_adds(args, ",\"");
    return;
  }
  args->len = 0;
  buf_adds(args, "{\"mock_malformed\":true}");
}

/* The end of a call's arguments in s[0..n) (s just after its '('): the ')'
   outside strings and brackets. Returns its offset, or n. */
static size_t args_end(const char *s, size_t n)
{
  size_t i;
  int depth = 0, str = 0;
  for (i = 0; i < n; i++) {
    if (str) {
      if (s[i] == '\\')
        i++;
      else if (s[i] == '"')
        str = 0;
    } else if (s[i] == '"') {
      str = 1;
    } else if (s[i] == '{' || s[i] == '[') {
      depth++;
    } else if (s[i] == '}' || s[i] == ']') {
      depth--;
    } else if (s[i] == ')' && depth == 0) {
      return i;
    }
  }
  return n;
}

static int is_sep(char ch)
{
  return ch == ' ' || ch == '+' || ch == ',' || ch == '\t';
}

int tools_script(const char *s, size_t n, struct prompt *p, char *err, size_t errlen)
{
  size_t i = 0;
  while (i < n) {
    const char *name, *open;
    size_t e;
    struct json_doc d;
    while (i < n && is_sep(s[i]))
      i++;
    if (i == n)
      break;
    name = s + i;
    open = memchr(name, '(', n - i);
    if (open == NULL || open == name) {
      snprintf(err, errlen, "X-Mock-Scenario: tool_calls wants NAME(JSON_ARGS), got '%.*s'",
               (int)(n - i > 64 ? 64 : n - i), name);
      return -1;
    }
    i = (size_t)(open - s) + 1;
    e = i + args_end(s + i, n - i);
    if (e == n) {
      snprintf(err, errlen, "X-Mock-Scenario: tool_calls: no ')' after '%.*s'",
               (int)(open - name > 64 ? 64 : open - name), name);
      return -1;
    }
    if (json_parse(&d, s + i, e - i) != 0 && e > i) {
      snprintf(err, errlen, "X-Mock-Scenario: tool_calls: the arguments of '%.*s' are not JSON",
               (int)(open - name > 64 ? 64 : open - name), name);
      json_free(&d);
      return -1;
    }
    if (e > i && d.root->type != JSON_OBJECT) {
      snprintf(err, errlen, "X-Mock-Scenario: tool_calls: the arguments of '%.*s' are not "
               "an object", (int)(open - name > 64 ? 64 : open - name), name);
      json_free(&d);
      return -1;
    }
    json_free(&d);
    if (p) {
      size_t nlen = (size_t)(open - name);
      int bang = nlen > 1 && name[nlen - 1] == '!';  /* NAME!(ARGS): malformed */
      struct tcall *c = add_call(p, name, nlen - (size_t)bang);
      c->malformed = bang;
      buf_add(&c->args, e > i ? s + i : "{}", e > i ? e - i : 2);
    }
    i = e + 1;
  }
  return 0;
}

int tools_turns_check(const char *s, size_t n, char *err, size_t errlen)
{
  const char *t;
  size_t tn;
  int k;
  for (k = 0; mem_piece(s, n, '|', k, &t, &tn); k++)
    if (tools_script(t, tn, NULL, err, errlen) != 0)
      return -1;
  return 0;
}

/* The default call: the forced tool, else the first offered. */
static int default_call(enum route r, const struct json *root, enum tool_choice ch,
                        const struct json *want, struct prompt *p)
{
  const struct json *t = NULL, *name;
  if (ch == CHOICE_NAMED && want && want->type == JSON_STRING)
    t = find_tool(r, root, want->s, want->n);
  if (t == NULL)
    t = find_tool(r, root, NULL, 0);
  name = tool_name(r, t);
  if (name == NULL || name->type != JSON_STRING)
    return 0;
  tools_add_call(p, name->s, name->n, tool_schema(r, t));
  return 1;
}

int tools_plan(enum route r, const struct json *root, const struct scenario *sc,
               struct prompt *p)
{
  const struct json *want;
  enum tool_choice ch;
  int i;
  char err[160];
  if (find_tool(r, root, NULL, 0) == NULL)
    return 0;
  ch = choice_of(r, root, &want);
  if (sc->tool_turns && ch != CHOICE_NONE) {  /* the script says, turn by turn */
    const char *t;
    size_t tn;
    if (mem_piece(sc->tool_turns, sc->tool_turns_len, '|',
                  prompt_model_turns(r, root), &t, &tn))  /* the turn to script */
      (void)tools_script(t, tn, p, err, sizeof err);
  } else if (ch == CHOICE_NONE || (ch == CHOICE_AUTO && after_tool_result(r, root))) {
    return 0;
  } else if (r == ROUTE_ANTHROPIC && ch != CHOICE_AUTO && !sc->tool_calls &&
             !sc->tool_args_malformed) {
    return 0;  /* Anthropic's forced tool without a script stays structured output (answer.c) */
  } else if (sc->tool_calls) {
    (void)tools_script(sc->tool_calls, sc->tool_calls_len, p, err, sizeof err);
  } else {
    (void)default_call(r, root, ch, want, p);
  }
  for (i = 0; i < p->ncalls; i++)
    if (p->calls[i].malformed || sc->tool_args_malformed)
      malform(r, &p->calls[i].args);
  return p->ncalls;
}

unsigned long long tools_tokens(const struct prompt *p)
{
  size_t n = 0;
  int i;
  for (i = 0; i < p->ncalls; i++)
    n += p->calls[i].nlen + p->calls[i].args.len;
  return token_count(n);
}

void tools_free(struct prompt *p)
{
  int i;
  for (i = 0; i < p->ncalls; i++) {
    free(p->calls[i].name);
    buf_free(&p->calls[i].args);
  }
  free(p->calls);
  p->calls = NULL;
  p->ncalls = 0;
}

void tools_reply(struct buf *b, enum route r, const struct prompt *p, unsigned long long id,
                 unsigned long long ctok)
{
  unsigned long long ptok = token_count(p->all.len);
  int i;
  if (r == ROUTE_ANTHROPIC) {
    buf_addf(b, "{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
    reply_put_model(b, p);
    buf_adds(b, ",\"content\":[");
    for (i = 0; i < p->ncalls; i++) {
      buf_addf(b, "%s{\"type\":\"tool_use\",\"id\":\"toolu_mock_%llu_%d\",\"name\":",
               i ? "," : "", id, i);
      json_put_str(b, p->calls[i].name, p->calls[i].nlen);
      buf_adds(b, ",\"input\":");
      buf_add(b, p->calls[i].args.data, p->calls[i].args.len);
      buf_addc(b, '}');
    }
    buf_adds(b, "],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,");
    reply_anthropic_usage(b, p, ctok, 0);
    buf_addc(b, '}');
  } else if (r == ROUTE_GEMINI) {
    buf_adds(b, "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[");
    tools_gemini_parts(b, p);
    buf_adds(b, "]},\"finishReason\":\"STOP\",\"index\":0}],");
    reply_gemini_usage(b, p, ptok, ctok);
    reply_gemini_end(b, p, id);
  } else {
    buf_addf(b, "{\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion\","
             "\"created\":%lld,\"model\":", id, (long long)time(NULL));
    reply_put_model(b, p);
    buf_adds(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
             "\"tool_calls\":[");
    for (i = 0; i < p->ncalls; i++) {
      buf_addf(b, "%s{\"id\":\"call_mock_%llu_%d\",\"type\":\"function\",\"function\":{\"name\":",
               i ? "," : "", id, i);
      json_put_str(b, p->calls[i].name, p->calls[i].nlen);
      buf_adds(b, ",\"arguments\":");
      json_put_str(b, p->calls[i].args.data ? p->calls[i].args.data : "", p->calls[i].args.len);
      buf_adds(b, "}}");
    }
    buf_adds(b, "],\"refusal\":null,\"annotations\":[]},\"logprobs\":null,"
             "\"finish_reason\":\"tool_calls\"}],");
    reply_openai_usage(b, p, ptok, ctok);
    buf_adds(b, ",\"service_tier\":\"default\",\"system_fingerprint\":\"" OPENAI_FINGERPRINT "\"}");
  }
}

void tools_gemini_parts(struct buf *b, const struct prompt *p)
{
  int i;
  for (i = 0; i < p->ncalls; i++) {
    buf_adds(b, i ? ",{\"functionCall\":{\"name\":" : "{\"functionCall\":{\"name\":");
    json_put_str(b, p->calls[i].name, p->calls[i].nlen);
    buf_adds(b, ",\"args\":");
    buf_add(b, p->calls[i].args.data, p->calls[i].args.len);
    buf_adds(b, "}}");
  }
}
