/* log.c: the request log behind GET /__log, a ring of the last LOG_CAP
   requests. It records which auth header came, never its value. */
#include "mockllm.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *log_dup(const char *s, size_t n)
{
  char *d;
  if (s == NULL)
    return NULL;
  if (n > LOG_STR_MAX)
    n = LOG_STR_MAX;
  d = xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static void ent_free(struct logent *e)
{
  free(e->path);
  free(e->key);
  free(e->model);
}

void log_add(struct reqlog *l, struct logent *e)
{
  struct logent *slot;
  if (l->ring == NULL)
    l->ring = xcalloc(LOG_CAP, sizeof *l->ring);
  if (l->count < LOG_CAP) {
    slot = &l->ring[(l->first + l->count++) % LOG_CAP];
  } else {
    slot = &l->ring[l->first];
    l->first = (l->first + 1) % LOG_CAP;
    ent_free(slot);
  }
  *slot = *e;
  slot->seq = ++l->seq;
}

void log_clear(struct reqlog *l)
{
  size_t i;
  for (i = 0; i < l->count; i++)
    ent_free(&l->ring[(l->first + i) % LOG_CAP]);
  free(l->ring);
  memset(l, 0, sizeof *l);
}

void log_abort(struct reqlog *l, unsigned long long seq)
{
  struct logent *oldest;
  if (l->count == 0)
    return;
  oldest = &l->ring[l->first];
  if (seq >= oldest->seq && seq - oldest->seq < l->count)
    l->ring[(l->first + (seq - oldest->seq)) % LOG_CAP].status = 0;
}

void request_id(char *out, size_t len, enum route r, unsigned long long rid)
{
  if (r == ROUTE_ANTHROPIC)
    snprintf(out, len, "req_011CMock%014llu", rid);  /* Anthropic's look: req_011C... */
  else
    snprintf(out, len, "req_%032llx", rid);          /* OpenAI's: 32 hex digits */
}

static void put_opt(struct buf *b, const char *s)
{
  if (s)
    json_put_str(b, s, strlen(s));
  else
    buf_adds(b, "null");
}

static const char *route_name(enum route r)
{
  switch (r) {
  case ROUTE_OPENAI: return "openai";
  case ROUTE_ANTHROPIC: return "anthropic";
  case ROUTE_GEMINI: return "gemini";
  case ROUTE_HEALTH: return "health";
  default: return "other";
  }
}

void log_json(const struct reqlog *l, struct buf *out)
{
  size_t i;
  buf_adds(out, "{\"requests\":[");
  for (i = 0; i < l->count; i++) {
    const struct logent *e = &l->ring[(l->first + i) % LOG_CAP];
    /* integer arithmetic keeps the microseconds exact; a double would round */
    buf_addf(out, "%s{\"seq\":%llu,\"t\":%llu.%06llu,\"route\":\"%s\",\"path\":", i ? "," : "",
             e->seq, (unsigned long long)(e->t_ns / 1000000000u),
             (unsigned long long)(e->t_ns / 1000u % 1000000u), route_name(e->route));
    put_opt(out, e->path);
    buf_adds(out, ",\"key\":");
    put_opt(out, e->key);
    buf_adds(out, ",\"status\":");
    if (e->status)
      buf_addf(out, "%d", e->status);
    else
      buf_adds(out, "null");
    buf_adds(out, ",\"model\":");
    put_opt(out, e->model);
    buf_addf(out, ",\"stream\":%s,\"auth\":", e->stream ? "true" : "false");
    put_opt(out, e->auth);
    buf_adds(out, ",\"request_id\":");
    if (e->rid) {
      char id[48];
      request_id(id, sizeof id, e->route, e->rid);
      put_opt(out, id);
    } else {
      buf_adds(out, "null");
    }
    buf_addc(out, '}');
  }
  buf_adds(out, "]}");
}
