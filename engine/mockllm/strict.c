/* strict.c: the requests the real APIs refuse, refused the same way (status,
   error kind and wording), so that a client bug mockllm would otherwise
   answer shows up in tide's specs as it would in production. --lenient or
   the scenario key lenient=1 turns these checks off. */
#include "reply.h"
#include "apis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char openai_no_key[] =
  "You didn't provide an API key. You need to provide your API key in an Authorization "
  "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
  "field (with blank username) if you're accessing the API from your browser and are "
  "prompted for a username and password. You can obtain an API key from "
  "https://platform.openai.com/account/api-keys.";
static const char gemini_no_key[] =
  "Method doesn't allow unregistered callers (callers without established identity). "
  "Please use API Key or other form of API consumer identity to call this API.";
static const char gemini_bad_key[] = "API key not valid. Please pass a valid API key.";
static const char gemini_bad_key_details[] =
  "{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\","
  "\"domain\":\"googleapis.com\",\"metadata\":{\"service\":\"generativelanguage.googleapis.com\"}},"
  "{\"@type\":\"type.googleapis.com/google.rpc.LocalizedMessage\",\"locale\":\"en-US\","
  "\"message\":\"API key not valid. Please pass a valid API key.\"}";

static int refuse(struct refusal *f, int status, const char *msg)
{
  f->status = status;
  snprintf(f->msg, sizeof f->msg, "%s", msg);
  return 1;
}

/* An OpenAI 400 naming the parameter at fault: name, or for message i >= 0
   "messages[i].role" ("messages.[i].role" with dot, as the tool check writes it). */
static int refuse_param(struct refusal *f, const char *msg, const char *code,
                        const char *name, int i, int dot)
{
  if (i < 0)
    snprintf(f->param, sizeof f->param, "%s", name);
  else
    snprintf(f->param, sizeof f->param, "%s%s[%d].role", name, dot ? "." : "", i);
  f->x.param = f->param;
  f->x.code = code;
  return refuse(f, 400, msg);
}

/* A number member's value (0 when absent), and whether it is there. */
static int number_member(const struct json *root, const char *key, double *v)
{
  const struct json *n = json_get(root, key);
  char tmp[40];
  if (n == NULL || n->type != JSON_NUMBER || n->n >= sizeof tmp)
    return 0;
  memcpy(tmp, n->s, n->n);
  tmp[n->n] = '\0';
  *v = strtod(tmp, NULL);
  return 1;
}

/* The credential as OpenAI's 401 quotes it: the first 3 and the last 4
   characters, stars between (all stars for a short key). */
static void mask_key(char *out, size_t outlen, const char *k, size_t n)
{
  size_t i, o = 0;
  for (i = 0; i < n && o + 1 < outlen; i++)
    out[o++] = n >= 12 && (i < 3 || i >= n - 4) ? k[i] : '*';
  out[o] = '\0';
}

/* The request's credential: its first non-empty auth header, else ?key=.
   *owned is set when the value had to be URL-decoded. */
static const char *credential(const struct request *rq, size_t *n, char **owned)
{
  const char *v;
  size_t vn;
  *owned = NULL;
  *n = rq->cred_len;
  if (*n > 0)
    return rq->cred;
  if (query_value(rq->target, rq->target_len, "key", &v, &vn)) {
    *owned = url_decode(v, vn, n);
    return *owned;
  }
  return NULL;
}

static int refuse_bad_key(enum route r, const char *key, size_t n, struct refusal *f)
{
  char masked[80];
  if (r == ROUTE_ANTHROPIC)
    return refuse(f, 401, "invalid x-api-key");
  if (r == ROUTE_GEMINI) {
    f->x.details = gemini_bad_key_details;
    return refuse(f, 400, gemini_bad_key);  /* 400, not 401: what Gemini answers */
  }
  mask_key(masked, sizeof masked, key, n > 64 ? 64 : n);
  f->x.code = "invalid_api_key";
  f->status = 401;
  snprintf(f->msg, sizeof f->msg, "Incorrect API key provided: %s. You can find your API key "
           "at https://platform.openai.com/account/api-keys.", masked);
  return 1;
}

