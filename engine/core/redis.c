/*
 * redis.c — tide.core.redis: a Redis connection for Lua (redis_conn.c does the
 * connection, redis_reply.c the replies).
 *
 *   local r = core.redis{host = "127.0.0.1", port = 6379, password = pw, db = 0,
 *                        timeout = 2}
 *   r:command("SET", "k", "v")      --> "OK"  (waits in a task, or runs the loop)
 *   r:command("GET", "k")           --> "v"
 *   r:post("DEL", "k")              --> true: sent, its reply dropped (never waits)
 *   r:state()                       --> "connecting" | "ready" | "down" | "closed", why
 *   r:stats()                       --> {state, pending, connects, failures}
 *   r:close()                       -- also <close> and __gc
 *
 * Commands from many tasks go out pipelined on the one link, in call order.  A
 * command fails with kind "redis_unavailable" when the link is down (at once: the
 * caller falls back without waiting), lost, or silent for `timeout` seconds; an
 * error reply raises kind "redis" with its `code` (NOSCRIPT, OOM, WRONGPASS...).
 * The connection comes back by itself after a back-off.  Messages name host:port,
 * never the password.
 */
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis.h"

#define REDIS_MT "tide.redis"
#define REDIS_RESULT_MT "tide.redis_result"
#define ARGS_ON_STACK 16

typedef struct redis_box {
  redis_conn *conn;            /* NULL once closed */
} redis_box;

/* A command's wait: the result, and where it went (for its messages). */
typedef struct redis_wait {
  redis_result result;
  char where[300];
} redis_wait;

static const char *STATE_NAMES[] = {"connecting", "connecting", "ready", "down", "closed"};

static redis_conn *redis_check_open(lua_State *L)
{
  redis_box *b = (redis_box *)luaL_checkudata(L, 1, REDIS_MT);
  if (b->conn == NULL)
    luaL_error(L, "attempt to use a closed tide.redis");
  return b->conn;
}

/* [-0, +1, m] the error of a command that got no reply. */
static void unavailable_push(lua_State *L, const char *where, const char *why)
{
  error_push(L, "redis_unavailable", "redis %s is unavailable: %s", where, why);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "retryable");
}

/* ---- a command's wait ----------------------------------------------------------- */

static void redis_wait_cancel(op *o)
{
  redis_result_detach((redis_result *)o);
  op_complete(o);
}

static const op_class redis_wait_class = {"redis reply", redis_wait_cancel};

static int redis_wait_gc(lua_State *L)
{
  redis_wait *w = (redis_wait *)lua_touserdata(L, 1);
  redis_result_detach(&w->result);
  redis_value_free(w->result.reply);
  w->result.reply = NULL;
  return 0;
}

static int redis_command_k(lua_State *L, int status, lua_KContext ctx)
{
  redis_wait *w = (redis_wait *)ctx;
  redis_value *reply;
  (void)status;
  op_check(&w->result.op, L);
  reply = w->result.reply;
  if (reply == NULL) {
    unavailable_push(L, w->where, w->result.error);
    return lua_error(L);
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    redis_error_push(L, reply->str, reply->len, w->where);
    return lua_error(L);
  }
  redis_value_push(L, reply, w->where);
  redis_value_free(reply);
  w->result.reply = NULL;
  return 1;
}

/* A command's words: the arguments from 2 on.  argv and argvlen point at the
 * small arrays, or at userdata on L's stack for more than ARGS_ON_STACK. */
typedef struct redis_args {
  int argc;
  const char **argv;
  size_t *argvlen;
  const char *argv_small[ARGS_ON_STACK];
  size_t len_small[ARGS_ON_STACK];
} redis_args;

/* Counts them and checks each is a string or a number.  [-0, +0, v] */
static void redis_check_args(lua_State *L, redis_args *a)
{
  int i;
  a->argc = lua_gettop(L) - 1;
  a->argv = a->argv_small;
  a->argvlen = a->len_small;
  if (a->argc < 1)
    luaL_argerror(L, 2, "a command name expected");
  for (i = 2; i <= a->argc + 1; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, i, lua_pushfstring(L, "string or number expected, got %s",
                                          luaL_typename(L, i)));
  }
}

/* Points argv at their bytes (numbers become strings in place).  [-0, +0 or +2, m] */
static void redis_collect_args(lua_State *L, redis_args *a)
{
  int i;
  if (a->argc > ARGS_ON_STACK) {
    a->argv = (const char **)lua_newuserdatauv(L, sizeof *a->argv * (size_t)a->argc, 0);
    a->argvlen = (size_t *)lua_newuserdatauv(L, sizeof *a->argvlen * (size_t)a->argc, 0);
  }
  for (i = 0; i < a->argc; i++)
    a->argv[i] = lua_tolstring(L, i + 2, &a->argvlen[i]);
}

