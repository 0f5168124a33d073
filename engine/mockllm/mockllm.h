/* mockllm.h: types shared by the mock LLM server's files. */
#ifndef MOCKLLM_H
#define MOCKLLM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

/* mockllm ships with tide: the same number as TIDE_VERSION in
   engine/include/tide.h (spec/mockllm_hostile_spec.lua checks it). */
#define MOCKLLM_VERSION "0.1.0"

#define MAX_REQUEST   (8u << 20)   /* header + body; larger gets 413 */
#define MAX_HEADER    (64u << 10)  /* larger gets 431 */
#define READ_CHUNK    4096u        /* a connection's first read buffer */
#define FILL_CHUNK    (64u << 10)  /* one write of a huge body */

enum route {
  ROUTE_OPENAI, ROUTE_ANTHROPIC, ROUTE_GEMINI, ROUTE_HEALTH, ROUTE_OTHER,
  ROUTE_COUNTED,              /* routes below are never counted nor delayed */
  ROUTE_STATS = ROUTE_COUNTED, ROUTE_RESET, ROUTE_LOG
};

enum fault {
  FAULT_NONE, FAULT_DROP, FAULT_RESET_HEADERS, FAULT_RESET_BODY, FAULT_TRUNCATE,
  FAULT_MALFORMED, FAULT_EMPTY, FAULT_HTML, FAULT_ERROR_BODY, FAULT_HUGE,
  FAULT_DRIP, FAULT_HANG,
  FAULT_BLOCKED, FAULT_NO_TEXT,         /* 200 answers without usable text */
  FAULT_STREAM_ERROR, FAULT_STREAM_DROP, /* only on stream requests */
  FAULT_STREAM_CUT, FAULT_STREAM_RESET
};

/* error=NAME: a provider error with a fixed, real-looking body. */
enum scripted_error { ERROR_NONE, ERROR_CONTEXT_WINDOW, ERROR_QUOTA };

/* echo_key=: an error quoting the request's credential, as written or with
   each of its characters \u00XX-escaped in the JSON. */
enum echo_key { ECHO_NONE, ECHO_PLAIN, ECHO_ESCAPED };

/* usage=: token counts no provider should send (1e999, -1e20, 12.5, "12"). */
enum usage_mode { USAGE_REAL, USAGE_HUGE, USAGE_NEGATIVE, USAGE_FLOAT, USAGE_STRING };

/* sse_eol=: the line ending of the SSE framing; DEFAULT is the provider's. */
enum sse_eol { EOL_DEFAULT, EOL_LF, EOL_CR, EOL_CRLF };

/* One request's script: X-Mock-Scenario parsed over the server default.
   -1 (or 0 for status, NULL for reply) means "not given". */
struct scenario {
  long latency_ms;
  int status;
  long retry_after;
  long retry_after_date;
  long fail_first;
  const char *key;            /* fail_first counter name, points into source */
  size_t keylen;
  enum fault fault;
  unsigned long long size;    /* fault=huge */
  long interval_ms;           /* fault=drip */
  long drip_bytes;
  int endless;
  char *reply;                /* URL-decoded, owned; free with scenario_free */
  size_t reply_len;
  long stream_interval_ms;    /* pause between stream events */
  int finish_length;          /* finish=length: cut by max tokens */
  enum scripted_error error;
  enum echo_key echo_key;
  size_t echo_pad;            /* filler bytes before the echoed key */
  int bom;                    /* bodies and streams start with EF BB BF */
  enum sse_eol sse_eol;
  unsigned long long sse_filler; /* empty events before the first one */
  enum usage_mode usage;
  int lenient;                /* lenient=1: no strict checks of the request */
  unsigned long long cached;  /* cached=N: input tokens read from a prompt cache */
  int invalid_key;            /* invalid_key=1: the credential is refused */
  char *tool_calls;           /* tool_calls=NAME(ARGS)+...: URL-decoded, owned */
  size_t tool_calls_len;
  int tool_args_malformed;    /* tool_args=malformed */
  char *tool_turns;           /* tool_turns=T1|T2|...: one script per turn, owned */
  size_t tool_turns_len;
  char *react;                /* react=STEP|STEP|...: ReAct steps, owned */
  size_t react_len;
  unsigned long long context_tokens; /* context=N: longer prompts get error=context_window */
};