int strict_auth(enum route r, const struct request *rq, int invalid_key, struct refusal *f)
{
  size_t n;
  char *owned;
  const char *key = credential(rq, &n, &owned);
  int refused = 0;
  memset(f, 0, sizeof *f);
  if (key == NULL || n == 0) {
    if (r == ROUTE_ANTHROPIC)
      refused = refuse(f, 401, "x-api-key header is required");
    else if (r == ROUTE_GEMINI)
      refused = refuse(f, 403, gemini_no_key);
    else
      refused = refuse(f, 401, openai_no_key);  /* with code null, not invalid_api_key */
  } else if (invalid_key) {
    refused = refuse_bad_key(r, key, n, f);
  }
  free(owned);
  return refused;
}

/* Azure: the key in an api-key header (a bearer token is Entra ID's, which
   mockllm does not serve), and an api-version in the query. */
int strict_azure(const struct request *rq, struct refusal *f)
{
  memset(f, 0, sizeof *f);
  if (rq->auth == NULL || strcmp(rq->auth, "api-key") != 0) {
    f->x.code = "401";
    return refuse(f, 401, "Access denied due to missing subscription key. Make sure to include "
                  "subscription key when making requests to an API.");
  }
  if (!query_has(rq->target, rq->target_len, "api-version", NULL)) {
    f->x.code = "404";
    return refuse(f, 404, "Resource not found");
  }
  return 0;
}

static int is_empty_content(const struct json *c)
{
  return c == NULL || c->type == JSON_NULL ||
         ((c->type == JSON_STRING || c->type == JSON_ARRAY) && c->n == 0 && c->child == NULL);
}

static int is_string(const struct json *v)
{
  return v != NULL && v->type == JSON_STRING;
}

/* An Anthropic image or document block: a source of type base64 (media_type,
   data; an image's type one of four), url (url) or, for a document, text. */
static int anthropic_media(const struct json *b, int i, int k, struct refusal *f)
{
  const struct json *src = json_get(b, "source");
  const char *kind = json_streq(json_get(b, "type"), "image") ? "image" : "document";
  const struct json *mt = json_get(src, "media_type");
  f->status = 400;
  if (src == NULL || src->type != JSON_OBJECT) {
    snprintf(f->msg, sizeof f->msg, "messages.%d.content.%d.%s.source: Field required", i, k, kind);
    return 1;
  }
  if (json_streq(json_get(src, "type"), "url")) {
    if (is_string(json_get(src, "url")))
      return 0;
    snprintf(f->msg, sizeof f->msg, "messages.%d.content.%d.%s.source.url.url: Field required",
             i, k, kind);
    return 1;
  }
  if (json_streq(json_get(src, "type"), "text") && kind[0] == 'd')
    return 0;
  if (!json_streq(json_get(src, "type"), "base64")) {
    snprintf(f->msg, sizeof f->msg, "messages.%d.content.%d.%s.source: Input tag does not match "
             "any of the expected tags: 'base64', 'url'%s", i, k, kind, kind[0] == 'd' ? ", 'text'" : "");
    return 1;
  }
  if (!is_string(mt) || !is_string(json_get(src, "data"))) {
    snprintf(f->msg, sizeof f->msg, "messages.%d.content.%d.%s.source.base64.%s: Field required",
             i, k, kind, is_string(mt) ? "data" : "media_type");
    return 1;
  }
  if (kind[0] == 'i' && !json_streq(mt, "image/jpeg") && !json_streq(mt, "image/png") &&
      !json_streq(mt, "image/gif") && !json_streq(mt, "image/webp")) {
    snprintf(f->msg, sizeof f->msg, "messages.%d.content.%d.image.source.base64.media_type: Input "
             "should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", i, k);
    return 1;
  }
  if (kind[0] == 'd' && !json_streq(mt, "application/pdf")) {
    snprintf(f->msg, sizeof f->msg, "messages.%d.content.%d.document.source.base64.media_type: "
             "Input should be 'application/pdf'", i, k);
    return 1;
  }
  f->status = 0;
  return 0;
}

/* The media blocks of an Anthropic message's content. */
static int anthropic_blocks(const struct json *content, int i, struct refusal *f)
{
  const struct json *b;
  int k = 0;
  if (content == NULL || content->type != JSON_ARRAY)
    return 0;
  for (b = content->child; b; b = b->next, k++) {
    const struct json *t = json_get(b, "type");
    if ((json_streq(t, "image") || json_streq(t, "document")) && anthropic_media(b, i, k, f))
      return 1;
  }
  return 0;
}

/* Anthropic's Messages API: its header, its required fields, and a
   conversation that starts with the user and alternates. */
