/*
 * task.c — tasks: Lua coroutines owned by the engine.
 *
 * A task's handle is a userdata ("tide.task") whose first user value is the
 * coroutine and whose second, once it failed, is the error object.  While the task
 * is live the handle is anchored in the registry; when it ends the anchor goes, so a
 * finished task nobody holds is garbage like any other value.  A finished task keeps
 * its results on its coroutine's stack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* The task handle's user values. */
#define SLOT_THREAD 1   /* the coroutine */
#define SLOT_ERROR 2    /* the error object of a failed task */
#define SLOT_CONTEXT 3  /* the task's context (settings), inherited at spawn */

/* One waiter (a task or the main flow) on a task's end. */
typedef struct join_op {
  op op;
  task *target;
  struct join_op *next, *prev;
  int cancel_target;   /* gather owns the target: cancelling the wait cancels it */
} join_op;

static const char *const status_names[] = {"pending", "running", "done", "failed", "cancelled"};

int task_finished(const task *t)
{
  return t->status >= TASK_DONE;
}

task *task_check(lua_State *L, int idx)
{
  return (task *)luaL_checkudata(L, idx, TASK_MT);
}

/* [-0, +1] pushes the handle of a live task */
static void task_push_handle(lua_State *L, task *t)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
}

/* ---- links ----------------------------------------------------------------- */

static void task_link(tide_engine *E, task *t)
{
  t->live_next = E->live;
  if (E->live)
    E->live->live_prev = t;
  E->live = t;
  E->live_count++;
  t->parent = E->current;
  if (t->parent) {
    t->sib_next = t->parent->child_first;
    if (t->sib_next)
      t->sib_next->sib_prev = t;
    t->parent->child_first = t;
  }
}

static void task_unlink(tide_engine *E, task *t)
{
  task *c;
  if (t->live_prev)
    t->live_prev->live_next = t->live_next;
  else
    E->live = t->live_next;
  if (t->live_next)
    t->live_next->live_prev = t->live_prev;
  t->live_prev = t->live_next = NULL;
  E->live_count--;
  if (t->parent) {
    if (t->sib_prev)
      t->sib_prev->sib_next = t->sib_next;
    else
      t->parent->child_first = t->sib_next;
    if (t->sib_next)
      t->sib_next->sib_prev = t->sib_prev;
    t->sib_prev = t->sib_next = NULL;
    t->parent = NULL;
  }
  /* children spawned with tide.spawn may outlive their parent: they go on alone */
  for (c = t->child_first; c; ) {
    task *next = c->sib_next;
    c->parent = NULL;
    c->sib_prev = c->sib_next = NULL;
    c = next;
  }
  t->child_first = NULL;
}

/* ---- spawning -------------------------------------------------------------- */

/* [-(nargs+1), +1] spawns the function below the nargs values on top; pushes the
 * handle.  The task starts at the scheduler's next round. */
task *task_spawn(tide_engine *E, lua_State *L, int nargs)
{
  int base = lua_gettop(L) - nargs;   /* the function */
  lua_State *co;
  task *t;
  luaL_checkstack(L, 4, "tide.spawn");
  t = (task *)lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, TASK_MT);
  co = lua_newthread(L);
  lua_setiuservalue(L, -2, SLOT_THREAD);
  if (E->current) {   /* a child sees its parent's context until it sets its own */
    task_push_handle(L, E->current);
    lua_getiuservalue(L, -1, SLOT_CONTEXT);
    lua_setiuservalue(L, -3, SLOT_CONTEXT);
    lua_pop(L, 1);
  }
  lua_rotate(L, base, 1);             /* handle, function, args */
  lua_xmove(L, co, nargs + 1);
  t->E = E;
  t->co = co;
  t->nargs = nargs;
  t->status = TASK_PENDING;
  lua_pushvalue(L, -1);
  t->anchor = engine_ref(E, L);
  task_link(E, t);
  engine_enqueue(E, t);
  return t;
}

/* ---- finishing ------------------------------------------------------------- */

/* Ends t with status: unlinks it, tells its group and its waiters, drops its
 * anchor.  [-0, +0, m] */
static void task_finish(tide_engine *E, lua_State *L, task *t, int status)
{
  join_op *j;
  t->status = (unsigned char)status;
  t->op = NULL;
  task_unlink(E, t);
  if (t->group)
    group_member_done(E, L, t);
  while ((j = t->joiners) != NULL) {
    t->joiners = j->next;
    j->next = j->prev = NULL;
    op_complete(&j->op);
  }
  engine_unref(E, L, t->anchor);
  t->anchor = LUA_NOREF;
}