struct failent;
struct failtab {
  struct failent **slots;
  size_t nslots, count;
};

struct stats {
  unsigned long long requests, completed, aborted, connections_total;
  unsigned long long by_route[ROUTE_COUNTED];
  long long in_flight, peak_in_flight;
  long long connections_open, peak_connections;
};

/* One request as GET /__log shows it. Strings are owned by the entry. */
struct logent {
  unsigned long long seq;
  uint64_t t_ns;              /* uv_hrtime() when the request was in */
  enum route route;
  int status;                 /* 0: nothing was sent (drop, hang) */
  int stream;
  const char *auth;           /* a static header name, or NULL */
  char *path, *key, *model;   /* NULL shows as null */
  unsigned long long rid;     /* the request id its answer carried, 0: none */
};

/* The last LOG_CAP requests, oldest first from `first`. */
#define LOG_CAP 10000
struct reqlog {
  struct logent *ring;        /* allocated on the first entry */
  size_t first, count;
  unsigned long long seq;
};

struct conn;

struct server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  union {
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tty_t tty;
    uv_tcp_t tcp;
  } in;                       /* stdin, watched for --exit-on-stdin-eof */
  int in_open;
  int stopping;
  int no_accept;              /* --no-accept: listen, never accept (connect timeouts) */
  int lenient;                /* --lenient: no strict checks of requests */
  struct conn *conns;         /* every open connection, for shutdown */
  struct stats st;
  struct failtab fails;
  struct reqlog log;
  const char *default_scenario;
  long latency_ms;
  int quiet, verbose;
  unsigned long long next_id;
  unsigned long long next_rid;  /* request ids (x-request-id, request-id) */
  char *filler;               /* FILL_CHUNK bytes streamed by fault=huge/drip */
  char inbuf[256];            /* stdin bytes are read and dropped */
};

/* What http.c hands to respond.c; pointers are valid only during the call. */
struct request {
  const char *method;
  size_t method_len;
  int is_get, is_post;
  int http10;
  int keepalive;              /* the connection stays open after the answer */
  const char *target;
  size_t target_len;
  const char *scenario;
  size_t scenario_len;
  const char *body;
  size_t body_len;
  const char *auth;           /* name of the auth header it carried, or NULL */
  const char *cred;           /* that header's credential (for echo_key only) */
  size_t cred_len;
  int anthropic_version;      /* it carried an anthropic-version header */
  uint64_t t_ns;              /* when its last byte was read */
};

/* Parsed request head; offsets are relative to the request start in c->in. */
struct head {
  int done;
  size_t len;
  size_t scan;                /* bytes already searched for the blank line */
  int is_get, is_post, http10;
  size_t target_off, target_len;
  size_t scen_off, scen_len;
  int has_scen;
  unsigned long long clen;
  int has_clen, chunked, expect, continued;
  int keepalive;
  const char *auth;
  size_t cred_off, cred_len;  /* the first non-empty credential's value */
  int anthropic_version;
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;           /* latency, drip pacing, lingering close */
  uv_write_t wreq;            /* at most one write in flight per connection */
  uv_shutdown_t sreq;
  struct server *srv;
  struct conn *prev, *next;
  int handles;                /* closes still pending before free */

  struct buf in;
  size_t in_off;              /* start of the unconsumed input */
  struct head h;

  struct buf out;             /* head + body of the current response */
  size_t out_off;
  struct buf tail;            /* fault=huge: what follows the filler */
  unsigned long long fill_left;
  void (*after)(struct conn *);

  enum route shape;           /* the provider whose headers the answer has */
  unsigned long long rid;     /* its request id, 0: none */
  unsigned long long log_seq; /* its /__log entry */
  long proc_ms;               /* openai-processing-ms: the scripted latency */
  enum fault fault;
  long interval_ms;
  size_t drip_bytes;
  int endless;
  uint64_t read_ns;           /* time of the last read */

  /* A stream: its events lie back to back in `tail`; event i ends at ev_end[i]. */
  size_t *ev_end;
  size_t nev, iev;
  long ev_interval_ms;