static int anthropic_body(const struct request *rq, const struct json *root, struct refusal *f)
{
  const struct json *msgs = json_get(root, "messages"), *m;
  const char *prev = NULL;
  int i = 0;
  double t;
  if (!rq->anthropic_version)
    return refuse(f, 400, "anthropic-version: header is required");
  if (json_get(root, "model") == NULL)
    return refuse(f, 400, "model: Field required");
  if (json_get(root, "max_tokens") == NULL)
    return refuse(f, 400, "max_tokens: Field required");
  if (number_member(root, "temperature", &t) && (t > 1 || t < 0))
    return refuse(f, 400, t > 1 ? "temperature: Input should be less than or equal to 1"
                                : "temperature: Input should be greater than or equal to 0");
  if (msgs == NULL)
    return refuse(f, 400, "messages: Field required");
  if (msgs->type != JSON_ARRAY)
    return refuse(f, 400, "messages: Input should be a valid list");
  if (msgs->child == NULL)
    return refuse(f, 400, "messages: at least one message is required");
  for (m = msgs->child; m; m = m->next, i++) {
    const struct json *role = json_get(m, "role");
    const char *name = role && role->type == JSON_STRING ? role->s : "";
    if (json_streq(role, "system"))
      return refuse(f, 400, "messages: Unexpected role \"system\". The Messages API accepts a "
                    "top-level `system` parameter, not \"system\" as an input message role.");
    if (!json_streq(role, "user") && !json_streq(role, "assistant")) {
      f->status = 400;
      snprintf(f->msg, sizeof f->msg, "messages.%d.role: Input should be 'user' or 'assistant'", i);
      return 1;
    }
    if (prev == NULL && strcmp(name, "user") != 0)
      return refuse(f, 400, "messages: first message must use the \"user\" role");
    if (prev && strcmp(prev, name) == 0) {
      f->status = 400;
      snprintf(f->msg, sizeof f->msg, "messages: roles must alternate between \"user\" and "
               "\"assistant\", but found multiple \"%s\" roles in a row", name);
      return 1;
    }
    if (is_empty_content(json_get(m, "content")) && !(m->next == NULL && name[0] == 'a'))
      return refuse(f, 400, "messages: all messages must have non-empty content except for "
                    "the optional final assistant message");
    if (anthropic_blocks(json_get(m, "content"), i, f))
      return 1;
    prev = name;
  }
  return 0;
}

static int has_tool_calls(const struct json *m)
{
  const struct json *tc = json_get(m, "tool_calls");
  return tc && tc->type == JSON_ARRAY && tc->child != NULL;
}

/* A strict json_schema: every object must say additionalProperties false and
   require every one of its properties. ctx is the path so far, as OpenAI
   writes it: "'properties', 'a', 'items'". Returns 1 with f set. */
struct schema_walk {
  const char *name;           /* json_schema.name */
  size_t name_len;
  struct refusal *f;
};

static int strict_schema(const struct schema_walk *w, const struct json *s, char *ctx,
                         size_t ctx_len, int depth);

/* Walks the schemas under member `key` of s (an object of schemas when
   `many`, else one), extending the context with the key and each name. */
static int strict_under(const struct schema_walk *w, const struct json *s, const char *key,
                        int many, char *ctx, size_t ctx_len, int depth)
{
  const struct json *v = json_get(s, key), *c;
  size_t at = strlen(ctx);
  int bad = 0;
  if (v == NULL)
    return 0;
  for (c = many ? v->child : v; c && !bad; c = many ? c->next : NULL) {
    if (many && v->type == JSON_OBJECT)  /* a named schema: properties, $defs */
      snprintf(ctx + at, ctx_len - at, "%s'%s', '%.*s'", at ? ", " : "", key,
               (int)(c->keylen > 40 ? 40 : c->keylen), c->key);
    else                                 /* items, or a branch of anyOf */
      snprintf(ctx + at, ctx_len - at, "%s'%s'", at ? ", " : "", key);
    bad = strict_schema(w, c, ctx, ctx_len, depth + 1);
    ctx[at] = '\0';
  }
  return bad;
}

static int schema_refuse(const struct schema_walk *w, const char *ctx, const char *what)
{
  struct refusal *f = w->f;
  f->status = 400;
  snprintf(f->msg, sizeof f->msg, "Invalid schema for response_format '%.*s': In context=(%s), %s",
           (int)(w->name_len > 64 ? 64 : w->name_len), w->name, ctx, what);
  f->x.param = "response_format";
  return 1;
}

