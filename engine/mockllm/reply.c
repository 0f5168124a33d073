/* reply.c: prompt extraction from, and response bodies for, the three wire formats. */
#include "reply.h"

#include <string.h>
#include <time.h>

static void add_text(struct prompt *p, const char *s, size_t n)
{
  if (p->all.len)
    buf_addc(&p->all, '\n');
  buf_add(&p->all, s, n);
}

/* A content value: a string, or an array of parts carrying "text". Returns the
   text via (*s,*n), joining several parts into tmp. */
static void content_text(const struct json *v, struct buf *tmp, const char **s, size_t *n)
{
  const struct json *part;
  *s = "";
  *n = 0;
  if (v == NULL)
    return;
  if (v->type == JSON_STRING) {
    *s = v->s;
    *n = v->n;
    return;
  }
  if (v->type != JSON_ARRAY)
    return;
  tmp->len = 0;
  for (part = v->child; part; part = part->next) {
    const struct json *t = json_get(part, "text");
    if (part->type == JSON_STRING)
      t = part;
    if (t && t->type == JSON_STRING) {
      if (tmp->len)
        buf_addc(tmp, '\n');
      buf_add(tmp, t->s, t->n);
    }
  }
  *s = tmp->data ? tmp->data : "";
  *n = tmp->len;
}

static void note_message(struct prompt *p, const struct json *content, int is_user)
{
  struct buf tmp = {0};
  const char *s;
  size_t n;
  content_text(content, &tmp, &s, &n);
  add_text(p, s, n);
  if (is_user) {
    buf_free(&p->last_user_buf);
    if (s == tmp.data) {
      p->last_user_buf = tmp;  /* keep the joined parts alive */
      tmp.data = NULL;
    }
    p->last_user = s;
    p->last_user_len = n;
  }
  buf_free(&tmp);
}

static const char *read_messages(const struct json *msgs, const char *rolekey,
                                 const char *partkey, struct prompt *p)
{
  const struct json *m;
  if (msgs && msgs->type == JSON_OBJECT && msgs->child == NULL)
    return "";  /* an empty Lua table encodes as {} */
  if (msgs == NULL || msgs->type != JSON_ARRAY)
    return NULL;
  for (m = msgs->child; m; m = m->next) {
    const struct json *role = json_get(m, rolekey);
    if (m->type != JSON_OBJECT)
      return "each message must be an object";
    note_message(p, json_get(m, partkey), role == NULL || json_streq(role, "user"));
  }
  return "";
}

const char *prompt_read(enum route r, const struct json *root, struct prompt *p)
{
  const struct json *v;
  const char *err;
  memset(p, 0, sizeof *p);
  p->last_user = "";
  if (root->type != JSON_OBJECT)
    return "request body must be a JSON object";
  v = json_get(root, "model");
  if (v && v->type == JSON_STRING) {
    p->model = v->s;
    p->model_len = v->n;
  }
  switch (r) {
  case ROUTE_OPENAI:
    err = read_messages(json_get(root, "messages"), "role", "content", p);
    return err == NULL ? "'messages' is required" : (*err ? err : NULL);
  case ROUTE_ANTHROPIC: {
    struct buf tmp = {0};
    const char *s;
    size_t n;
    content_text(json_get(root, "system"), &tmp, &s, &n);
    if (n)
      add_text(p, s, n);
    buf_free(&tmp);
    err = read_messages(json_get(root, "messages"), "role", "content", p);
    return err == NULL ? "messages: field required" : (*err ? err : NULL);
  }
  case ROUTE_GEMINI: {
    struct buf tmp = {0};
    const char *s;
    size_t n;
    v = json_get(root, "systemInstruction");
    if (v == NULL)
      v = json_get(root, "system_instruction");
    content_text(json_get(v, "parts"), &tmp, &s, &n);
    if (n)
      add_text(p, s, n);
    buf_free(&tmp);
    err = read_messages(json_get(root, "contents"), "role", "parts", p);
    return err == NULL ? "contents is not specified" : (*err ? err : NULL);
  }
  default:
    return NULL;
  }
}

void prompt_free(struct prompt *p)
{
  buf_free(&p->all);
  buf_free(&p->last_user_buf);
}

unsigned long long token_count(size_t bytes)
{
  return bytes == 0 ? 1 : (bytes + 3) / 4;
}

static void put_model(struct buf *b, const struct prompt *p)
{
  if (p->model)
    json_put_str(b, p->model, p->model_len);
  else
    buf_adds(b, "\"mock-model\"");
}

