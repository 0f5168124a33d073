/* responses.c: OpenAI's Responses API, POST /v1/responses. The request is
   read as the real API reads it (input items, instructions,
   max_output_tokens, tools, text.format) and refused where it refuses: the
   Chat Completions parameters that moved (messages, max_tokens,
   response_format), chat-shaped tools, a content part of the wrong type. The
   answer is a response object with output items (reasoning for a thinking
   model, then a message or function calls), usage with cached and reasoning
   tokens; streamed, the same as response.* events. */
#include "apis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_OUTPUT_TOKENS 16          /* the API's minimum max_output_tokens */
#define REFUSAL "I'm sorry, but I cannot help with that request."

/* What the answer is made of, read from the request. */
struct rsp {
  const struct json *root;
  struct prompt p;
  struct buf text;                    /* the message's text (no calls) */
  unsigned long long id, ctok, max_out;
  int incomplete;                     /* cut at max_output_tokens */
  int refused;                        /* fault=blocked: a refusal part */
  long long created;
  unsigned seq;                       /* the next event's sequence_number */
};

static int refuse(struct api_answer *a, const char *param, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static int refuse(struct api_answer *a, const char *param, const char *fmt, ...)
{
  char msg[300];
  va_list ap;
  struct error_extra x = {NULL, param, NULL, NULL};
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  a->status = 400;
  a->body.len = 0;
  reply_error_extra(&a->body, ROUTE_OPENAI, 400, msg, &x);
  return 1;
}

static int is_key(const struct json *m, const char *k)
{
  return m->keylen == strlen(k) && memcmp(m->key, k, m->keylen) == 0;
}

/* Chat Completions parameters the Responses API refuses, and where they went. */
static int moved_params(struct api_answer *a, const struct json *root)
{
  static const char *const moved[][2] = {
    {"messages", "input"}, {"max_tokens", "max_output_tokens"},
    {"max_completion_tokens", "max_output_tokens"}, {"response_format", "text.format"},
    {"n", NULL}, {"stop", NULL},
  };
  const struct json *m;
  size_t i;
  for (m = root->child; m; m = m->next)
    for (i = 0; i < sizeof moved / sizeof *moved; i++)
      if (is_key(m, moved[i][0])) {
        if (moved[i][1])
          return refuse(a, moved[i][0], "Unsupported parameter: '%s'. In the Responses API, "
                        "this parameter has moved to '%s'.", moved[i][0], moved[i][1]);
        return refuse(a, moved[i][0], "Unsupported parameter: '%s'.", moved[i][0]);
      }
  return 0;
}

static int part_ok(const struct json *part, int assistant)
{
  const struct json *t = json_get(part, "type");
  if (assistant)
    return json_streq(t, "output_text") || json_streq(t, "refusal");
  return json_streq(t, "input_text") || json_streq(t, "input_image") ||
         json_streq(t, "input_file") || json_streq(t, "input_audio");
}

/* One input item: a message (role + content), a function_call, a
   function_call_output or a reasoning item. */
static int check_item(struct api_answer *a, const struct json *it, int i)
{
  const struct json *type = json_get(it, "type"), *role = json_get(it, "role"), *c, *part;
  char param[64];
  int j = 0, assistant;
  if (it->type != JSON_OBJECT)
    return refuse(a, "input", "Invalid type for 'input[%d]': expected an object.", i);
  if (json_streq(type, "function_call")) {
    if (json_get(it, "call_id") == NULL || json_get(it, "name") == NULL ||
        json_get(it, "arguments") == NULL || json_get(it, "arguments")->type != JSON_STRING)
      return refuse(a, "input", "Missing required parameter: 'input[%d].call_id', 'name' or "
                    "'arguments' (a string).", i);
    return 0;
  }
  if (json_streq(type, "function_call_output")) {
    const struct json *out = json_get(it, "output");
    if (json_get(it, "call_id") == NULL || out == NULL || out->type != JSON_STRING)
      return refuse(a, "input", "Missing required parameter: 'input[%d].call_id' or "
                    "'output' (a string).", i);
    return 0;
  }
  if (json_streq(type, "reasoning"))
    return 0;
  if (type && !json_streq(type, "message"))
    return refuse(a, "input", "Invalid value for 'input[%d].type'.", i);
  if (!(json_streq(role, "user") || json_streq(role, "assistant") || json_streq(role, "system") ||
        json_streq(role, "developer")))
    return refuse(a, "input", "Invalid value for 'input[%d].role': expected one of 'user', "
                  "'assistant', 'system' or 'developer'.", i);
  c = json_get(it, "content");
  if (c && c->type == JSON_STRING)
    return 0;
  if (c == NULL || c->type != JSON_ARRAY)
    return refuse(a, "input", "Missing required parameter: 'input[%d].content'.", i);
  assistant = json_streq(role, "assistant");
  for (part = c->child; part; part = part->next, j++)
    if (!part_ok(part, assistant)) {
      snprintf(param, sizeof param, "input[%d].content[%d]", i, j);
      return refuse(a, param, "Invalid value for '%s.type': %s content takes %s.", param,
                    assistant ? "an assistant message's" : "an input message's",
                    assistant ? "'output_text' or 'refusal'"
                              : "'input_text', 'input_image', 'input_file' or 'input_audio'");
    }
  return 0;
}

static int check_tools(struct api_answer *a, const struct json *tools)
{
  const struct json *t;
  int i = 0;
  if (tools == NULL)
    return 0;
  if (tools->type != JSON_ARRAY)
    return refuse(a, "tools", "Invalid type for 'tools': expected an array.");
  for (t = tools->child; t; t = t->next, i++) {
    const struct json *name = json_get(t, "name");
    if (!json_streq(json_get(t, "type"), "function"))
      continue;  /* built-in tools (web_search, ...) are not called by mockllm */
    if (name == NULL || name->type != JSON_STRING)
      return refuse(a, "tools", "Missing required parameter: 'tools[%d].name'.", i);
  }
  return 0;
}

/* The strict checks; 1 when a refusal was written. */
static int check_request(struct api_answer *a, const struct json *root, unsigned long long *max_out)
{
  const struct json *model = json_get(root, "model"), *input = json_get(root, "input"), *v, *it;
  int i = 0;
  char *end;
  if (model == NULL || model->type != JSON_STRING)
    return refuse(a, "model", "Missing required parameter: 'model'.");
  if (moved_params(a, root))
    return 1;
  if (input == NULL || (input->type != JSON_STRING && input->type != JSON_ARRAY))
    return refuse(a, "input", "Missing required parameter: 'input'.");
  if (input->type == JSON_ARRAY)
    for (it = input->child; it; it = it->next)
      if (check_item(a, it, i++))
        return 1;
  v = json_get(root, "instructions");
  if (v && v->type != JSON_STRING && v->type != JSON_NULL)
    return refuse(a, "instructions", "Invalid type for 'instructions': expected a string.");
  v = json_get(root, "max_output_tokens");
  if (v && v->type != JSON_NULL) {
    long long m = v->type == JSON_NUMBER ? strtoll(v->s, &end, 10) : -1;
    if (v->type != JSON_NUMBER || end != v->s + v->n || m < MIN_OUTPUT_TOKENS)
      return refuse(a, "max_output_tokens", "Invalid 'max_output_tokens': integer below minimum "
                    "value. Expected a value >= %d.", MIN_OUTPUT_TOKENS);
    *max_out = (unsigned long long)m;
  }
  v = json_get(json_get(root, "text"), "format");
  if (v && json_streq(json_get(v, "type"), "json_schema") &&
      (json_get(v, "name") == NULL || json_get(v, "schema") == NULL))
    return refuse(a, "text.format", "Missing required parameter: 'text.format.name' or "
                  "'text.format.schema'.");
  return check_tools(a, json_get(root, "tools"));
}

/* The text of a content: a string, or its parts' texts joined by '\n'. */
static void content_of(const struct json *c, struct buf *out)
{
  const struct json *part;
  out->len = 0;
  if (c && c->type == JSON_STRING) {
    buf_add(out, c->s, c->n);
    return;
  }
  for (part = c ? c->child : NULL; part; part = part->next) {
    const struct json *t = json_get(part, "text");
    if (t && t->type == JSON_STRING) {
      if (out->len)
        buf_addc(out, '\n');
      buf_add(out, t->s, t->n);
    }
  }
}

static void add_all(struct prompt *p, const char *s, size_t n)
{
  if (p->all.len)
    buf_addc(&p->all, '\n');
  buf_add(&p->all, s, n);
}

/* The prompt: instructions, then every input item's text; the last user
   message is what the default reply quotes. */
static void read_prompt(struct rsp *r)
{
  const struct json *root = r->root, *input = json_get(root, "input"), *v, *it;
  struct buf tmp = {0};
  memset(&r->p, 0, sizeof r->p);
  r->p.route = ROUTE_OPENAI;
  r->p.last_user = "";
  v = json_get(root, "model");
  r->p.model = v->s;
  r->p.model_len = v->n;
  v = json_get(root, "instructions");
  if (v && v->type == JSON_STRING)
    add_all(&r->p, v->s, v->n);
  if (input->type == JSON_STRING) {
    add_all(&r->p, input->s, input->n);
    buf_add(&r->p.last_user_buf, input->s, input->n);
  }
  for (it = input->type == JSON_ARRAY ? input->child : NULL; it; it = it->next) {
    const struct json *out = json_get(it, "output");
    if (out && out->type == JSON_STRING) {
      add_all(&r->p, out->s, out->n);  /* a tool's result */
      continue;
    }
    content_of(json_get(it, "content"), &tmp);
    add_all(&r->p, tmp.data ? tmp.data : "", tmp.len);
    if (json_streq(json_get(it, "role"), "user")) {
      r->p.last_user_buf.len = 0;
      buf_add(&r->p.last_user_buf, tmp.data ? tmp.data : "", tmp.len);
    }
  }
  buf_free(&tmp);
  r->p.last_user = r->p.last_user_buf.data ? r->p.last_user_buf.data : "";
  r->p.last_user_len = r->p.last_user_buf.len;
}

/* Whether the reply calls tools: function tools offered, tool_choice not
   "none", and the input does not end with a tool's result (the model then
   answers it), unless tool_choice insists. */
static int wants_calls(const struct json *root)
{
  const struct json *tools = json_get(root, "tools"), *choice = json_get(root, "tool_choice");
  const struct json *input = json_get(root, "input"), *it, *last = NULL;
  if (tools == NULL || tools->type != JSON_ARRAY || tools->child == NULL ||
      json_streq(choice, "none"))
    return 0;
  for (it = input->type == JSON_ARRAY ? input->child : NULL; it; it = it->next)
    last = it;
  if (last && json_streq(json_get(last, "type"), "function_call_output"))
    return choice && choice->type == JSON_OBJECT;
  return 1;
}

/* The function tool a default call goes to: the one tool_choice names, else
   the first. */
static const struct json *default_tool(const struct json *root)
{
  const struct json *choice = json_get(root, "tool_choice"), *t;
  const struct json *want = choice && choice->type == JSON_OBJECT ? json_get(choice, "name") : NULL;
  for (t = json_get(root, "tools")->child; t; t = t->next) {
    const struct json *name = json_get(t, "name");
    if (!json_streq(json_get(t, "type"), "function") || name == NULL || name->type != JSON_STRING)
      continue;
    if (want == NULL || (want->type == JSON_STRING && want->n == name->n &&
                         memcmp(want->s, name->s, name->n) == 0))
      return t;
  }
  return NULL;
}

/* The calls: the scenario's tool_calls= script, else one call to the default
   tool with arguments valid against its parameters (as the chat routes do). */
static void plan_calls(struct rsp *r, const struct scenario *sc)
{
  const struct json *tool, *name;
  char err[160];
  if (!wants_calls(r->root))
    return;
  if (sc->tool_calls) {
    (void)tools_script(sc->tool_calls, sc->tool_calls_len, &r->p, err, sizeof err);
    return;
  }
  tool = default_tool(r->root);
  if (tool == NULL)
    return;
  name = json_get(tool, "name");
  tools_add_call(&r->p, name->s, name->n, json_get(tool, "parameters"));
}

/* max_output_tokens cuts the text (at a character boundary) and leaves the
   response incomplete. */
static void honour_max(struct rsp *r)
{
  struct params pa = {r->max_out, NULL, 1};
  r->incomplete = params_cut(&pa, &r->text);
}

static void put_usage(struct buf *b, const struct rsp *r)
{
  unsigned long long in = token_count(r->p.all.len), think = reply_thoughts(&r->p, r->ctok);
  enum usage_mode m = r->p.usage;
  buf_adds(b, "\"usage\":{\"input_tokens\":");
  reply_put_count(b, m, in);
  buf_adds(b, ",\"input_tokens_details\":{\"cached_tokens\":");
  reply_put_count(b, m, r->p.cached);
  buf_adds(b, "},\"output_tokens\":");
  reply_put_count(b, m, r->ctok + think);
  buf_adds(b, ",\"output_tokens_details\":{\"reasoning_tokens\":");
  reply_put_count(b, m, think);
  buf_adds(b, "},\"total_tokens\":");
  reply_put_count(b, m, in + r->ctok + think);
  buf_addc(b, '}');
}

static void put_call(struct buf *b, const struct rsp *r, int i, int done)
{
  const struct tcall *c = &r->p.calls[i];
  buf_addf(b, "{\"type\":\"function_call\",\"id\":\"fc_mock_%llu_%d\",\"call_id\":"
           "\"call_mock_%llu_%d\",\"name\":", r->id, i, r->id, i);
  json_put_str(b, c->name, c->nlen);
  buf_adds(b, ",\"arguments\":");
  if (done)
    json_put_str(b, c->args.data ? c->args.data : "", c->args.len);
  else
    buf_adds(b, "\"\"");
  buf_addf(b, ",\"status\":\"%s\"}", done ? "completed" : "in_progress");
}

static void put_part(struct buf *b, const struct rsp *r, int done)
{
  if (r->refused) {
    buf_adds(b, "{\"type\":\"refusal\",\"refusal\":");
    json_put_str(b, done ? REFUSAL : "", done ? sizeof REFUSAL - 1 : 0);
    buf_addc(b, '}');
    return;
  }
  buf_adds(b, "{\"type\":\"output_text\",\"text\":");
  json_put_str(b, done && r->text.data ? r->text.data : "", done ? r->text.len : 0);
  buf_adds(b, ",\"annotations\":[]}");
}

static void put_message(struct buf *b, const struct rsp *r, int done)
{
  buf_addf(b, "{\"type\":\"message\",\"id\":\"msg_mock_%llu\",\"status\":\"%s\","
           "\"role\":\"assistant\",\"content\":[", r->id,
           done ? (r->incomplete ? "incomplete" : "completed") : "in_progress");
  if (done)
    put_part(b, r, 1);
  buf_adds(b, "]}");
}

static void put_reasoning(struct buf *b, const struct rsp *r)
{
  buf_addf(b, "{\"type\":\"reasoning\",\"id\":\"rs_mock_%llu\",\"summary\":[]}", r->id);
}

/* The output items: reasoning for a thinking model, then the calls or the message. */
static void put_output(struct buf *b, const struct rsp *r)
{
  int i, n = 0;
  buf_addc(b, '[');
  if (r->p.thinking) {
    put_reasoning(b, r);
    n++;
  }
  for (i = 0; i < r->p.ncalls; i++) {
    if (n++)
      buf_addc(b, ',');
    put_call(b, r, i, 1);
  }
  if (r->p.ncalls == 0) {
    if (n)
      buf_addc(b, ',');
    put_message(b, r, 1);
  }
  buf_addc(b, ']');
}

static const char *status_of(const struct rsp *r, int done)
{
  return !done ? "in_progress" : r->incomplete ? "incomplete" : "completed";
}

/* The response object; done: as it ends (output, usage), else as it starts. */
static void put_response(struct buf *b, const struct rsp *r, int done)
{
  const struct json *v = json_get(r->root, "instructions");
  buf_addf(b, "{\"id\":\"resp_mock_%llu\",\"object\":\"response\",\"created_at\":%lld,"
           "\"status\":\"%s\",\"error\":null,\"incomplete_details\":", r->id, r->created,
           status_of(r, done));
  buf_adds(b, done && r->incomplete ? "{\"reason\":\"max_output_tokens\"}" : "null");
  buf_adds(b, ",\"instructions\":");
  if (v && v->type == JSON_STRING)
    json_put_str(b, v->s, v->n);
  else
    buf_adds(b, "null");
  if (r->max_out)
    buf_addf(b, ",\"max_output_tokens\":%llu", r->max_out);
  else
    buf_adds(b, ",\"max_output_tokens\":null");
  buf_adds(b, ",\"model\":");
  reply_put_model(b, &r->p);
  buf_adds(b, ",\"output\":");
  if (done)
    put_output(b, r);
  else
    buf_adds(b, "[]");
  buf_adds(b, ",\"parallel_tool_calls\":true,\"previous_response_id\":null,\"store\":true,"
           "\"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\",\"tools\":[],"
           "\"truncation\":\"disabled\",");
  if (done)
    put_usage(b, r);
  else
    buf_adds(b, "\"usage\":null");
  buf_adds(b, ",\"metadata\":{}}");
}

/* ---- streaming ---------------------------------------------------------- */

/* "event: TYPE\ndata: {"type":"TYPE","sequence_number":N," — the caller
   writes the rest of the object, then ev_end closes it. */
static void ev_begin(struct events *ev, struct rsp *r, const char *type)
{
  buf_addf(&ev->data, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%u,", type, type,
           r->seq++);
}

static void ev_end(struct events *ev)
{
  buf_adds(&ev->data, "}\n\n");
  events_mark(ev);
}

static void ev_item(struct events *ev, struct rsp *r, const char *type, int index, int done,
                    int call)
{
  ev_begin(ev, r, type);
  buf_addf(&ev->data, "\"output_index\":%d,\"item\":", index);
  if (call >= 0)
    put_call(&ev->data, r, call, done);
  else
    put_message(&ev->data, r, done);
  ev_end(ev);
}

/* The deltas of s[0..n) as `type` events of item `item_id`; returns 0 when
   o's scripted fault ends the stream after them (nothing follows). */
static int deltas(struct events *ev, struct rsp *r, const char *type, const char *item_id,
                  int index, const char *s, size_t n, const struct stream_opts *o)
{
  struct pieces ps;
  const char *piece;
  size_t len;
  int content = strcmp(type, "response.output_text.delta") == 0;
  pieces_init(&ps, s, n, o);
  while (pieces_next(&ps, &piece, &len)) {
    ev_begin(ev, r, type);
    buf_addf(&ev->data, "\"item_id\":\"%s\",\"output_index\":%d,", item_id, index);
    if (content)
      buf_adds(&ev->data, "\"content_index\":0,");
    buf_adds(&ev->data, "\"delta\":");
    json_put_str(&ev->data, piece, len);
    ev_end(ev);
  }
  if (o->end == STREAM_END_NORMAL)
    return 1;
  if (o->end == STREAM_END_ERROR) {
    ev_begin(ev, r, "error");
    buf_adds(&ev->data, "\"code\":\"server_error\",\"message\":\"mock: scripted stream "
             "error\",\"param\":null");
    ev_end(ev);
  }
  return 0;
}

static int stream_message(struct events *ev, struct rsp *r, int index,
                          const struct stream_opts *o)
{
  char item[48];
  snprintf(item, sizeof item, "msg_mock_%llu", r->id);
  ev_item(ev, r, "response.output_item.added", index, 0, -1);
  ev_begin(ev, r, "response.content_part.added");
  buf_addf(&ev->data, "\"item_id\":\"%s\",\"output_index\":%d,\"content_index\":0,\"part\":",
           item, index);
  put_part(&ev->data, r, 0);
  ev_end(ev);
  if (r->refused) {
    ev_begin(ev, r, "response.refusal.done");
    buf_addf(&ev->data, "\"item_id\":\"%s\",\"output_index\":%d,\"content_index\":0,"
             "\"refusal\":", item, index);
    json_put_str(&ev->data, REFUSAL, sizeof REFUSAL - 1);
    ev_end(ev);
  } else {
    if (!deltas(ev, r, "response.output_text.delta", item, index,
                r->text.data ? r->text.data : "", r->text.len, o))
      return 0;
    ev_begin(ev, r, "response.output_text.done");
    buf_addf(&ev->data, "\"item_id\":\"%s\",\"output_index\":%d,\"content_index\":0,\"text\":",
             item, index);
    json_put_str(&ev->data, r->text.data ? r->text.data : "", r->text.len);
    ev_end(ev);
  }
  ev_begin(ev, r, "response.content_part.done");
  buf_addf(&ev->data, "\"item_id\":\"%s\",\"output_index\":%d,\"content_index\":0,\"part\":",
           item, index);
  put_part(&ev->data, r, 1);
  ev_end(ev);
  ev_item(ev, r, "response.output_item.done", index, 1, -1);
  return 1;
}

static int stream_call(struct events *ev, struct rsp *r, int i, int index,
                       const struct stream_opts *o)
{
  char item[48];
  const struct tcall *c = &r->p.calls[i];
  snprintf(item, sizeof item, "fc_mock_%llu_%d", r->id, i);
  ev_item(ev, r, "response.output_item.added", index, 0, i);
  if (!deltas(ev, r, "response.function_call_arguments.delta", item, index,
              c->args.data ? c->args.data : "", c->args.len, o))
    return 0;
  ev_begin(ev, r, "response.function_call_arguments.done");
  buf_addf(&ev->data, "\"item_id\":\"%s\",\"output_index\":%d,\"arguments\":", item, index);
  json_put_str(&ev->data, c->args.data ? c->args.data : "", c->args.len);
  ev_end(ev);
  ev_item(ev, r, "response.output_item.done", index, 1, i);
  return 1;
}

static void stream(struct events *ev, struct rsp *r, enum stream_end end)
{
  struct stream_opts o = {0, 0, end};
  int index = 0, i;
  ev_begin(ev, r, "response.created");
  buf_adds(&ev->data, "\"response\":");
  put_response(&ev->data, r, 0);
  ev_end(ev);
  ev_begin(ev, r, "response.in_progress");
  buf_adds(&ev->data, "\"response\":");
  put_response(&ev->data, r, 0);
  ev_end(ev);
  if (r->p.thinking) {
    ev_begin(ev, r, "response.output_item.added");
    buf_adds(&ev->data, "\"output_index\":0,\"item\":");
    put_reasoning(&ev->data, r);
    ev_end(ev);
    ev_begin(ev, r, "response.output_item.done");
    buf_adds(&ev->data, "\"output_index\":0,\"item\":");
    put_reasoning(&ev->data, r);
    ev_end(ev);
    index++;
  }
  for (i = 0; i < r->p.ncalls; i++)
    if (!stream_call(ev, r, i, index++, &o))
      return;
  if (r->p.ncalls == 0 && !stream_message(ev, r, index, &o))
    return;
  ev_begin(ev, r, r->incomplete ? "response.incomplete" : "response.completed");
  buf_adds(&ev->data, "\"response\":");
  put_response(&ev->data, r, 1);
  ev_end(ev);
}

void responses_answer(struct api_answer *a, const struct json *root, const struct scenario *sc,
                      int want_stream, enum stream_end end, unsigned long long id)
{
  struct rsp r;
  const struct json *schema;
  memset(&r, 0, sizeof r);
  r.root = root;
  r.id = id;
  r.created = (long long)time(NULL);
  if (root->type != JSON_OBJECT) {
    refuse(a, NULL, "request body must be a JSON object");
    return;
  }
  if (!sc->lenient && check_request(a, root, &r.max_out))
    return;
  if (sc->lenient && (json_get(root, "model") == NULL || json_get(root, "input") == NULL ||
                      json_get(root, "model")->type != JSON_STRING)) {
    refuse(a, "input", "Missing required parameter: 'model' or 'input'.");
    return;
  }
  read_prompt(&r);
  reply_usage_init(&r.p, ROUTE_OPENAI, sc->cached);
  r.p.usage = sc->usage;
  r.refused = sc->fault == FAULT_BLOCKED;
  schema = json_get(json_get(json_get(root, "text"), "format"), "schema");
  if (sc->reply) {
    buf_add(&r.text, sc->reply, sc->reply_len);
  } else if (!r.refused) {
    plan_calls(&r, sc);
    if (r.p.ncalls == 0 && schema && schema->type == JSON_OBJECT)
      schema_answer(&r.text, schema, &r.p);
    else if (r.p.ncalls == 0)
      answer_default(&r.text, &r.p, root);
  }
  if (r.p.ncalls == 0)
    honour_max(&r);
  r.ctok = r.p.ncalls ? tools_tokens(&r.p) : token_count(r.refused ? sizeof REFUSAL - 1 : r.text.len);
  a->status = 200;
  if (want_stream) {
    a->stream = 1;
    stream(&a->ev, &r, end);
  } else {
    put_response(&a->body, &r, 1);
  }
  buf_free(&r.text);
  prompt_free(&r.p);
}