/* [-1, +0] turns the value on top of L into the task's error object: strings and
 * other plain values become {kind = "lua", message = ...}; tide errors get the
 * task's traceback when they have none.  Stores it in the handle. */
static void task_store_error(tide_engine *E, lua_State *L, task *t, int with_traceback)
{
  int err = lua_gettop(L);
  int is_tide = error_is(L, err, NULL);
  if (!is_tide && !lua_istable(L, err)) {
    const char *msg = luaL_tolstring(L, err, NULL);
    error_push(L, "lua", "%s", msg);
    lua_replace(L, err);
    lua_pop(L, 1);
    is_tide = 1;
  }
  if (is_tide && with_traceback) {
    lua_getfield(L, err, "traceback");
    if (lua_isnil(L, -1)) {
      luaL_traceback(L, t->co, NULL, 0);
      lua_setfield(L, err, "traceback");
    }
    lua_pop(L, 1);
  }
  task_push_handle(L, t);
  lua_pushvalue(L, err);
  lua_setiuservalue(L, -2, SLOT_ERROR);
  lua_pop(L, 2);
  (void)E;
}

/* Closes the coroutine's pending to-be-closed variables and lets it go.  A
 * coroutine that failed still has them: lua_resume leaves them for this, with
 * its error (the value at L[raised], as raised) on top of its stack, which its
 * <close> handlers receive.  When a handler raises, that new error ends up on
 * top instead: it is moved to L and 1 returned; else 0, nothing pushed.
 * raised is 0 for a coroutine that never ran.  [-0, +(0|1)] */
static int task_close_thread(lua_State *L, task *t, int raised)
{
  int status, failed = 0;
  luaL_checkstack(L, 4, "tide scheduler");
#if LUA_VERSION_RELEASE_NUM >= 50406
  status = lua_closethread(t->co, L);
#else
  status = lua_resetthread(t->co);
#endif
  if (status != LUA_OK) {   /* the task's own error still, or a handler's */
    lua_xmove(t->co, L, 1);
    failed = raised == 0 || !lua_rawequal(L, -1, raised);
    if (!failed)
      lua_pop(L, 1);
  }
  task_push_handle(L, t);
  lua_pushnil(L);
  lua_setiuservalue(L, -2, SLOT_THREAD);
  lua_pop(L, 1);
  t->co = NULL;
  return failed;
}

/* [-1, +0] keeps the error a <close> handler raised while the task unwound as
 * the task's error's `close_error` (a tide error: strings are wrapped as kind
 * "lua").  Only the task's own error objects get the field, never a table the
 * task raised as it was. */
static void task_keep_close_error(lua_State *L, task *t)
{
  int cerr = lua_gettop(L);
  if (!error_is(L, cerr, NULL) && !lua_istable(L, cerr)) {
    error_push(L, "lua", "%s", luaL_tolstring(L, cerr, NULL));
    lua_replace(L, cerr);
    lua_pop(L, 1);
  }
  task_push_handle(L, t);
  lua_getiuservalue(L, -1, SLOT_ERROR);
  if (error_is(L, -1, NULL)) {
    lua_pushvalue(L, cerr);
    lua_setfield(L, -2, "close_error");
  }
  lua_settop(L, cerr - 1);
}

/* t's coroutine stopped with an error on top of its stack: stores it as the
 * task's error object, closes the coroutine's <close> variables and finishes t.
 * [-0, +0, e]: up to four slots of L meanwhile (the error as raised, a copy, the
 * handle, the stored error). */
static void task_fail(tide_engine *E, lua_State *L, task *t)
{
  int cancelled, raised;
  luaL_checkstack(L, 8, "tide scheduler");
  lua_pushvalue(t->co, -1);   /* one copy stays for the <close> handlers */
  lua_xmove(t->co, L, 1);
  raised = lua_gettop(L);     /* the error as raised, to tell a handler's from it */
  lua_pushvalue(L, raised);
  task_store_error(E, L, t, 1);
  task_push_handle(L, t);
  lua_getiuservalue(L, -1, SLOT_ERROR);
  cancelled = t->cancelled && error_is(L, -1, "cancelled");
  lua_pop(L, 2);
  if (task_close_thread(L, t, raised))
    task_keep_close_error(L, t);
  lua_pop(L, 1);              /* raised */
  task_finish(E, L, t, cancelled ? TASK_CANCELLED : TASK_FAILED);
}

/* Resumes t once: its first run, or after its op completed.  [-0, +0, e] on L,
 * the thread that runs the scheduler. */