static int strict_schema(const struct schema_walk *w, const struct json *s, char *ctx,
                         size_t ctx_len, int depth)
{
  const struct json *props = json_get(s, "properties"), *req = json_get(s, "required"), *p;
  const struct json *extra = json_get(s, "additionalProperties");
  if (s == NULL || s->type != JSON_OBJECT || depth > 16)
    return 0;
  if (json_streq(json_get(s, "type"), "object") || props) {
    char what[160];
    if (extra == NULL || extra->type != JSON_FALSE)
      return schema_refuse(w, ctx, "'additionalProperties' is required to be supplied and "
                           "to be false.");
    for (p = props && props->type == JSON_OBJECT ? props->child : NULL; p; p = p->next) {
      const struct json *r;
      int listed = 0;
      for (r = req && req->type == JSON_ARRAY ? req->child : NULL; r && !listed; r = r->next)
        listed = r->type == JSON_STRING && r->n == p->keylen && memcmp(r->s, p->key, r->n) == 0;
      if (!listed) {
        snprintf(what, sizeof what, "'required' is required to be supplied and to be an array "
                 "including every key in properties. Missing '%.*s'.",
                 (int)(p->keylen > 40 ? 40 : p->keylen), p->key);
        return schema_refuse(w, ctx, what);
      }
    }
  }
  return strict_under(w, s, "properties", 1, ctx, ctx_len, depth) ||
         strict_under(w, s, "$defs", 1, ctx, ctx_len, depth) ||
         strict_under(w, s, "definitions", 1, ctx, ctx_len, depth) ||
         strict_under(w, s, "items", 0, ctx, ctx_len, depth) ||
         strict_under(w, s, "anyOf", 1, ctx, ctx_len, depth);
}

static int strict_response_format(const struct json *root, struct refusal *f)
{
  const struct json *js = json_get(json_get(root, "response_format"), "json_schema");
  const struct json *name = json_get(js, "name");
  struct schema_walk w;
  char ctx[400] = "";
  if (!json_streq(json_get(json_get(root, "response_format"), "type"), "json_schema") ||
      json_get(js, "strict") == NULL || json_get(js, "strict")->type != JSON_TRUE)
    return 0;
  w.name = name && name->type == JSON_STRING ? name->s : "";
  w.name_len = name && name->type == JSON_STRING ? name->n : 0;
  w.f = f;
  return strict_schema(&w, json_get(js, "schema"), ctx, sizeof ctx, 0);
}

/* OpenAI's ranges: temperature 0..2, at most 4 stop sequences. */
static int openai_ranges(const struct json *root, struct refusal *f)
{
  const struct json *stop = json_get(root, "stop"), *t = json_get(root, "temperature"), *c;
  double v;
  int n = 0;
  char msg[200];
  if (number_member(root, "temperature", &v) && (v > 2 || v < 0)) {
    snprintf(msg, sizeof msg, "Invalid 'temperature': decimal %s value. Expected a value %s, but "
             "got %.*s instead.", v > 2 ? "above maximum" : "below minimum", v > 2 ? "<= 2" : ">= 0",
             (int)(t->n > 24 ? 24 : t->n), t->s);
    return refuse_param(f, msg, v > 2 ? "decimal_above_max_value" : "decimal_below_min_value",
                        "temperature", -1, 0);
  }
  for (c = stop && stop->type == JSON_ARRAY ? stop->child : NULL; c; c = c->next)
    n++;
  if (n > 4) {
    snprintf(msg, sizeof msg, "Invalid 'stop': array too long. Expected an array with maximum "
             "length 4, but got an array with length %d instead.", n);
    return refuse_param(f, msg, "array_above_max_length", "stop", -1, 0);
  }
  return 0;
}

/* OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...) refuse max_tokens
   (max_completion_tokens instead) and any temperature but 1. */
