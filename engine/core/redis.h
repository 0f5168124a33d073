/*
 * redis.h — between the files of tide's Redis client, the only files that see
 * hiredis:
 *
 *   redis_conn.c    one connection: hiredis's async context on the engine's loop
 *                   (our own uv_poll glue), name resolution off the loop thread's
 *                   path (uv_getaddrinfo), AUTH and SELECT on every connect, a
 *                   watchdog on replies, reconnection with back-off, closing.
 *   redis_reply.c   a reply copied out of hiredis (which frees its own when the
 *                   callback returns) and pushed as Lua values later, by the task.
 *   redis.c         the Lua API: tide.core.redis{...} and its methods.
 *
 * Callbacks never run Lua: a reply is copied into the command and completes its
 * op; the waiting task converts it when the scheduler resumes it.
 */
#ifndef TIDE_REDIS_H
#define TIDE_REDIS_H

#include <stddef.h>

#include "engine.h"

/* A reply, copied: strings keep their bytes, arrays their elements. */
typedef struct redis_value {
  int type;                    /* hiredis's REDIS_REPLY_* */
  long long integer;
  size_t len;                  /* bytes of str, or count of element */
  char *str;
  struct redis_value *element;
} redis_value;

enum redis_state { REDIS_RESOLVING, REDIS_CONNECTING, REDIS_READY, REDIS_DOWN, REDIS_CLOSED };

typedef struct redis_conn redis_conn;
typedef struct redis_cmd redis_cmd;

/* What a command's waiter sees when it is done: a reply, or why there is none. */
typedef struct redis_result {
  op op;
  redis_cmd *cmd;              /* NULL once done or abandoned */
  redis_value *reply;          /* owned; NULL until a reply came */
  char error[256];             /* set when the command failed without a reply */
} redis_result;

typedef struct redis_options {
  const char *host;
  int port;
  const char *user, *password; /* NULL: no AUTH */
  int db;
  double timeout;              /* seconds without a reply before the link is dropped */
} redis_options;

/* ---- redis_conn.c ---------------------------------------------------------- */

/* A connection that starts connecting now; NULL when out of memory. */
redis_conn *redis_conn_open(tide_engine *E, const redis_options *o);
/* Fails every command still waiting, closes the link and the handles; the
 * memory goes with the last handle's close callback.  No Lua. */
void redis_conn_close(redis_conn *c);
/* Sends argv (copied), or queues it while the host name resolves; 0, or -1 with
 * r->error set (down, closed, out of memory).  r is completed later; NULL: nobody
 * waits, and the reply is dropped. */
int redis_conn_send(redis_conn *c, redis_result *r, int argc, const char **argv,
                    const size_t *argvlen);
/* The waiter is gone (cancelled, collected): the reply, when it comes, is dropped. */
void redis_result_detach(redis_result *r);
int redis_conn_state(const redis_conn *c);
const char *redis_conn_error(const redis_conn *c);   /* the last failure, or "" */
const char *redis_conn_where(const redis_conn *c);   /* "host:port" */
void redis_conn_counts(const redis_conn *c, int *pending, unsigned long *connects,
                       unsigned long *failures);

/* ---- redis_reply.c --------------------------------------------------------- */

redis_value *redis_value_copy(const void *hiredis_reply);   /* NULL: out of memory */
void redis_value_free(redis_value *v);
/* [-0, +1, m] pushes v as Lua values; an error reply inside an array becomes an
 * error object (kind "redis"); nil inside an array becomes false. */
void redis_value_push(lua_State *L, const redis_value *v, const char *where);
/* [-0, +1, m] the error object of an error reply: kind "redis", code = its first
 * word (NOSCRIPT, OOM, WRONGPASS...). */
void redis_error_push(lua_State *L, const char *text, size_t len, const char *where);

#endif