void task_resume(tide_engine *E, lua_State *L, task *t)
{
  task *prev = E->current;
  int nargs = 0, nres = 0, st;
  if (t->status == TASK_PENDING) {
    if (t->cancelled) {   /* cancelled before it ever ran: its function never starts */
      luaL_checkstack(L, 4, "tide scheduler");
      error_push(L, "cancelled", "task cancelled before it started");
      task_store_error(E, L, t, 0);
      if (task_close_thread(L, t, 0))   /* nothing to close: never happens */
        lua_pop(L, 1);
      task_finish(E, L, t, TASK_CANCELLED);
      return;
    }
    t->status = TASK_RUNNING;
    nargs = t->nargs;
  }
  t->op = NULL;
  E->current = t;
  st = lua_resume(t->co, L, nargs, &nres);
  E->current = prev;
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (t->op)
      return;   /* waits for its op: op_complete will queue it again */
    lua_pushliteral(t->co, "coroutine.yield called directly in a task; "
                           "use tide.sleep(0) to let other tasks run");
    task_fail(E, L, t);
  } else if (st == LUA_OK) {
    t->nres = nres;
    task_finish(E, L, t, TASK_DONE);
  } else {
    task_fail(E, L, t);
  }
}

/* ---- cancelling ------------------------------------------------------------ */

/* Requests cancellation of t and of its children.  No Lua runs: ops abort their
 * I/O and the tasks raise "cancelled" when the scheduler resumes them. */
void task_cancel(task *t)
{
  task *c;
  if (task_finished(t) || t->cancelled)
    return;
  t->cancelled = 1;
  for (c = t->child_first; c; c = c->sib_next)
    task_cancel(c);
  if (t->status == TASK_PENDING)
    engine_enqueue(t->E, t);
  else if (t->op && !t->op->done)
    t->op->cls->cancel(t->op);
  /* else it is running right now, or already ready: its next wait raises */
}

/* ---- results --------------------------------------------------------------- */

/* [-0, +n] pushes the results of a DONE task (only the first when first_only,
 * nil when there is none); returns how many. */
int task_push_results(lua_State *L, task *t, int first_only)
{
  int i, n = first_only ? 1 : t->nres;
  int top = lua_gettop(t->co) - t->nres;
  luaL_checkstack(L, n + 1, "too many results");
  if (t->nres == 0) {
    if (first_only)
      lua_pushnil(L);
    return first_only;
  }
  for (i = 1; i <= n; i++) {
    lua_pushvalue(t->co, top + i);
    lua_xmove(t->co, L, 1);
  }
  return n;
}

/* [-0, +1] pushes the error object of a FAILED or CANCELLED task that is still
 * anchored (called while it finishes). */
void task_push_error(lua_State *L, task *t)
{
  t->observed = t->taken = 1;
  task_push_handle(L, t);
  lua_getiuservalue(L, -1, SLOT_ERROR);
  lua_remove(L, -2);
}

/* [-0, +n, v] pushes the results of the finished task t (its handle at L[idx]),
 * or raises its error. */
static int task_outcome(lua_State *L, int idx, task *t)
{
  if (t->status == TASK_DONE)
    return task_push_results(L, t, 0);
  t->observed = t->taken = 1;
  lua_getiuservalue(L, idx, SLOT_ERROR);
  return lua_error(L);
}

/* ---- waiting for a task ---------------------------------------------------- */

static void join_unlink(join_op *j)
{
  task *t = j->target;
  if (j->prev)
    j->prev->next = j->next;
  else if (t->joiners == j)
    t->joiners = j->next;
  if (j->next)
    j->next->prev = j->prev;
  j->next = j->prev = NULL;
}

static void join_cancel(op *o)
{
  join_op *j = (join_op *)o;
  if (j->cancel_target && !task_finished(j->target)) {
    task_cancel(j->target);   /* its end completes this op */
    return;
  }
  join_unlink(j);
  op_complete(o);
}

static const op_class join_class = {"task", join_cancel};

/* [-0, +1, m] starts waiting for the task t (not finished): pushes the join op. */
static join_op *join_start(tide_engine *E, lua_State *L, task *t, int cancel_target)
{
  join_op *j = (join_op *)lua_newuserdatauv(L, sizeof *j, 0);
  op_init(&j->op, &join_class, E);
  j->target = t;
  j->cancel_target = cancel_target;
  j->prev = NULL;
  j->next = t->joiners;
  if (j->next)
    j->next->prev = j;
  t->joiners = j;
  return j;
}

