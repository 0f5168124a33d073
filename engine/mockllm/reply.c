/* reply.c: prompt extraction from, and response bodies for, the three wire formats. */
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void add_text(struct prompt *p, const char *s, size_t n)
{
  if (p->all.len)
    buf_addc(&p->all, '\n');
  buf_add(&p->all, s, n);
}

/* The bytes a base64 string stands for. */
static size_t base64_bytes(const struct json *d)
{
  size_t n = d->n, pad = 0;
  while (pad < 2 && n > pad && d->s[n - 1 - pad] == '=')
    pad++;
  return n / 4 * 3 - (n % 4 == 0 ? pad : 0);
}

/* A media part of any of the three formats (OpenAI image_url, input_audio,
   file; Anthropic image/document source; Gemini inlineData/fileData) as text:
   "<MIME N bytes>" for inline data, "<MIME URL>" for a reference, so that a
   reply quoting the prompt shows what arrived. Returns 0 for other parts. */
static int media_text(const struct json *part, struct buf *out)
{
  const struct json *o, *mime = NULL, *data = NULL, *url = NULL;
  const char *fmt = NULL;
  if (part->type != JSON_OBJECT)
    return 0;
  if ((o = json_get(part, "image_url")) != NULL) {
    url = json_get(o, "url");
  } else if ((o = json_get(part, "input_audio")) != NULL) {
    data = json_get(o, "data");
    fmt = json_streq(json_get(o, "format"), "mp3") ? "audio/mpeg" : "audio/wav";
  } else if ((o = json_get(part, "file")) != NULL && o->type == JSON_OBJECT) {
    url = json_get(o, "file_data");
  } else if ((o = json_get(part, "source")) != NULL) {
    mime = json_get(o, "media_type");
    data = json_get(o, "data");
    url = json_get(o, "url");
  } else if ((o = json_get(part, "inlineData")) != NULL) {
    mime = json_get(o, "mimeType");
    data = json_get(o, "data");
  } else if ((o = json_get(part, "fileData")) != NULL) {
    mime = json_get(o, "mimeType");
    url = json_get(o, "fileUri");
  } else {
    return 0;
  }
  if (url && url->type == JSON_STRING && url->n > 5 && memcmp(url->s, "data:", 5) == 0) {
    const char *semi = memchr(url->s, ';', url->n), *comma = memchr(url->s, ',', url->n);
    if (semi && comma && semi < comma) {  /* data:MIME;base64,DATA */
      struct json d = *url;
      d.s = comma + 1;
      d.n = url->n - (size_t)(comma + 1 - url->s);
      buf_addf(out, "<%.*s %zu bytes>", (int)(semi - url->s - 5), url->s + 5, base64_bytes(&d));
      return 1;
    }
  }
  if (mime && mime->type == JSON_STRING)
    buf_addf(out, "<%.*s ", (int)(mime->n > 60 ? 60 : mime->n), mime->s);
  else
    buf_addf(out, "<%s ", fmt ? fmt : "media");
  if (data && data->type == JSON_STRING)
    buf_addf(out, "%zu bytes>", base64_bytes(data));
  else if (url && url->type == JSON_STRING)
    buf_addf(out, "%.*s>", (int)(url->n > 80 ? 80 : url->n), url->s);
  else
    buf_adds(out, "?>");
  return 1;
}