void reply_ok(struct buf *b, enum route r, const struct prompt *p,
              unsigned long long id, const char *text, size_t n,
              unsigned long long ctok, size_t *text_at)
{
  unsigned long long ptok = token_count(p->all.len);
  size_t at;
  switch (r) {
  case ROUTE_ANTHROPIC:
    buf_addf(b, "{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
    put_model(b, p);
    buf_adds(b, ",\"content\":[{\"type\":\"text\",\"text\":");
    at = b->len + 1;
    json_put_str(b, text, n);
    buf_addf(b, "}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
             "\"usage\":{\"input_tokens\":%llu,\"output_tokens\":%llu}}", ptok, ctok);
    break;
  case ROUTE_GEMINI:
    buf_adds(b, "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":");
    at = b->len + 1;
    json_put_str(b, text, n);
    buf_addf(b, "}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":"
             "{\"promptTokenCount\":%llu,\"candidatesTokenCount\":%llu,"
             "\"totalTokenCount\":%llu},\"modelVersion\":", ptok, ctok, ptok + ctok);
    put_model(b, p);
    buf_addc(b, '}');
    break;
  default:
    buf_addf(b, "{\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion\","
             "\"created\":%lld,\"model\":", id, (long long)time(NULL));
    put_model(b, p);
    buf_adds(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    at = b->len + 1;
    json_put_str(b, text, n);
    buf_addf(b, "},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%llu,"
             "\"completion_tokens\":%llu,\"total_tokens\":%llu}}", ptok, ctok, ptok + ctok);
    break;
  }
  if (text_at)
    *text_at = at;
}

static void openai_error(struct buf *b, int status, const char *msg)
{
  const char *type, *code = NULL;
  if (status == 429)
    type = code = "rate_limit_exceeded";
  else if (status == 401) {
    type = "invalid_request_error";
    code = "invalid_api_key";
  } else if (status == 404) {
    type = "invalid_request_error";
    code = "not_found";
  } else if (status >= 500)
    type = "server_error";
  else
    type = "invalid_request_error";
  buf_adds(b, "{\"error\":{\"message\":");
  json_put_str(b, msg, strlen(msg));
  buf_addf(b, ",\"type\":\"%s\",\"param\":null,\"code\":", type);
  if (code)
    buf_addf(b, "\"%s\"}}", code);
  else
    buf_adds(b, "null}}");
}

static void anthropic_error(struct buf *b, int status, const char *msg)
{
  const char *type;
  switch (status) {
  case 401: type = "authentication_error"; break;
  case 403: type = "permission_error"; break;
  case 404: type = "not_found_error"; break;
  case 413: type = "request_too_large"; break;
  case 429: type = "rate_limit_error"; break;
  case 529: type = "overloaded_error"; break;
  default: type = status >= 500 ? "api_error" : "invalid_request_error";
  }
  buf_addf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
  json_put_str(b, msg, strlen(msg));
  buf_adds(b, "}}");
}

static void gemini_error(struct buf *b, int status, const char *msg, long retry_after)
{
  const char *st;
  switch (status) {
  case 400: st = "INVALID_ARGUMENT"; break;
  case 401: st = "UNAUTHENTICATED"; break;
  case 403: st = "PERMISSION_DENIED"; break;
  case 404: st = "NOT_FOUND"; break;
  case 409: st = "ABORTED"; break;
  case 429: st = "RESOURCE_EXHAUSTED"; break;
  case 499: st = "CANCELLED"; break;
  case 500: st = "INTERNAL"; break;
  case 501: st = "UNIMPLEMENTED"; break;
  case 503: st = "UNAVAILABLE"; break;
  case 504: st = "DEADLINE_EXCEEDED"; break;
  default: st = status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
  buf_addf(b, "{\"error\":{\"code\":%d,\"message\":", status);
  json_put_str(b, msg, strlen(msg));
  buf_addf(b, ",\"status\":\"%s\"", st);
  if (status == 429 && retry_after >= 0)
    buf_addf(b, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
             "\"retryDelay\":\"%lds\"}]", retry_after);
  buf_adds(b, "}}");
}

void reply_error(struct buf *b, enum route r, int status, const char *msg,
                 long retry_after)
{
  if (r == ROUTE_ANTHROPIC)
    anthropic_error(b, status, msg);
  else if (r == ROUTE_GEMINI)
    gemini_error(b, status, msg, retry_after);
  else
    openai_error(b, status, msg);
}