/* r:command(name, args...) → the reply; strings and numbers only. */
static int redis_lcommand(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  redis_conn *c = redis_check_open(L);
  redis_args a;
  redis_wait *w;
  redis_check_args(L, &a);
  engine_check_wait(E, L, "redis:command");
  redis_collect_args(L, &a);
  w = (redis_wait *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  op_init(&w->result.op, &redis_wait_class, E);
  luaL_setmetatable(L, REDIS_RESULT_MT);
  strncpy(w->where, redis_conn_where(c), sizeof w->where - 1);
  if (redis_conn_send(c, &w->result, a.argc, a.argv, a.argvlen) != 0) {
    unavailable_push(L, w->where, w->result.error);
    return lua_error(L);
  }
  return engine_await(E, L, &w->result.op, redis_command_k);
}

/* r:post(name, args...) → whether it was sent: a command whose reply nobody waits
 * for (releasing a lock from a __close handler, which must not wait). */
static int redis_lpost(lua_State *L)
{
  redis_conn *c;
  redis_args a;
  engine_upvalue(L);
  c = redis_check_open(L);
  redis_check_args(L, &a);
  redis_collect_args(L, &a);
  lua_pushboolean(L, redis_conn_send(c, NULL, a.argc, a.argv, a.argvlen) == 0);
  return 1;
}

/* ---- the connection's other methods --------------------------------------------- */

static int redis_lstate(lua_State *L)
{
  redis_box *b = (redis_box *)luaL_checkudata(L, 1, REDIS_MT);
  engine_upvalue(L);
  if (b->conn == NULL) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  lua_pushstring(L, STATE_NAMES[redis_conn_state(b->conn)]);
  lua_pushstring(L, redis_conn_error(b->conn));
  return 2;
}

static int redis_lstats(lua_State *L)
{
  redis_box *b = (redis_box *)luaL_checkudata(L, 1, REDIS_MT);
  int pending = 0;
  unsigned long connects = 0, failures = 0;
  engine_upvalue(L);
  if (b->conn)
    redis_conn_counts(b->conn, &pending, &connects, &failures);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, b->conn ? STATE_NAMES[redis_conn_state(b->conn)] : "closed");
  lua_setfield(L, -2, "state");
  lua_pushinteger(L, pending);
  lua_setfield(L, -2, "pending");
  lua_pushinteger(L, (lua_Integer)connects);
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, (lua_Integer)failures);
  lua_setfield(L, -2, "failures");
  return 1;
}

/* r:close(): what waits fails with redis_unavailable; closing twice is fine. */
static int redis_lclose(lua_State *L)
{
  redis_box *b = (redis_box *)luaL_checkudata(L, 1, REDIS_MT);
  tide_engine *E = (tide_engine *)lua_touserdata(L, lua_upvalueindex(1));
  if (b->conn && E && !E->closed)   /* a closed engine released it already */
    redis_conn_close(b->conn);
  b->conn = NULL;
  return 0;
}

static int redis_ltostring(lua_State *L)
{
  redis_box *b = (redis_box *)luaL_checkudata(L, 1, REDIS_MT);
  tide_engine *E = (tide_engine *)lua_touserdata(L, lua_upvalueindex(1));
  if (b->conn == NULL || E == NULL || E->closed)
    lua_pushliteral(L, "tide.redis (closed)");
  else
    lua_pushfstring(L, "tide.redis (%s, %s)", redis_conn_where(b->conn),
                    STATE_NAMES[redis_conn_state(b->conn)]);
  return 1;
}

/* ---- core.redis{...} -------------------------------------------------------------- */

/* The string field `name` of the options table at 1, or NULL when absent. */
static const char *opt_string(lua_State *L, const char *name, int required)
{
  int t = lua_getfield(L, 1, name);
  const char *s;
  if (t == LUA_TNIL && !required) {
    lua_pop(L, 1);
    return NULL;
  }
  if (t != LUA_TSTRING)
    luaL_argerror(L, 1, lua_pushfstring(L, "field '%s' must be a string (got %s)", name,
                                        luaL_typename(L, -1)));
  s = lua_tostring(L, -1);
  lua_pop(L, 1);   /* the options table keeps the string alive */
  return s;
}

static int opt_integer(lua_State *L, const char *name, int dflt, lua_Integer lo, lua_Integer hi)
{
  int isint;
  lua_Integer v;
  if (lua_getfield(L, 1, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < lo || v > hi)
    luaL_argerror(L, 1, lua_pushfstring(L, "field '%s' must be an integer from %I to %I",
                                        name, lo, hi));
  lua_pop(L, 1);
  return (int)v;
}

static int redis_lopen(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  redis_options o;
  redis_box *b;
  luaL_checktype(L, 1, LUA_TTABLE);
  o.host = opt_string(L, "host", 1);
  if (o.host[0] == '\0')
    luaL_argerror(L, 1, "field 'host' must not be empty");
  o.port = opt_integer(L, "port", 6379, 1, 65535);
  o.user = opt_string(L, "user", 0);
  o.password = opt_string(L, "password", 0);
  o.db = opt_integer(L, "db", 0, 0, 1 << 20);
  if (o.user && !o.password)
    luaL_argerror(L, 1, "field 'user' needs a 'password'");
  o.timeout = 2;
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL)
    o.timeout = engine_check_seconds(L, -1, 1, "timeout", 0);
  lua_pop(L, 1);
  b = (redis_box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->conn = NULL;
  luaL_setmetatable(L, REDIS_MT);
  b->conn = redis_conn_open(E, &o);
  if (b->conn == NULL)
    return luaL_error(L, "tide.redis: out of memory");
  return 1;
}

void redis_open_lib(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"command", redis_lcommand},
    {"post", redis_lpost},
    {"state", redis_lstate},
    {"stats", redis_lstats},
    {"close", redis_lclose},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"redis", redis_lopen},
    {NULL, NULL}
  };
  if (engine_newclass(L, REDIS_MT, methods)) {
    static const luaL_Reg meta[] = {
      {"__gc", redis_lclose},
      {"__close", redis_lclose},
      {"__tostring", redis_ltostring},
      {NULL, NULL}
    };
    lua_pushvalue(L, -3);   /* the engine */
    luaL_setfuncs(L, meta, 1);
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, REDIS_RESULT_MT)) {
    lua_pushcfunction(L, redis_wait_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
  /* hiredis 0.14 has no TLS: rediss:// URLs are refused with this said */
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "redis_tls");
  lua_pushfstring(L, "%d.%d.%d", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
  lua_setfield(L, -2, "hiredis_version");
}