  unsigned busy : 1;          /* a request is being answered */
  unsigned counted : 1;       /* ... and it counts in in_flight */
  unsigned keepalive : 1;
  unsigned http10 : 1;
  unsigned linger : 1;        /* after the answer, shut down and drain */
  unsigned closing : 1;
  unsigned reading : 1;
  unsigned in_pump : 1;
  unsigned tail_sent : 1;
  unsigned draining : 1;      /* lingering close: input is discarded */
  unsigned stream : 1;        /* the answer is a stream of events */
  unsigned chunked : 1;       /* ... framed as chunks (else ended by close) */
  unsigned cut : 1;           /* ... dropped after its last prepared event */
  unsigned cut_rst : 1;       /* ... by RST rather than FIN */
  unsigned bom : 1;           /* ... preceded by a byte-order mark */
  unsigned long long filler_left; /* ... and by this many empty events */
  const char *filler_event;   /* one of them, with the stream's line ending */
};

/* http.c */
int http_listen(struct server *s, const char *host, int port, char *addr, size_t addrlen);
void http_close_all(struct server *s);
void conn_send(struct conn *c, const char *p, size_t n, void (*after)(struct conn *));
/* The current request is answered; continue with the next one or close. */
void conn_done(struct conn *c);
void conn_close(struct conn *c, int rst);

/* request.c */
struct frame_error {
  int status;                 /* 400, 413 or 431 */
  const char *msg;            /* static */
};
/* Frames one request from p[0..n), the connection's unconsumed input, with h
   carrying the state of a head or body still incomplete between calls.
   *used: the bytes consumed (stray CRLFs too, even when more input is needed).
   Returns 1: *rq holds a complete request (pointing into p, or into body for a
   chunked one); 0: more input needed; -1: *fe says what to answer. */
int request_frame(struct head *h, const char *p, size_t n, struct request *rq,
                  struct buf *body, size_t *used, struct frame_error *fe);

/* route.c */
/* Length of the path in target t[0..n), without its query string. */
size_t path_len(const char *t, size_t n);
/* Non-zero when the query string of t[0..n) has name=..., and that value is
   `want` (or anything, for want == NULL). */
int query_has(const char *t, size_t n, const char *name, const char *want);
/* The first non-empty value of name=... in t[0..n)'s query string, still
   URL-encoded: 1 and (*v, *vn), or 0. */
int query_value(const char *t, size_t n, const char *name, const char **v, size_t *vn);
/* Route from the path; *shape is the error format for it, which for unknown
   paths follows the API prefix so a misrouted client can still parse it.
   *gstream is set for Gemini's streamGenerateContent, *model for Gemini. */
enum route route_of(const char *t, size_t n, enum route *shape,
                    const char **model, size_t *mlen, int *gstream);

/* respond.c */
void respond_start(struct conn *c, const struct request *rq);
void respond_fail(struct conn *c, int status, const char *msg);

/* scenario.c */
int scenario_parse(struct scenario *sc, const char *text, size_t len,
                   char *err, size_t errlen);
void scenario_init(struct scenario *sc, long default_latency);
void scenario_free(struct scenario *sc);
/* v[0..n) with %XX and '+' decoded, NUL-terminated; free it. */
char *url_decode(const char *v, size_t n, size_t *outlen);
unsigned long failtab_hit(struct failtab *t, const char *key, size_t len);
void failtab_clear(struct failtab *t);

/* log.c */
/* A copy of s[0..n) for an entry, cut at LOG_STR_MAX bytes; NULL for NULL. */
#define LOG_STR_MAX 512
char *log_dup(const char *s, size_t n);
/* Takes e's strings; the oldest entry goes when the ring is full. */
void log_add(struct reqlog *l, struct logent *e);
void log_clear(struct reqlog *l);
void log_json(const struct reqlog *l, struct buf *out);
/* The entry seq's client went away before its answer was out: status null. */
void log_abort(struct reqlog *l, unsigned long long seq);
/* A request id as route r's API writes it ("req_..."), into out[len]. */
void request_id(char *out, size_t len, enum route r, unsigned long long rid);

/* stats.c */
void stats_request(struct server *s, enum route r);
void stats_finish(struct server *s, int aborted);
void stats_conn_open(struct server *s);
void stats_conn_close(struct server *s);
void stats_reset(struct server *s);
void stats_json(const struct server *s, struct buf *out);

#endif