/* The waiting frame: 1 the task handle, 2 the join op.  [-0, +n, v] */
static int task_wait_k(lua_State *L, int status, lua_KContext ctx)
{
  join_op *j = (join_op *)ctx;
  (void)status;
  op_check(&j->op, L);
  return task_outcome(L, 1, j->target);
}

/* task:wait() → the task's results; raises its error. */
static int task_lwait(lua_State *L)
{
  task *t = task_check(L, 1);
  tide_engine *E = engine_upvalue(L);
  join_op *j;
  lua_settop(L, 1);
  if (task_finished(t))
    return task_outcome(L, 1, t);
  engine_check_wait(E, L, "task:wait");
  if (E->current == t)
    luaL_error(L, "task:wait: a task cannot wait for itself");
  j = join_start(E, L, t, 0);
  return engine_await(E, L, &j->op, task_wait_k);
}

/* The body of the task gather spawns for a task given to it: waits for that
 * task and cancels it when the gather is cancelled. */
static int task_await_body(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  task *t = task_check(L, 1);
  join_op *j;
  lua_settop(L, 1);
  if (task_finished(t))
    return task_outcome(L, 1, t);
  j = join_start(E, L, t, 1);
  return engine_await(E, L, &j->op, task_wait_k);
}

/* ---- on_done: a callback the scheduler runs once a task has finished ------- */

static int on_done_end(lua_State *L, int status, lua_KContext ctx)
{
  (void)L, (void)status, (void)ctx;
  return 0;
}

/* The frame: 1 target, 2 fn (above them, maybe the join op).  Calls fn(target);
 * the callback may wait, it runs in a task.  [-0, +0, e] */
static int on_done_fire(lua_State *L)
{
  task *t = task_check(L, 1);
  if (t->status != TASK_DONE)
    t->observed = t->taken = 1;   /* the callback is handed the failure */
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  lua_callk(L, 1, 0, 0, on_done_end);
  return 0;
}

static int on_done_k(lua_State *L, int status, lua_KContext ctx)
{
  join_op *j = (join_op *)ctx;
  (void)status;
  op_check(&j->op, L);
  return on_done_fire(L);
}

/* The body of the task on_done spawns: waits for the target, then calls fn. */
static int on_done_body(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  task *t = task_check(L, 1);
  join_op *j;
  lua_settop(L, 2);
  if (task_finished(t))
    return on_done_fire(L);
  j = join_start(E, L, t, 0);
  return engine_await(E, L, &j->op, on_done_k);
}

/* task:on_done(fn) → the task that calls fn(task) once this one has finished
 * (done, failed or cancelled).  fn runs in the scheduler — inside tide.poll() for
 * a host — never inside an I/O callback; failures are handed to fn, not reported
 * as errors nobody took. */
static int task_lon_done(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  task_check(L, 1);
  luaL_argexpected(L, task_is_callable(L, 2), 2, "function");
  lua_settop(L, 2);
  engine_push(L, E);
  lua_pushcclosure(L, on_done_body, 1);
  lua_insert(L, 1);
  task_spawn(E, L, 2);
  return 1;
}

/* ---- the task handle's methods --------------------------------------------- */

static int task_lstatus(lua_State *L)
{
  task *t = task_check(L, 1);
  lua_pushstring(L, status_names[t->status]);
  return 1;
}

/* task:result() → the results of a finished task; raises its error; raises when
 * it is not finished (use wait to wait). */
static int task_lresult(lua_State *L)
{
  task *t = task_check(L, 1);
  if (!task_finished(t))
    return luaL_error(L, "task:result: the task is still %s; use task:wait() to wait for it",
                      status_names[t->status]);
  lua_settop(L, 1);
  return task_outcome(L, 1, t);
}

