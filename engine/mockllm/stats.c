/* stats.c: the counters behind GET /__stats. */
#include "mockllm.h"

#include <string.h>
#include <sys/resource.h>

void stats_request(struct server *s, enum route r)
{
  s->st.requests++;
  s->st.by_route[r < ROUTE_COUNTED ? r : ROUTE_OTHER]++;
  if (++s->st.in_flight > s->st.peak_in_flight)
    s->st.peak_in_flight = s->st.in_flight;
}

/* A counted request ends: written (or its scripted fault carried out), or
   abandoned because the client went away first. */
void stats_finish(struct server *s, int aborted)
{
  s->st.in_flight--;
  if (aborted)
    s->st.aborted++;
  else
    s->st.completed++;
}

void stats_conn_open(struct server *s)
{
  s->st.connections_total++;
  if (++s->st.connections_open > s->st.peak_connections)
    s->st.peak_connections = s->st.connections_open;
}

void stats_conn_close(struct server *s)
{
  s->st.connections_open--;
}

/* Gauges (in_flight, connections_open) survive; peaks restart from them. */
void stats_reset(struct server *s)
{
  struct stats *st = &s->st;
  st->requests = st->completed = st->aborted = st->connections_total = 0;
  memset(st->by_route, 0, sizeof st->by_route);
  st->peak_in_flight = st->in_flight;
  st->peak_connections = st->connections_open;
  failtab_clear(&s->fails);
}

static long long tv_us(struct timeval tv)
{
  return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

void stats_json(const struct server *s, struct buf *out)
{
  const struct stats *st = &s->st;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  getrusage(RUSAGE_SELF, &ru);
  buf_addf(out,
           "{\"requests\":%llu,\"completed\":%llu,\"in_flight\":%lld,"
           "\"peak_in_flight\":%lld,\"connections_open\":%lld,"
           "\"connections_total\":%llu,\"peak_connections\":%lld,\"aborted\":%llu,"
           "\"by_route\":{\"openai\":%llu,\"anthropic\":%llu,\"gemini\":%llu,"
           "\"health\":%llu,\"other\":%llu},\"cpu_user_us\":%lld,\"cpu_sys_us\":%lld}",
           st->requests, st->completed, st->in_flight, st->peak_in_flight,
           st->connections_open, st->connections_total, st->peak_connections,
           st->aborted, st->by_route[ROUTE_OPENAI], st->by_route[ROUTE_ANTHROPIC],
           st->by_route[ROUTE_GEMINI], st->by_route[ROUTE_HEALTH],
           st->by_route[ROUTE_OTHER], tv_us(ru.ru_utime), tv_us(ru.ru_stime));
}
