/*
 * bucket.c — tide.bucket(rate, capacity): a token bucket for rate limits.
 *
 *   local rpm = tide.bucket(600 / 60, 10)   -- 10 requests/s, bursts of 10
 *   rpm:take()        -- waits until a token is there
 *   tpm:take(1200)    -- a call's estimated tokens
 *   tpm:put(300)      -- give back what the call did not use
 *
 * Tokens refill continuously at `rate` per second up to `capacity`.  A take of n
 * proceeds once the level reaches min(n, capacity) and may leave the level below
 * zero: a call larger than the bucket still goes, and the debt delays those after
 * it, so the long-run rate holds.  Takers are served first come, first served; only
 * the oldest waits on a timer.
 */
#include <math.h>

#include "engine.h"

#define BUCKET_MT "tide.bucket"

typedef struct bucket_op bucket_op;

typedef struct bucket {
  tide_engine *E;
  double rate, capacity, level, last;
  bucket_op *head, *tail;
  int waiting;
  uv_timer_t *timer;    /* armed for the oldest waiter */
} bucket;

struct bucket_op {
  op op;
  bucket *b;
  double need;
  bucket_op *next, *prev;
  int queued;
};

static double now_seconds(void)
{
  return (double)uv_hrtime() / 1e9;
}

static void bucket_refill(bucket *b)
{
  double now = now_seconds();
  b->level += (now - b->last) * b->rate;
  if (b->level > b->capacity)
    b->level = b->capacity;
  b->last = now;
}

static int bucket_can_take(const bucket *b, double n)
{
  return b->level >= (n < b->capacity ? n : b->capacity);
}

static void bucket_unqueue(bucket *b, bucket_op *w)
{
  if (!w->queued)
    return;
  if (w->prev)
    w->prev->next = w->next;
  else
    b->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    b->tail = w->prev;
  w->next = w->prev = NULL;
  w->queued = 0;
  b->waiting--;
}

static void bucket_serve(bucket *b);

static void bucket_timer_fired(void *arg)
{
  bucket *b = (bucket *)arg;
  b->timer = NULL;   /* it closes itself */
  bucket_serve(b);
}

/* Serves waiters in order while the level allows, then arms the timer for the
 * next one.  C only: runs in timer callbacks. */
static void bucket_serve(bucket *b)
{
  bucket_op *w;
  double wait;
  if (b->timer) {
    timer_stop(b->E, b->timer);
    b->timer = NULL;
  }
  bucket_refill(b);
  while ((w = b->head) != NULL && bucket_can_take(b, w->need)) {
    b->level -= w->need;
    bucket_unqueue(b, w);
    op_complete(&w->op);
  }
  if (w) {
    double target = w->need < b->capacity ? w->need : b->capacity;
    wait = (target - b->level) / b->rate;
    b->timer = timer_start(b->E, wait > 0 ? wait : 0, bucket_timer_fired, b);
  }
}

static void bucket_cancel(op *o)
{
  bucket_op *w = (bucket_op *)o;
  bucket *b = w->b;
  int was_head = b->head == w;
  bucket_unqueue(b, w);
  if (was_head)
    bucket_serve(b);
  op_complete(o);
}

static const op_class bucket_class = {"bucket", bucket_cancel};

static bucket *bucket_check(lua_State *L, int idx)
{
  return (bucket *)luaL_checkudata(L, idx, BUCKET_MT);
}

static int bucket_take_k(lua_State *L, int status, lua_KContext ctx)
{
  (void)status;
  op_check((op *)ctx, L);
  return 0;
}

/* bucket:take([n = 1]) — waits until n tokens may be taken, takes them. */
static int bucket_ltake(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  bucket *b = bucket_check(L, 1);
  lua_Number n = luaL_optnumber(L, 2, 1);
  bucket_op *w;
  luaL_argcheck(L, n >= 0 && n < HUGE_VAL, 2, "must be a finite number of tokens >= 0");
  engine_check_wait(E, L, "bucket:take");
  bucket_refill(b);
  if (b->head == NULL && bucket_can_take(b, n)) {
    b->level -= n;
    return 0;
  }
  lua_settop(L, 2);
  w = (bucket_op *)lua_newuserdatauv(L, sizeof *w, 0);
  op_init(&w->op, &bucket_class, E);
  w->b = b;
  w->need = n;
  w->queued = 1;
  w->next = NULL;
  w->prev = b->tail;
  if (b->tail)
    b->tail->next = w;
  else
    b->head = w;
  b->tail = w;
  b->waiting++;
  if (b->head == w)
    bucket_serve(b);
  return engine_await(E, L, &w->op, bucket_take_k);
}

/* bucket:put(n) — gives back tokens that were taken but not used. */
static int bucket_lput(lua_State *L)
{
  bucket *b = bucket_check(L, 1);
  lua_Number n = luaL_checknumber(L, 2);
  luaL_argcheck(L, n >= 0 && n < HUGE_VAL, 2, "must be a finite number of tokens >= 0");
  bucket_refill(b);
  b->level += n;
  if (b->level > b->capacity)
    b->level = b->capacity;
  if (b->head)
    bucket_serve(b);
  return 0;
}

/* bucket:level() → the tokens there now (negative while in debt) */
static int bucket_llevel(lua_State *L)
{
  bucket *b = bucket_check(L, 1);
  bucket_refill(b);
  lua_pushnumber(L, b->level);
  return 1;
}

static int bucket_lwaiting(lua_State *L)
{
  lua_pushinteger(L, bucket_check(L, 1)->waiting);
  return 1;
}

static int bucket_lgc(lua_State *L)
{
  bucket *b = (bucket *)lua_touserdata(L, 1);
  if (b->timer && !b->E->closed)
    timer_stop(b->E, b->timer);
  b->timer = NULL;
  return 0;
}

/* tide.bucket(rate, capacity) — starts full */
static int bucket_lnew(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  lua_Number rate = luaL_checknumber(L, 1);
  lua_Number capacity = luaL_checknumber(L, 2);
  bucket *b;
  /* finite: an infinite rate or capacity makes the level NaN (inf * 0, inf - inf) */
  luaL_argcheck(L, rate > 0 && rate < HUGE_VAL, 1, "must be a finite number of tokens per second > 0");
  luaL_argcheck(L, capacity >= 1 && capacity < HUGE_VAL, 2, "must be a finite number of tokens >= 1");
  b = (bucket *)lua_newuserdatauv(L, sizeof *b, 0);
  b->E = E;
  b->rate = rate;
  b->capacity = b->level = capacity;
  b->last = now_seconds();
  b->head = b->tail = NULL;
  b->waiting = 0;
  b->timer = NULL;
  luaL_setmetatable(L, BUCKET_MT);
  return 1;
}

void bucket_open_lib(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"take", bucket_ltake},
    {"put", bucket_lput},
    {"level", bucket_llevel},
    {"waiting", bucket_lwaiting},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"bucket", bucket_lnew},
    {NULL, NULL}
  };
  if (engine_newclass(L, BUCKET_MT, methods)) {
    lua_pushcfunction(L, bucket_lgc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
