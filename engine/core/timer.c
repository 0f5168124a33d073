/*
 * timer.c — one-shot timers and tide.sleep.
 *
 * A timer's uv handle is malloc'd apart from the op that waits on it: closing a
 * uv handle finishes one loop iteration later, after the op may be gone.
 *
 * A timer lasts at least what was asked, measured by uv_hrtime (tide.now).
 * libuv counts a timeout from the loop's cached time, which is as old as the
 * start of the loop iteration: after CPU-bound Lua a timer armed from it would
 * fire early by that much.  So each timer keeps its own deadline, arms from a
 * fresh loop time, and arms again for the rest if it still fires early (the
 * loop's clock counts whole milliseconds).
 */
#include <math.h>
#include <stdlib.h>

#include "engine.h"

/* Longest a timer waits at once (~11.6 days): a longer one re-arms when it fires,
 * so no conversion to libuv's milliseconds can overflow. */
#define TIMER_SLICE_NS ((uint64_t)1000000 * 1000000000)

typedef struct timer {
  uv_timer_t handle;
  tide_engine *E;
  uint64_t deadline;   /* uv_hrtime() at which to fire */
  void (*fire)(void *arg);
  void *arg;
} timer;

static void timer_closed(uv_handle_t *h)
{
  free(h);
}

static void timer_close(timer *tm)
{
  tm->E->timers--;
  uv_close((uv_handle_t *)&tm->handle, timer_closed);
}

static void timer_fired(uv_timer_t *h);

/* Arms the handle for what is left until the deadline, from a fresh loop time;
 * returns 0 when the deadline has passed. */
static int timer_arm(timer *tm)
{
  uint64_t now = uv_hrtime(), left;
  if (now >= tm->deadline)
    return 0;
  left = tm->deadline - now;
  if (left > TIMER_SLICE_NS)
    left = TIMER_SLICE_NS;
  uv_update_time(tm->E->loop);
  /* whole milliseconds, rounded up: never shorter than what is left */
  uv_timer_start(&tm->handle, timer_fired, (left + 999999) / 1000000, 0);
  return 1;
}

static void timer_fired(uv_timer_t *h)
{
  timer *tm = (timer *)h;
  if (timer_arm(tm))
    return;   /* fired early: the rest is armed */
  tm->fire(tm->arg);
  timer_close(tm);
}

/* The deadline `seconds` from now in uv_hrtime nanoseconds, saturating. */
static uint64_t deadline_after(double seconds)
{
  uint64_t now = uv_hrtime();
  double ns = ceil(seconds * 1e9);
  if (!(ns > 0))   /* also NaN */
    return now;
  if (ns >= (double)(UINT64_MAX - now))
    return UINT64_MAX;
  return now + (uint64_t)ns;
}

uv_timer_t *timer_start(tide_engine *E, double seconds, void (*fire)(void *), void *arg)
{
  timer *tm = (timer *)malloc(sizeof *tm);
  if (tm == NULL)
    return NULL;
  tm->E = E;
  tm->fire = fire;
  tm->arg = arg;
  tm->deadline = deadline_after(seconds);
  uv_timer_init(E->loop, &tm->handle);
  if (!timer_arm(tm)) {   /* due now: at the loop's next timer phase */
    uv_update_time(E->loop);
    uv_timer_start(&tm->handle, timer_fired, 0, 0);
  }
  E->timers++;
  return &tm->handle;
}

void timer_stop(tide_engine *E, uv_timer_t *h)
{
  (void)E;
  uv_timer_stop(h);
  timer_close((timer *)h);
}

/* ---- tide.sleep ------------------------------------------------------------ */

typedef struct sleep_op {
  op op;
  uv_timer_t *timer;
} sleep_op;

static void sleep_fired(void *arg)
{
  sleep_op *s = (sleep_op *)arg;
  s->timer = NULL;
  op_complete(&s->op);
}

static void sleep_cancel(op *o)
{
  sleep_op *s = (sleep_op *)o;
  if (s->timer) {
    timer_stop(o->E, s->timer);
    s->timer = NULL;
  }
  op_complete(o);
}

static const op_class sleep_class = {"sleep", sleep_cancel};

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
  sleep_op *s = (sleep_op *)ctx;
  (void)status;
  op_check(&s->op, L);
  return 0;
}

/* [-0, +1] pushes a sleep op that completes after `secs` (at the scheduler's next
 * round when secs is 0 inside a task: a plain yield behind every ready task).
 * The caller waits for it with engine_await and checks it with op_check. */
op *timer_sleep_op(tide_engine *E, lua_State *L, double secs)
{
  sleep_op *s = (sleep_op *)lua_newuserdatauv(L, sizeof *s, 0);
  op_init(&s->op, &sleep_class, E);
  s->timer = NULL;
  if (secs <= 0 && E->current) {
    s->op.done = 1;
    s->op.waiter = E->current;
    E->current->op = &s->op;
    engine_enqueue(E, E->current);
    return &s->op;
  }
  s->timer = timer_start(E, secs, sleep_fired, s);
  if (s->timer == NULL)
    luaL_error(L, "tide.sleep: out of memory");
  return &s->op;
}

/* tide.sleep(seconds): lets other tasks run meanwhile; sleep(0) just yields. */
static int timer_lsleep(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  double secs = engine_check_seconds(L, 1, 1, NULL, 1);
  op *o;
  engine_check_wait(E, L, "tide.sleep");
  o = timer_sleep_op(E, L, secs);
  return engine_await(E, L, o, sleep_k);
}

void timer_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"sleep", timer_lsleep},
    {NULL, NULL}
  };
  engine_setfuncs(L, funcs);
}