/* task:error() → the error object of a failed or cancelled task, else nil. */
static int task_lerror(lua_State *L)
{
  task *t = task_check(L, 1);
  if (t->status == TASK_FAILED || t->status == TASK_CANCELLED) {
    t->observed = t->taken = 1;
    lua_getiuservalue(L, 1, SLOT_ERROR);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/* task:cancel() → true when the task was still live. */
static int task_lcancel(lua_State *L)
{
  task *t = task_check(L, 1);
  int live = !task_finished(t);
  task_cancel(t);
  lua_pushboolean(L, live);
  return 1;
}

static int task_ltostring(lua_State *L)
{
  task *t = task_check(L, 1);
  lua_pushfstring(L, "tide.task (%s): %p", status_names[t->status], (void *)t);
  return 1;
}

/* An error nobody took would vanish silently: when the handle goes, it goes to
 * the engine's error handler (by default a line on stderr).  So does the error a
 * <close> handler raised as the task unwound (its error's close_error) when
 * nobody was handed that error object: a cancelled task's, or a gather member's
 * the gather dropped.  The engine's memory outlives every task handle, even
 * during lua_close (it was created first, so it is finalized last). */
static int task_lgc(lua_State *L)
{
  task *t = (task *)lua_touserdata(L, 1);
  if (t->status != TASK_FAILED && t->status != TASK_CANCELLED)
    return 0;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, SLOT_ERROR);
  if (t->status == TASK_FAILED && !t->observed) {
    t->observed = t->taken = 1;
    engine_report_error(t->E, L);   /* with its close_error, if any */
    return 0;
  }
  if (!t->taken && lua_istable(L, 2) && lua_getfield(L, 2, "close_error") != LUA_TNIL) {
    t->taken = 1;
    engine_report_error(t->E, L);
  }
  return 0;
}

/* ---- module functions ------------------------------------------------------ */

int task_is_callable(lua_State *L, int idx)
{
  if (lua_isfunction(L, idx))
    return 1;
  if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL)
    return 0;
  lua_pop(L, 1);
  return 1;
}

/* tide.spawn(fn, ...) → task */
static int task_lspawn(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  luaL_argexpected(L, task_is_callable(L, 1), 1, "function");
  task_spawn(E, L, lua_gettop(L) - 1);
  return 1;
}

/* core.task_settings() → the running task's settings table (inherited from the task
 * that spawned it), or nil on the main flow and in tasks without one. */
static int task_lsettings(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  if (E->current) {
    task_push_handle(L, E->current);
    lua_getiuservalue(L, -1, SLOT_CONTEXT);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/* core.task_swap_settings(context | nil) → the running task's context until now;
 * from now on the task, and the tasks it starts, see the given one.  A call that
 * must be the parent of what runs under it (tide/callbacks.lua) swaps its own in
 * and the old one back, without a task of its own. */
static int task_lswap_settings(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  luaL_argexpected(L, lua_istable(L, 1) || lua_isnil(L, 1), 1, "table or nil");
  if (E->current == NULL)
    return luaL_error(L, "task_swap_settings: only a task has settings of its own");
  lua_settop(L, 1);
  task_push_handle(L, E->current);
  lua_getiuservalue(L, 2, SLOT_CONTEXT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, SLOT_CONTEXT);
  return 1;
}

/* tide.spawn_in(context, fn, ...) → a task whose context (and its children's)
 * is the given table. */
static int task_lspawn_in(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, task_is_callable(L, 2), 2, "function");
  task_spawn(E, L, lua_gettop(L) - 2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, SLOT_CONTEXT);
  return 1;
}

/* tide.current() → the running task, or nil on the main flow */
static int task_lcurrent(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  if (E->current)
    task_push_handle(L, E->current);
  else
    lua_pushnil(L);
  return 1;
}

/* [-1, +1] spawns a task that waits for the task on top of L and is cancelled
 * with it; pushes its handle. */
task *task_spawn_awaiter(tide_engine *E, lua_State *L)
{
  engine_push(L, E);
  lua_pushcclosure(L, task_await_body, 1);
  lua_insert(L, -2);
  return task_spawn(E, L, 1);
}

void task_abandon_all(tide_engine *E)
{
  task *t;
  for (t = E->live; t; t = t->live_next)
    task_cancel(t);
  while ((t = E->live) != NULL) {
    t->status = TASK_CANCELLED;
    task_unlink(E, t);
    engine_unref(E, E->L, t->anchor);
    t->anchor = LUA_NOREF;
  }
  E->ready_head = E->ready_tail = NULL;
}

void task_open_lib(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"wait", task_lwait},
    {"status", task_lstatus},
    {"result", task_lresult},
    {"error", task_lerror},
    {"cancel", task_lcancel},
    {"on_done", task_lon_done},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"spawn", task_lspawn},
    {"current", task_lcurrent},
    {"task_settings", task_lsettings},
    {"spawn_in", task_lspawn_in},
    {"task_swap_settings", task_lswap_settings},
    {NULL, NULL}
  };
  if (engine_newclass(L, TASK_MT, methods)) {
    lua_pushcfunction(L, task_ltostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, task_lgc);
    lua_setfield(L, -2, "__gc");
    lua_getfield(L, -1, "cancel");
    lua_setfield(L, -2, "__close");   /* `local t <close> = tide.spawn(f)` */
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