/* A content value: a string, or an array of parts carrying "text" or media
   (written as media_text). Returns the text via (*s,*n), joining several parts
   into tmp. */
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
    } else if (part->type == JSON_OBJECT) {
      size_t at = tmp->len;
      if (tmp->len)
        buf_addc(tmp, '\n');
      if (!media_text(part, tmp))
        tmp->len = at;
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
  /* a user turn of parts without text (tool results) leaves the question
     the reply quotes as it was */
  if (is_user && !(n == 0 && content && content->type == JSON_ARRAY && p->last_user_len)) {
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
  p->route = r;
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

int prompt_model_turns(enum route r, const struct json *root)
{
  const struct json *msgs = json_get(root, r == ROUTE_GEMINI ? "contents" : "messages"), *m;
  int k = 0;
  for (m = msgs && msgs->type == JSON_ARRAY ? msgs->child : NULL; m; m = m->next)
    k += json_streq(json_get(m, "role"), r == ROUTE_GEMINI ? "model" : "assistant");
  return k;
}

void prompt_free(struct prompt *p)
{
  int i;
  for (i = 0; i < p->nmore; i++)
    buf_free(&p->more[i].text);
  free(p->more);
  tools_free(p);
  buf_free(&p->all);
  buf_free(&p->last_user_buf);
}

unsigned long long token_count(size_t bytes)
{
  return bytes == 0 ? 1 : (bytes + 3) / 4;
}

void reply_put_model(struct buf *b, const struct prompt *p)
{
  if (p->model)
    json_put_str(b, p->model, p->model_len);
  else
    buf_adds(b, "\"mock-model\"");
}

const char *reply_finish_name(enum route r, enum finish f)
{
  static const char *const names[3][4] = {
    /* STOP          LENGTH        BLOCKED           NO_TEXT */
    {"stop",       "length",     "content_filter", "length"},
    {"end_turn",   "max_tokens", "refusal",        "max_tokens"},
    {"STOP",       "MAX_TOKENS", "SAFETY",         "MAX_TOKENS"},
  };
  int row = r == ROUTE_ANTHROPIC ? 1 : r == ROUTE_GEMINI ? 2 : 0;
  return names[row][f];
}

void reply_put_count(struct buf *b, enum usage_mode m, unsigned long long v)
{
  switch (m) {
  case USAGE_HUGE: buf_adds(b, "1e999"); break;      /* valid JSON, infinite as a double */
  case USAGE_NEGATIVE: buf_adds(b, "-1e20"); break;
  case USAGE_FLOAT: buf_adds(b, "12.5"); break;
  case USAGE_STRING: buf_adds(b, "\"12\""); break;
  default: buf_addu(b, v);
  }
}

/* Whether the model thinks before it answers, from its name: OpenAI's
   reasoning models (o1, o3, o4-mini, gpt-5...), Gemini 2.5 and later. */
static int thinking_model(enum route r, const struct prompt *p)
{
  const char *m = p->model ? p->model : "";
  size_t n = p->model ? p->model_len : 0;
  if (r == ROUTE_OPENAI)
    return (n >= 2 && m[0] == 'o' && m[1] >= '1' && m[1] <= '9') ||
           (n >= 5 && memcmp(m, "gpt-5", 5) == 0);
  if (r == ROUTE_GEMINI)
    return mem_find(m, n, "2.5", 3) != NULL || mem_find(m, n, "gemini-3", 8) != NULL;
  return 0;
}

void reply_usage_init(struct prompt *p, enum route r, unsigned long long cached)
{
  unsigned long long ptok = token_count(p->all.len);
  p->thinking = thinking_model(r, p);
  p->cached = cached < ptok ? cached : ptok;
}

unsigned long long reply_thoughts(const struct prompt *p, unsigned long long ctok)
{
  return p->thinking ? 2 * ctok + 8 : 0;  /* deterministic: a little more than the answer */
}

/* One entry of Gemini's per-modality details: [{"modality":"TEXT","tokenCount":N}]. */
static void gemini_details(struct buf *b, const char *name, enum usage_mode m,
                           unsigned long long v)
{
  buf_addf(b, ",\"%s\":[{\"modality\":\"TEXT\",\"tokenCount\":", name);
  reply_put_count(b, m, v);
  buf_adds(b, "}]");
}

/* Gemini leaves zero counts out, as it does for a candidate with no text;
   totalTokenCount counts the thoughts too. */
void reply_gemini_usage(struct buf *b, const struct prompt *p, unsigned long long ptok,
                        unsigned long long ctok)
{
  enum usage_mode m = p->usage;
  unsigned long long think = ctok ? reply_thoughts(p, ctok) : 0;
  buf_adds(b, "\"usageMetadata\":{\"promptTokenCount\":");
  reply_put_count(b, m, ptok);
  if (ctok) {
    buf_adds(b, ",\"candidatesTokenCount\":");
    reply_put_count(b, m, ctok);
  }
  buf_adds(b, ",\"totalTokenCount\":");
  reply_put_count(b, m, ptok + ctok + think);
  if (p->cached) {
    buf_adds(b, ",\"cachedContentTokenCount\":");
    reply_put_count(b, m, p->cached);
  }
  gemini_details(b, "promptTokensDetails", m, ptok);
  if (p->cached)
    gemini_details(b, "cacheTokensDetails", m, p->cached);
  if (ctok)
    gemini_details(b, "candidatesTokensDetails", m, ctok);
  if (think) {
    buf_adds(b, ",\"thoughtsTokenCount\":");
    reply_put_count(b, m, think);
  }
  buf_addc(b, '}');
}

void reply_gemini_end(struct buf *b, const struct prompt *p, unsigned long long id)
{
  buf_adds(b, ",\"modelVersion\":");
  reply_put_model(b, p);
  buf_addf(b, ",\"responseId\":\"mock%llx\"}", id);
}

/* completion_tokens includes the reasoning tokens, as OpenAI counts them. */
void reply_openai_usage(struct buf *b, const struct prompt *p, unsigned long long ptok,
                        unsigned long long ctok)
{
  enum usage_mode m = p->usage;
  unsigned long long think = reply_thoughts(p, ctok);
  buf_adds(b, "\"usage\":{\"prompt_tokens\":");
  reply_put_count(b, m, ptok);
  buf_adds(b, ",\"completion_tokens\":");
  reply_put_count(b, m, ctok + think);
  buf_adds(b, ",\"total_tokens\":");
  reply_put_count(b, m, ptok + ctok + think);
  buf_adds(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
  reply_put_count(b, m, p->cached);
  buf_adds(b, ",\"audio_tokens\":");
  reply_put_count(b, m, 0);
  buf_adds(b, "},\"completion_tokens_details\":{\"reasoning_tokens\":");
  reply_put_count(b, m, think);
  buf_adds(b, ",\"audio_tokens\":");
  reply_put_count(b, m, 0);
  buf_adds(b, ",\"accepted_prediction_tokens\":");
  reply_put_count(b, m, 0);
  buf_adds(b, ",\"rejected_prediction_tokens\":");
  reply_put_count(b, m, 0);
  buf_adds(b, "}}");
}

/* Anthropic's usage: input_tokens leaves out what was read from the cache.
   With final (message_delta), the cumulative counts the stream ends with. */
void reply_anthropic_usage(struct buf *b, const struct prompt *p, unsigned long long ctok,
                           int final)
{
  enum usage_mode m = p->usage;
  buf_adds(b, "\"usage\":{\"input_tokens\":");
  reply_put_count(b, m, token_count(p->all.len) - p->cached);
  buf_adds(b, ",\"cache_creation_input_tokens\":");
  reply_put_count(b, m, 0);
  buf_adds(b, ",\"cache_read_input_tokens\":");
  reply_put_count(b, m, p->cached);
  if (!final) {
    buf_adds(b, ",\"cache_creation\":{\"ephemeral_5m_input_tokens\":");
    reply_put_count(b, m, 0);
    buf_adds(b, ",\"ephemeral_1h_input_tokens\":");
    reply_put_count(b, m, 0);
    buf_addc(b, '}');
  }
  buf_adds(b, ",\"output_tokens\":");
  reply_put_count(b, m, ctok);
  if (!final)
    buf_adds(b, ",\"service_tier\":\"standard\"");
  buf_addc(b, '}');
}

void put_tool_name(struct buf *b, const struct prompt *p)
{
  const struct json *n = json_get(p->tool, "name");
  if (n && n->type == JSON_STRING)
    json_put_str(b, n->s, n->n);
  else
    buf_adds(b, "\"tool\"");
}

void reply_anthropic_stop(struct buf *b, const struct prompt *p, enum finish f)
{
  if ((p->tool || p->ncalls) && f == FINISH_STOP) {
    buf_adds(b, "\"stop_reason\":\"tool_use\",\"stop_sequence\":null");
  } else if (p->stop_seq && f == FINISH_STOP) {
    buf_adds(b, "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":");
    json_put_str(b, p->stop_seq, p->stop_len);
  } else {
    buf_addf(b, "\"stop_reason\":\"%s\",\"stop_sequence\":null",
             reply_finish_name(ROUTE_ANTHROPIC, f));
  }
}

/* Gemini's mean log-probability of the candidate's tokens: a small negative
   number, from the text so it is the same for the same answer. */
static const char *avg_logprobs(const char *text, size_t n)
{
  static char out[32];
  unsigned h = 2166136261u;
  size_t i;
  for (i = 0; i < n; i++)
    h = (h ^ (unsigned char)text[i]) * 16777619u;
  snprintf(out, sizeof out, "-0.%06u", h % 1000000u);
  return out;
}

/* Choices 1.. of an OpenAI answer with n > 1; returns their output tokens. */
static unsigned long long more_choices(struct buf *b, const struct prompt *p)
{
  unsigned long long toks = 0;
  int i;
  for (i = 0; i < p->nmore; i++) {
    const struct choice *c = &p->more[i];
    buf_addf(b, ",{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", i + 1);
    json_put_str(b, c->text.data ? c->text.data : "", c->text.len);
    buf_addf(b, ",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":\"%s\"}",
             reply_finish_name(ROUTE_OPENAI, c->f));
    toks += c->ctok;
  }
  return toks;
}

/* Candidates 1.. of a Gemini answer with candidateCount > 1. */
static unsigned long long more_candidates(struct buf *b, const struct prompt *p)
{
  unsigned long long toks = 0;
  int i;
  for (i = 0; i < p->nmore; i++) {
    const struct choice *c = &p->more[i];
    const char *t = c->text.data ? c->text.data : "";
    buf_adds(b, ",{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":");
    json_put_str(b, t, c->text.len);
    buf_addf(b, "}]},\"finishReason\":\"%s\",\"avgLogprobs\":%s,\"index\":%d}",
             reply_finish_name(ROUTE_GEMINI, c->f), avg_logprobs(t, c->text.len), i + 1);
    toks += c->ctok;
  }
  return toks;
}

void reply_ok(struct buf *b, enum route r, const struct prompt *p,
              unsigned long long id, const char *text, size_t n,
              unsigned long long ctok, enum finish f, size_t *text_at)
{
  unsigned long long ptok = token_count(p->all.len);
  const char *fin = reply_finish_name(r, f);
  size_t at = 0;
  if (p->ncalls && f == FINISH_STOP) {
    tools_reply(b, r, p, id, ctok);
    if (text_at)
      *text_at = 0;
    return;
  }
  if (f == FINISH_BLOCKED || f == FINISH_NO_TEXT)
    ctok = 0;
  switch (r) {
  case ROUTE_ANTHROPIC:
    buf_addf(b, "{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
    reply_put_model(b, p);
    if (f == FINISH_BLOCKED || f == FINISH_NO_TEXT) {
      buf_adds(b, ",\"content\":[]");
    } else if (p->tool) {
      buf_addf(b, ",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_mock_%llu\",\"name\":", id);
      put_tool_name(b, p);
      buf_adds(b, ",\"input\":");
      if (f == FINISH_STOP)
        buf_add(b, text, n);
      else
        buf_adds(b, "{}");  /* cut by the token limit: what was generated is not JSON */
      buf_adds(b, "}]");
    } else {
      buf_adds(b, ",\"content\":[{\"type\":\"text\",\"text\":");
      at = b->len + 1;
      json_put_str(b, text, n);
      buf_adds(b, "}]");
    }
    buf_adds(b, ",");
    reply_anthropic_stop(b, p, f);
    buf_adds(b, ",");
    reply_anthropic_usage(b, p, ctok, 0);
    buf_addc(b, '}');
    break;
  case ROUTE_GEMINI:
    buf_addc(b, '{');
    if (f == FINISH_BLOCKED) {
      /* a blocked prompt has feedback and no candidates at all */
      buf_addf(b, "\"promptFeedback\":{\"blockReason\":\"%s\"},", fin);
    } else if (f == FINISH_NO_TEXT) {
      buf_addf(b, "\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":\"%s\","
               "\"index\":0}],", fin);
    } else {
      buf_adds(b, "\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":");
      at = b->len + 1;
      json_put_str(b, text, n);
      buf_addf(b, "}]},\"finishReason\":\"%s\",\"avgLogprobs\":%s,\"index\":0}", fin,
               avg_logprobs(text, n));
      ctok += more_candidates(b, p);
      buf_adds(b, "],");
    }
    reply_gemini_usage(b, p, ptok, ctok);
    reply_gemini_end(b, p, id);
    break;
  default:
    buf_addf(b, "{\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion\","
             "\"created\":%lld,\"model\":", id, (long long)time(NULL));
    reply_put_model(b, p);
    buf_adds(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (f == FINISH_BLOCKED) {
      buf_adds(b, "null");
    } else {
      at = b->len + 1;
      json_put_str(b, text, f == FINISH_NO_TEXT ? 0 : n);
    }
    buf_addf(b, ",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,"
             "\"finish_reason\":\"%s\"}", fin);
    if (f == FINISH_STOP || f == FINISH_LENGTH)
      ctok += more_choices(b, p);
    buf_adds(b, "],");
    reply_openai_usage(b, p, ptok, ctok);
    buf_adds(b, ",\"service_tier\":\"default\",\"system_fingerprint\":\"" OPENAI_FINGERPRINT "\"}");
    break;
  }
  if (text_at)
    *text_at = at;
}

/* type and code as the real API sends them for each status; x (a refusal)
   may name its own type, param and code. */
static void openai_error(struct buf *b, int status, const char *q, size_t qn, const char *code,
                         const struct error_extra *x)
{
  const char *type = "invalid_request_error", *param = NULL;
  if (status == 429) {
    type = "requests";        /* the limit that ran out: "requests" or "tokens" */
    code = "rate_limit_exceeded";
  } else if (status == 401) {
    code = "invalid_api_key";
  } else if (status >= 500) {
    type = "server_error";
  }
  if (x) {
    type = x->type ? x->type : type;
    param = x->param;
    code = x->code;
  }
  buf_adds(b, "{\"error\":{\"message\":");
  buf_add(b, q, qn);
  buf_addf(b, ",\"type\":\"%s\",\"param\":", type);
  if (param)
    json_put_str(b, param, strlen(param));
  else
    buf_adds(b, "null");
  buf_adds(b, ",\"code\":");
  if (code)
    buf_addf(b, "\"%s\"}}", code);
  else
    buf_adds(b, "null}}");
}

static void anthropic_error(struct buf *b, int status, const char *q, size_t qn,
                            const struct error_extra *x)
{
  const char *type;
  switch (status) {
  case 401: type = "authentication_error"; break;
  case 402: type = "billing_error"; break;
  case 403: type = "permission_error"; break;
  case 404: type = "not_found_error"; break;
  case 408:                   /* not an Anthropic status; the nearest kind */
  case 504: type = "timeout_error"; break;
  case 409: type = "conflict_error"; break;
  case 413: type = "request_too_large"; break;
  case 429: type = "rate_limit_error"; break;
  case 529: type = "overloaded_error"; break;
  default: type = status >= 500 ? "api_error" : "invalid_request_error";
  }
  if (x && x->type)
    type = x->type;
  buf_addf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
  buf_add(b, q, qn);
  buf_adds(b, "}}");
}

/* A Gemini 429's QuotaFailure and Help, the first two of its details. */
static void gemini_quota_details(struct buf *b)
{
  buf_adds(b, "{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{"
           "\"quotaMetric\":\"generativelanguage.googleapis.com/generate_content_requests\","
           "\"quotaId\":\"GenerateRequestsPerMinutePerProjectPerModel\","
           "\"quotaDimensions\":{\"location\":\"global\",\"model\":\"mock\"},"
           "\"quotaValue\":\"1000\"}]},"
           "{\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[{\"description\":"
           "\"Learn more about Gemini API quotas\",\"url\":"
           "\"https://ai.google.dev/gemini-api/docs/rate-limits\"}]}");
}

static void gemini_error(struct buf *b, int status, const char *q, size_t qn, long retry_after,
                         const struct error_extra *x)
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
  /* 408, 502 and 529 are not Google statuses: the canonical code nearest in meaning */
  case 502:
  case 529:
  case 503: st = "UNAVAILABLE"; break;
  case 408:
  case 504: st = "DEADLINE_EXCEEDED"; break;
  default: st = status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
  buf_addf(b, "{\"error\":{\"code\":%d,\"message\":", status);
  buf_add(b, q, qn);
  buf_addf(b, ",\"status\":\"%s\"", st);
  if (x && x->details) {
    buf_addf(b, ",\"details\":[%s]", x->details);
  } else if (status == 429) {
    /* as Google orders them: QuotaFailure, Help, then RetryInfo when there is a delay */
    buf_adds(b, ",\"details\":[");
    gemini_quota_details(b);
    if (retry_after >= 0)
      buf_addf(b, ",{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
               "\"retryDelay\":\"%lds\"}", retry_after);
    buf_addc(b, ']');
  }
  buf_adds(b, "}}");
}

static void error_quoted(struct buf *b, enum route r, int status, const char *q, size_t qn,
                         long retry_after, const struct error_extra *x)
{
  if (r == ROUTE_ANTHROPIC)
    anthropic_error(b, status, q, qn, x);
  else if (r == ROUTE_GEMINI)
    gemini_error(b, status, q, qn, retry_after, x);
  else
    openai_error(b, status, q, qn, status == 404 ? "model_not_found" : NULL, x);
}

void reply_error_quoted(struct buf *b, enum route r, int status, const char *q, size_t qn,
                        long retry_after)
{
  error_quoted(b, r, status, q, qn, retry_after, NULL);
}

void reply_error_extra(struct buf *b, enum route r, int status, const char *msg,
                       const struct error_extra *x)
{
  struct buf q = {0};
  json_put_str(&q, msg, strlen(msg));
  error_quoted(b, r, status, q.data, q.len, -1, x);
  buf_free(&q);
}

void reply_error(struct buf *b, enum route r, int status, const char *msg,
                 long retry_after)
{
  struct buf q = {0};
  json_put_str(&q, msg, strlen(msg));
  reply_error_quoted(b, r, status, q.data, q.len, retry_after);
  buf_free(&q);
}

void reply_context_window(struct buf *b, enum route r)
{
  if (r == ROUTE_ANTHROPIC)
    buf_adds(b, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
             "\"message\":\"prompt is too long: 210000 tokens > 200000 maximum\"}}");
  else if (r == ROUTE_GEMINI)
    buf_adds(b, "{\"error\":{\"code\":400,\"message\":\"The input token count (1200000) "
             "exceeds the maximum number of tokens allowed (1048576).\","
             "\"status\":\"INVALID_ARGUMENT\"}}");
  else
    buf_adds(b, "{\"error\":{\"message\":\"This model's maximum context length is 128000 "
             "tokens. However, your messages resulted in 130000 tokens.\","
             "\"type\":\"invalid_request_error\",\"param\":\"messages\","
             "\"code\":\"context_length_exceeded\"}}");
}

int reply_quota(struct buf *b, enum route r)
{
  if (r == ROUTE_ANTHROPIC) {
    buf_adds(b, "{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":"
             "\"Your credit balance is too low to access the Anthropic API. Please go to Plans "
             "& Billing to upgrade or purchase credits.\"}}");
    return 400;
  }
  if (r == ROUTE_GEMINI) {
    buf_adds(b, "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, "
             "please check your plan and billing details. For more information on this error, "
             "head to: https://ai.google.dev/gemini-api/docs/rate-limits.\","
             "\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[");
    gemini_quota_details(b);
    buf_adds(b, "]}}");
    return 429;
  }
  buf_adds(b, "{\"error\":{\"message\":\"You exceeded your current quota, please check your "
           "plan and billing details. For more information on this error, read the docs: "
           "https://platform.openai.com/docs/guides/error-codes/api-errors.\","
           "\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}");
  return 429;
}

void reply_no_route(struct buf *b, enum route r, const char *method, size_t mlen,
                    const char *path, size_t n)
{
  struct buf msg = {0};
  buf_addf(&msg, "Invalid URL (%.*s %.*s)", (int)(mlen > 20 ? 20 : mlen), method,
           (int)(n > 200 ? 200 : n), path);
  buf_addc(&msg, '\0');
  if (r == ROUTE_OPENAI) {
    struct buf q = {0};
    json_put_str(&q, msg.data, msg.len - 1);
    openai_error(b, 404, q.data, q.len, NULL, NULL);  /* a wrong URL has no code, unlike a wrong model */
    buf_free(&q);
  } else {
    reply_error(b, r, 404, msg.data, -1);
  }
  buf_free(&msg);
}