static int reasoning_params(const struct json *root, struct refusal *f)
{
  const struct json *model = json_get(root, "model"), *t = json_get(root, "temperature");
  const char *m = model && model->type == JSON_STRING ? model->s : "";
  if (!((m[0] == 'o' && m[1] >= '1' && m[1] <= '9') || strncmp(m, "gpt-5", 5) == 0))
    return 0;
  if (json_get(root, "max_tokens") && json_get(root, "max_tokens")->type != JSON_NULL)
    return refuse_param(f, "Unsupported parameter: 'max_tokens' is not supported with this "
                        "model. Use 'max_completion_tokens' instead.", "unsupported_parameter",
                        "max_tokens", -1, 0);
  if (t && t->type == JSON_NUMBER && !(t->n == 1 && t->s[0] == '1') &&
      !(t->n == 3 && memcmp(t->s, "1.0", 3) == 0)) {
    char msg[200];
    snprintf(msg, sizeof msg, "Unsupported value: 'temperature' does not support %.*s with this "
             "model. Only the default (1) value is supported.", (int)(t->n > 24 ? 24 : t->n), t->s);
    return refuse_param(f, msg, "unsupported_value", "temperature", -1, 0);
  }
  return 0;
}

/* An OpenAI user message's content parts: text, image_url (a url), input_audio
   (data, format wav or mp3) or file (file_data or file_id). */
static int openai_parts(const struct json *content, int i, struct refusal *f)
{
  const struct json *part, *o;
  int k = 0;
  char msg[240];
  if (content == NULL || content->type != JSON_ARRAY)
    return 0;
  for (part = content->child; part; part = part->next, k++) {
    const struct json *t = json_get(part, "type");
    const char *missing = NULL;
    snprintf(f->param, sizeof f->param, "messages[%d].content[%d]", i, k);
    if (json_streq(t, "text")) {
      if (!is_string(json_get(part, "text")))
        missing = "text";
    } else if (json_streq(t, "image_url")) {
      if (!is_string(json_get(json_get(part, "image_url"), "url")))
        missing = "image_url.url";
    } else if (json_streq(t, "input_audio")) {
      o = json_get(part, "input_audio");
      if (!is_string(json_get(o, "data")))
        missing = "input_audio.data";
      else if (!json_streq(json_get(o, "format"), "wav") && !json_streq(json_get(o, "format"), "mp3")) {
        snprintf(msg, sizeof msg, "Invalid value: '%.20s'. Supported values are: 'wav' and 'mp3'.",
                 is_string(json_get(o, "format")) ? json_get(o, "format")->s : "null");
        snprintf(f->param, sizeof f->param, "messages[%d].content[%d].input_audio.format", i, k);
        f->x.param = f->param;
        f->x.code = "invalid_value";
        return refuse(f, 400, msg);
      }
    } else if (json_streq(t, "file")) {
      o = json_get(part, "file");
      if (!is_string(json_get(o, "file_data")) && !is_string(json_get(o, "file_id")))
        missing = "file.file_data";
    } else {
      snprintf(msg, sizeof msg, "Invalid value: '%.40s'. Supported values are: 'text', "
               "'image_url', 'input_audio', 'refusal', 'audio', and 'file'.",
               is_string(t) ? t->s : "null");
      snprintf(f->param, sizeof f->param, "messages[%d].content[%d].type", i, k);
      f->x.param = f->param;
      f->x.code = "invalid_value";
      return refuse(f, 400, msg);
    }
    if (missing) {
      snprintf(msg, sizeof msg, "Missing required parameter: 'messages[%d].content[%d].%s'.", i, k,
               missing);
      f->x.param = f->param;
      f->x.code = "missing_required_parameter";
      return refuse(f, 400, msg);
    }
  }
  return 0;
}

/* OpenAI's Chat Completions: model, a non-empty list of messages in known
   roles, and each tool answer after the assistant's tool_calls. */
