/*
 * retry.c — tide.retry: the retry loop and its waits, in C.
 *
 *   tide.retry({tries = 6, base = 0.5, max_delay = 30, deadline = 120,
 *               max_retry_after = 300, on_retry = fn}, attempt, ...)
 *
 * calls attempt(...) until it returns.  An error is retried only when it is a table
 * whose `retryable` field is true (the LM providers mark rate limits, server errors
 * and timeouts so) and tries and time are left; never a cancellation.  The wait is
 * the server's `retry_after` when the error carries one (plus up to 10 % jitter, so
 * a crowd of callers does not come back at the same instant), else exponential
 * back-off with equal jitter: base * 2^(n-1), capped at max_delay, times [0.5, 1).
 * The final error gets `attempts`.  Waits are timers: other tasks run meanwhile.
 *
 * Only the decision and the waiting live here; what is retryable is the caller's
 * knowledge (C never learns what a provider is).
 */
#include <math.h>

#include "engine.h"

#define DEFAULT_TRIES 4
#define DEFAULT_BASE 0.5
#define DEFAULT_MAX_DELAY 30.0
#define DEFAULT_MAX_RETRY_AFTER 300.0
#define MAX_TRIES 1000000

/* The frame of tide.retry: 1 opts, 2 attempt, 3.. its arguments, then at r->top
 * this state's userdata; an attempt's results (or its error) come above it. */
typedef struct retry_state {
  int tries;             /* attempts allowed in all */
  int attempt;           /* attempts made so far */
  int nargs;             /* arguments of attempt, at stack slots 3.. */
  int top;               /* the state userdata's slot: results come above it */
  double base, max_delay, max_retry_after;
  double deadline;       /* absolute, in uv_hrtime seconds; 0: none */
  double delay;          /* the wait decided for the current retry */
  op *sleep;
} retry_state;

static double now_seconds(void)
{
  return (double)uv_hrtime() / 1e9;
}

/* A uniform number in [0, 1) from the engine's own generator (xorshift64*). */
static double engine_random(tide_engine *E)
{
  uint64_t x = E->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  E->rng = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* opts.field, a number of seconds (0 allowed), or dflt when absent.  [-0, +0, v] */
static double opt_seconds(lua_State *L, const char *field, double dflt)
{
  double v = dflt;
  if (lua_getfield(L, 1, field) != LUA_TNIL)
    v = engine_check_seconds(L, -1, 1, field, 1);
  lua_pop(L, 1);
  return v;
}

/* opts.tries: a whole number of attempts from 1 to MAX_TRIES, or the default.
 * [-0, +0, v] */
static int opt_tries(lua_State *L)
{
  lua_Integer n = DEFAULT_TRIES;
  if (lua_getfield(L, 1, "tries") != LUA_TNIL) {
    int ok;
    n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 1 || n > MAX_TRIES)
      luaL_argerror(L, 1, lua_pushfstring(L, "field 'tries' must be a whole number >= 1 and "
                                             "<= %d (got %s)", MAX_TRIES,
                                          luaL_tolstring(L, -1, NULL)));
  }
  lua_pop(L, 1);
  return (int)n;
}

/* How long to wait before the next attempt after the error on top of L, or -1
 * to give up.  [-0, +0, e] (the error's fields are read with their metamethods) */
static double retry_decide(tide_engine *E, lua_State *L, retry_state *r)
{
  int err = lua_gettop(L), retryable;
  double backoff, delay, ra = -1;
  if (!lua_istable(L, err) || error_is(L, err, "cancelled"))
    return -1;
  lua_getfield(L, err, "retryable");
  retryable = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!retryable || r->attempt >= r->tries || (E->current && E->current->cancelled))
    return -1;
  if (lua_getfield(L, err, "retry_after") == LUA_TNUMBER)
    ra = (double)lua_tonumber(L, -1);
  lua_pop(L, 1);
  backoff = r->base * pow(2.0, r->attempt - 1);
  if (backoff > r->max_delay)
    backoff = r->max_delay;
  if (ra >= 0) {
    if (ra > r->max_retry_after)
      return -1;   /* the server wants longer than we may wait: say so now */
    delay = ra * (1.0 + 0.1 * engine_random(E));
  } else {
    delay = backoff * (0.5 + 0.5 * engine_random(E));
  }
  if (r->deadline > 0 && now_seconds() + delay > r->deadline)
    return -1;
  return delay;
}

