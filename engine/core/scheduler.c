/*
 * scheduler.c — operations, the ready queue and the one scheduler.
 *
 * The scheduler is `engine_drain`: it resumes the tasks whose operations completed.
 * It runs only from C code that Lua or the host called (tide.poll, a blocking call
 * on the main flow, tide_run), never from a libuv or libcurl callback; callbacks
 * only complete operations (`op_complete`), which queues the waiting task.
 */
#include "engine.h"

/* ---- registry references, counted so specs can prove none leak ------------ */

int engine_ref(tide_engine *E, lua_State *L)
{
  E->refs++;
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void engine_unref(tide_engine *E, lua_State *L, int ref)
{
  if (ref == LUA_NOREF || ref == LUA_REFNIL)
    return;
  E->refs--;
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

/* ---- operations ----------------------------------------------------------- */

void op_init(op *o, const op_class *cls, tide_engine *E)
{
  o->cls = cls;
  o->E = E;
  o->waiter = NULL;
  o->done = 0;
  o->deadlock = 0;
}

/* Keeps the loop from blocking in its poll phase while work is ready.  libuv runs
 * timers before it polls, so an op completed by a timer would otherwise wait for
 * the next I/O event; an active idle handle makes that poll return at once. */
static void engine_woken(uv_idle_t *h)
{
  (void)h;   /* nothing to do here: the scheduler runs once uv_run returns */
}

static void engine_wake(tide_engine *E)
{
  if (!uv_is_active((uv_handle_t *)E->wake))
    uv_idle_start(E->wake, engine_woken);
}

/* Called from callbacks: marks the op done and makes its task ready.  No Lua. */
void op_complete(op *o)
{
  if (o->done)
    return;
  o->done = 1;
  if (o->waiter)
    engine_enqueue(o->E, o->waiter);
  else
    engine_wake(o->E);
}

void engine_enqueue(tide_engine *E, task *t)
{
  if (t->queued || task_finished(t))
    return;
  t->queued = 1;
  t->ready_next = NULL;
  if (E->ready_tail)
    E->ready_tail->ready_next = t;
  else
    E->ready_head = t;
  E->ready_tail = t;
  engine_wake(E);
}

/* Resumes the tasks that are ready now.  Tasks made ready meanwhile wait for the
 * next round, so a task that keeps yielding cannot starve I/O. */
void engine_drain(tide_engine *E, lua_State *L)
{
  task *last = E->ready_tail;
  task *t;
  while (last && (t = E->ready_head) != NULL) {
    E->ready_head = t->ready_next;
    if (E->ready_head == NULL)
      E->ready_tail = NULL;
    t->ready_next = NULL;
    t->queued = 0;
    task_resume(E, L, t);
    if (t == last)
      break;
  }
}

/* Runs the loop until done() holds.  Returns 0, or -1 when nothing can make
 * progress any more (no ready task, no active handle): a deadlock. */
static int engine_loop_until(tide_engine *E, lua_State *L, int (*done)(const void *), const void *arg)
{
  for (;;) {
    engine_drain(E, L);
    if (done(arg))
      return 0;
    if (E->ready_head) {
      uv_run(E->loop, UV_RUN_NOWAIT);
      continue;
    }
    uv_idle_stop(E->wake);
    if (!uv_loop_alive(E->loop))
      return -1;
    uv_run(E->loop, UV_RUN_ONCE);
  }
}

static int op_is_done(const void *o)
{
  return ((const op *)o)->done;
}

static int engine_is_idle(const void *E)
{
  return ((const tide_engine *)E)->live_count == 0;
}

/* The main flow (no task) waits for o by running the loop; other tasks run
 * meanwhile.  When o can never complete it is cancelled — unlinked, its members
 * unwound — and marked, so that its continuation raises a deadlock error. */
void engine_block_until(tide_engine *E, lua_State *L, op *o)
{
  if (engine_loop_until(E, L, op_is_done, o) == 0)
    return;
  o->deadlock = 1;
  o->cls->cancel(o);
  engine_loop_until(E, L, op_is_done, o);
}

/* ---- waiting -------------------------------------------------------------- */

void engine_raise_if_cancelled(tide_engine *E, lua_State *L)
{
  if (E->current && E->current->cancelled)
    error_raise(L, "cancelled", "task cancelled");
}

void op_check(op *o, lua_State *L)
{
  engine_raise_if_cancelled(o->E, L);
  if (o->deadlock)
    error_raise(L, "deadlock", "the main flow waits for a %s that no task or I/O can complete",
                o->cls->what);
}

void engine_check_wait(tide_engine *E, lua_State *L, const char *fname)
{
  task *t = E->current;
  if (t == NULL)
    return;   /* the main flow: the call will run the loop until it is done */
  if (t->co != L)
    luaL_error(L, "%s: cannot wait inside a plain coroutine (coroutine.wrap or "
                  "coroutine.resume) within a task; run that code with tide.spawn instead", fname);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot wait here: a C function that cannot yield (a metamethod, "
                  "a table.sort comparator, ...) is between this call and its task", fname);
  engine_raise_if_cancelled(E, L);
}

int engine_await_ctx(tide_engine *E, lua_State *L, op *o, lua_KFunction k, lua_KContext ctx)
{
  if (o->waiter)   /* already queued to run again (sleep(0)): a plain yield */
    return lua_yieldk(L, 0, ctx, k);
  if (o->done)
    return k(L, LUA_OK, ctx);
  if (E->current == NULL) {
    engine_block_until(E, L, o);
    return k(L, LUA_OK, ctx);
  }
  o->waiter = E->current;
  E->current->op = o;
  return lua_yieldk(L, 0, ctx, k);
}

void engine_poll(tide_engine *E, lua_State *L)
{
  if (E->owns_loop)
    uv_run(E->loop, UV_RUN_NOWAIT);
  engine_drain(E, L);
}

int engine_run_until_idle(tide_engine *E, lua_State *L)
{
  return engine_loop_until(E, L, engine_is_idle, E);
}