static int openai_body(const struct json *root, struct refusal *f, int azure)
{
  static const char *const roles[] = {"system", "developer", "user", "assistant", "tool",
                                      "function"};
  const struct json *msgs = json_get(root, "messages"), *m;
  int i = 0, calls = 0;
  if (json_get(root, "model") == NULL && !azure)  /* Azure's path names the deployment */
    return refuse_param(f, "you must provide a model parameter", NULL, "model", -1, 0);
  if (msgs == NULL)
    return refuse_param(f, "Missing required parameter: 'messages'.",
                        "missing_required_parameter", "messages", -1, 0);
  if (msgs->type != JSON_ARRAY)
    return refuse_param(f, "Invalid type for 'messages': expected an array, but got an "
                        "object instead.", "invalid_type", "messages", -1, 0);
  if (msgs->child == NULL)
    return refuse_param(f, "Invalid 'messages': empty array. Expected an array with minimum "
                        "length 1, but got an empty array instead.", "empty_array", "messages", -1, 0);
  for (m = msgs->child; m; m = m->next, i++) {
    const struct json *role = json_get(m, "role");
    size_t k, known = 0;
    for (k = 0; k < sizeof roles / sizeof roles[0]; k++)
      known |= (size_t)json_streq(role, roles[k]);
    if (!known) {
      char msg[200];
      snprintf(msg, sizeof msg, "Invalid value: '%.40s'. Supported values are: 'system', "
               "'assistant', 'user', 'function', 'tool', and 'developer'.",
               role && role->type == JSON_STRING ? role->s : "null");
      return refuse_param(f, msg, "invalid_value", "messages", i, 0);
    }
    if (json_streq(role, "tool") && !calls)
      return refuse_param(f, "Invalid parameter: messages with role 'tool' must be a response "
                          "to a preceeding message with 'tool_calls'.", NULL, "messages", i, 1);
    if (!json_streq(role, "tool"))
      calls = json_streq(role, "assistant") && has_tool_calls(m);
    if (json_streq(role, "user") && openai_parts(json_get(m, "content"), i, f))
      return 1;
  }
  return openai_ranges(root, f) || reasoning_params(root, f) || strict_response_format(root, f);
}

/* A content's inlineData (mimeType, data) and fileData (fileUri) parts. */
static int gemini_parts(const struct json *parts, int i, struct refusal *f)
{
  const struct json *part, *d;
  int k = 0;
  for (part = parts->child; part; part = part->next, k++) {
    const char *missing = NULL;
    if ((d = json_get(part, "inlineData")) != NULL) {
      if (!is_string(json_get(d, "mimeType")))
        missing = "inline_data.mime_type";
      else if (!is_string(json_get(d, "data")))
        missing = "inline_data.data";
    } else if ((d = json_get(part, "fileData")) != NULL && !is_string(json_get(d, "fileUri"))) {
      missing = "file_data.file_uri";
    }
    if (missing) {
      f->status = 400;
      snprintf(f->msg, sizeof f->msg, "* GenerateContentRequest.contents[%d].parts[%d].%s: "
               "Required field is not set.\n", i, k, missing);
      return 1;
    }
  }
  return 0;
}

/* Gemini's generateContent: some contents, each from the user or the model. */
static int gemini_body(const struct json *root, struct refusal *f)
{
  const struct json *contents = json_get(root, "contents"), *c;
  int i = 0;
  if (contents == NULL || contents->child == NULL)
    return refuse(f, 400, "* GenerateContentRequest.contents: contents is not specified\n");
  for (c = contents->child; c; c = c->next, i++) {
    const struct json *role = json_get(c, "role"), *parts = json_get(c, "parts");
    if (role && !json_streq(role, "user") && !json_streq(role, "model"))
      return refuse(f, 400, "Please use a valid role: user, model.");
    if (parts == NULL || parts->child == NULL) {
      f->status = 400;
      snprintf(f->msg, sizeof f->msg, "* GenerateContentRequest.contents[%d].parts: "
               "contents.parts must not be empty.\n", i);
      return 1;
    }
    if (gemini_parts(parts, i, f))
      return 1;
  }
  return 0;
}

/* Gemini 1.0 models answer one candidate: candidateCount > 1 is refused. */
static int gemini_candidates(const struct json *root, const char *model, size_t mlen,
                             struct refusal *f)
{
  const struct json *n = json_get(json_get(root, "generationConfig"), "candidateCount");
  if (n == NULL || n->type != JSON_NUMBER || atof(n->s) <= 1 || model == NULL)
    return 0;
  if ((mlen >= 10 && memcmp(model, "gemini-1.0", 10) == 0) ||
      (mlen == 10 && memcmp(model, "gemini-pro", 10) == 0)) {
    f->status = 400;
    snprintf(f->msg, sizeof f->msg, "Multiple candidates is not enabled for models/%.*s",
             (int)(mlen > 80 ? 80 : mlen), model);
    return 1;
  }
  return 0;
}

int strict_body(enum route r, int azure, const struct request *rq, const struct json *root,
                const char *model, size_t mlen, struct refusal *f)
{
  memset(f, 0, sizeof *f);
  if (root->type != JSON_OBJECT)
    return 0;  /* prompt_read's own 400 */
  if (r == ROUTE_ANTHROPIC)
    return anthropic_body(rq, root, f);
  if (r == ROUTE_GEMINI)
    return gemini_body(root, f) || gemini_candidates(root, model, mlen, f);
  return openai_body(root, f, azure);
}
