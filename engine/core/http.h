/*
 * http.h — between the halves of tide's HTTP, the only files that see libcurl:
 *
 *   http_multi.c    the curl↔libuv glue: the engine's multi handle, the uv_poll_t
 *                   per socket curl uses and the one timer it asks for, the
 *                   easy-handle pool, and a transfer's life from its easy handle
 *                   to its release; its callbacks copy bytes and complete ops.
 *   http_request.c  the Lua API: tide.request and tide.http_limits, the request
 *                   options (TLS trust, client certificates and proxies among
 *                   them), the response table and the transport errors.
 *   stream.c        tide.stream, on the same transfers.
 *
 * The engine holds this state as an opaque `struct http_state *` (engine.h).
 */
#ifndef TIDE_HTTP_H
#define TIDE_HTTP_H

#include <curl/curl.h>

#include "engine.h"

#define TRANSFER_MT "tide.transfer"
#define STREAM_MT "tide.stream"

/* The user values of a transfer's userdata, set by transfer_start: the strings
 * curl and the error messages read while the transfer lives.  A stream adds
 * its own after these. */
enum {
  SLOT_URL = 1,
  SLOT_BODY,               /* the request body (or nil): curl sends it without a copy */
  SLOT_METHOD,
  SLOT_PROXY,              /* the proxy without its credentials (or nil): errors name it */
  TRANSFER_SLOTS = SLOT_PROXY
};

typedef struct buffer {
  char *data;
  size_t len, cap, max;
} buffer;

typedef struct transfer {
  op op;
  CURL *easy;
  struct curl_slist *headers;
  buffer body;             /* the whole body, or a stream's unread bytes */
  buffer head;             /* the final response's raw header block */
  int status;              /* from the status line */
  int active;              /* added to the multi handle */
  int finished;            /* curl is done with it (result says how) */
  int headers_done;
  int too_large;
  int streaming;
  int reading;             /* a stream's reader waits on op */
  int paused;              /* a stream's writes are paused until the reader catches up */
  size_t received, max_total;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
  struct transfer *prev, *next;   /* transfers_live, while it holds an easy handle */
} transfer;

/* What the engine's E->http points to. */
struct http_state {
  CURLM *multi;
  CURLSH *share;           /* TLS sessions and DNS, for every transfer */
  long max_connections, max_host_connections;   /* caps set on the multi handle */
  uv_timer_t *curl_timer;  /* the one timer libcurl asks for */
  int transfers;           /* curl transfers in progress */
  int sockets;             /* uv_poll handles open for curl */
  struct http_socket *sockets_live;
  CURL **easy_pool;
  int easy_pooled, easy_pool_cap;
  transfer *transfers_live;   /* holding an easy handle (a stream nobody closed, too) */
};

/* ---- http_multi.c ----------------------------------------------------------- */

extern const op_class transfer_class;

/* Gives x an easy handle (from the pool) set up as every transfer's is: its
 * callbacks fill x's buffers, the share handle, no signals, http and https only,
 * connections closed across exec.  Returns it, or NULL out of memory. */
CURL *transfer_attach(tide_engine *E, transfer *x);
/* Hands x's easy handle to the multi handle: the transfer starts.  0, or -1 when
 * libcurl refuses it. */
int transfer_run(tide_engine *E, transfer *x);
/* Takes x out of the multi handle (curl closes its connection if mid-transfer). */
void transfer_detach(tide_engine *E, transfer *x);
/* Frees everything x holds; safe twice, and after the engine was released. */
void transfer_release(transfer *x);
int transfer_gc(lua_State *L);                     /* __gc: transfer_release */
/* Caps the connections in all and to one host; transfers over a cap wait. */
void http_set_limits(tide_engine *E, long total, long per_host);

/* ---- http_request.c ---------------------------------------------------------- */

/* [-0, +1, v] reads the request options in the table at L[opts] (fname names the
 * caller in errors), starts the transfer and pushes its userdata, with
 * TRANSFER_SLOTS + extra_slots user values (the first TRANSFER_SLOTS set). */
transfer *transfer_start(tide_engine *E, lua_State *L, int opts, const char *fname,
                         int streaming, int extra_slots);
/* [-0, +1, m] the response headers in head as a table: lower-case names, repeated
 * ones joined with ", ". */
void push_headers(lua_State *L, const buffer *head);
/* Whether the transfer whose userdata is at L[tidx] goes through a proxy. */
int transfer_has_proxy(lua_State *L, int tidx);
/* [-0, +0, v] raises the transport error of the failed transfer x, whose userdata
 * is at L[tidx] (its method and URL go in the message), after releasing it. */
int raise_transfer_error(lua_State *L, int tidx, transfer *x);

#endif