static int retry_attempt(lua_State *L, retry_state *r);

/* After the wait: the next attempt.  [-0, +n, e] */
static int retry_slept_k(lua_State *L, int status, lua_KContext ctx)
{
  retry_state *r = (retry_state *)ctx;
  (void)status;
  op_check(r->sleep, L);
  r->sleep = NULL;
  lua_settop(L, r->top);
  return retry_attempt(L, r);
}

/* Cuts the frame back to r->top (an attempt's error, on_retry's leftovers) and
 * waits r->delay, then attempts again.  [-(top - r->top), +n, e] */
static int retry_wait(lua_State *L, retry_state *r)
{
  tide_engine *E = engine_upvalue(L);
  lua_settop(L, r->top);
  r->sleep = timer_sleep_op(E, L, r->delay);
  return engine_await_ctx(E, L, r->sleep, retry_slept_k, (lua_KContext)r);
}

static int retry_notified_k(lua_State *L, int status, lua_KContext ctx)
{
  (void)status;
  return retry_wait(L, (retry_state *)ctx);
}

/* After an attempt: its results (the values above r->top), or the decision about
 * its error (on top): raise it, or call on_retry and wait.  [-0, +n, e] */
static int retry_called_k(lua_State *L, int status, lua_KContext ctx)
{
  retry_state *r = (retry_state *)ctx;
  tide_engine *E = engine_upvalue(L);
  if (status == LUA_OK || status == LUA_YIELD)
    return lua_gettop(L) - r->top;
  r->delay = retry_decide(E, L, r);
  if (r->delay < 0) {
    if (error_is(L, -1, NULL)) {
      lua_pushinteger(L, r->attempt);
      lua_setfield(L, -2, "attempts");
    }
    return lua_error(L);
  }
  if (lua_getfield(L, 1, "on_retry") != LUA_TNIL) {
    lua_pushvalue(L, -2);                 /* the error */
    lua_pushinteger(L, r->attempt);
    lua_pushnumber(L, r->delay);
    lua_callk(L, 3, 0, ctx, retry_notified_k);
  }
  return retry_wait(L, r);
}

/* [-0, +n, e] calls attempt(...) once more, under pcall. */
static int retry_attempt(lua_State *L, retry_state *r)
{
  int i;
  r->attempt++;
  luaL_checkstack(L, r->nargs + 1, "tide.retry");
  for (i = 2; i <= r->nargs + 2; i++)
    lua_pushvalue(L, i);
  return retry_called_k(L, lua_pcallk(L, r->nargs, LUA_MULTRET, 0, (lua_KContext)r, retry_called_k),
                        (lua_KContext)r);
}

/* tide.retry(opts, attempt, ...) → attempt(...)'s results */
static int retry_lretry(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  retry_state *r;
  int tries;
  double deadline, base, max_delay, max_retry_after;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, task_is_callable(L, 2), 2, "function");
  engine_check_wait(E, L, "tide.retry");
  if (lua_getfield(L, 1, "on_retry") != LUA_TNIL && !task_is_callable(L, -1))
    luaL_argerror(L, 1, "field 'on_retry' must be a function");
  lua_pop(L, 1);
  tries = opt_tries(L);
  deadline = opt_seconds(L, "deadline", 0);
  base = opt_seconds(L, "base", DEFAULT_BASE);
  max_delay = opt_seconds(L, "max_delay", DEFAULT_MAX_DELAY);
  max_retry_after = opt_seconds(L, "max_retry_after", DEFAULT_MAX_RETRY_AFTER);
  r = (retry_state *)lua_newuserdatauv(L, sizeof *r, 0);   /* above opts, attempt, args */
  r->top = lua_gettop(L);
  r->nargs = r->top - 3;
  r->tries = tries;
  r->attempt = 0;
  r->base = base;
  r->max_delay = max_delay;
  r->max_retry_after = max_retry_after;
  r->deadline = deadline > 0 ? now_seconds() + deadline : 0;
  r->sleep = NULL;
  return retry_attempt(L, r);
}

void retry_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"retry", retry_lretry},
    {NULL, NULL}
  };
  engine_setfuncs(L, funcs);
}
