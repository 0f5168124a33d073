/*
 * engine.c — the engine's lifetime, its ready queue and the one scheduler.
 *
 * The scheduler is `engine_drain`: it resumes the tasks whose operations completed.
 * It runs only from C code that Lua or the host called (tide.poll, a blocking call
 * on the main flow, tide_run), never from a libuv or libcurl callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define ENGINE_KEY "tide:engine"   /* registry field holding the engine userdata */
#define ENGINE_MT "tide.engine"

static void engine_print_error(lua_State *L, void *ud);

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

/* ---- lifetime ------------------------------------------------------------- */

tide_engine *tide_get(lua_State *L)
{
  tide_engine *E;
  lua_getfield(L, LUA_REGISTRYINDEX, ENGINE_KEY);
  E = (tide_engine *)luaL_testudata(L, -1, ENGINE_MT);
  lua_pop(L, 1);
  return E;
}

void engine_push(lua_State *L, tide_engine *E)
{
  (void)E;   /* one engine per state: the registry knows it */
  lua_getfield(L, LUA_REGISTRYINDEX, ENGINE_KEY);
}

uv_loop_t *tide_loop(tide_engine *E)
{
  return E->loop;
}

tide_engine *engine_check(lua_State *L, int idx)
{
  tide_engine *E = (tide_engine *)lua_touserdata(L, idx);
  if (E == NULL || E->closed)
    luaL_error(L, "tide: the engine is closed");
  return E;
}

static void engine_handle_free(uv_handle_t *h)
{
  free(h);
}

/* Releases what the engine holds without running Lua: used by __gc during
 * lua_close and at the end of tide_close. */
static void engine_release(tide_engine *E)
{
  if (E->closed)
    return;
  E->closed = 1;
  task_abandon_all(E);
  http_release(E);
  uv_idle_stop(E->wake);
  uv_close((uv_handle_t *)E->wake, engine_handle_free);
  if (E->owns_loop) {
    uv_run(E->loop, UV_RUN_DEFAULT);   /* only close callbacks are left */
    uv_loop_close(E->loop);
  }
  curl_global_cleanup();
}

void tide_close(tide_engine *E)
{
  task *t;
  if (E->closed)
    return;
  for (t = E->live; t; t = t->live_next)
    task_cancel(t);
  engine_loop_until(E, E->L, engine_is_idle, E);
  engine_release(E);
}

static int engine_gc(lua_State *L)
{
  engine_release((tide_engine *)lua_touserdata(L, 1));
  return 0;
}

tide_engine *tide_open(lua_State *L, uv_loop_t *loop)
{
  tide_engine *E = tide_get(L);
  if (E)
    return E;
  E = (tide_engine *)lua_newuserdatauv(L, sizeof *E, 0);
  memset(E, 0, sizeof *E);
  E->closed = 1;   /* until fully started: __gc must not release half an engine */
  if (luaL_newmetatable(L, ENGINE_MT)) {
    lua_pushcfunction(L, engine_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  E->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (loop) {
    E->loop = loop;
  } else {
    if (uv_loop_init(&E->own_loop) != 0)
      luaL_error(L, "tide: cannot start a libuv loop");
    E->loop = &E->own_loop;
    E->owns_loop = 1;
  }
  E->wake = (uv_idle_t *)malloc(sizeof *E->wake);
  if (E->wake == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || http_init(E) != 0) {
    free(E->wake);
    if (E->owns_loop)
      uv_loop_close(E->loop);
    luaL_error(L, "tide: cannot start libcurl");
  }
  uv_idle_init(E->loop, E->wake);
  E->rng = uv_hrtime() | 1;
  E->on_error = engine_print_error;
  E->closed = 0;
  lua_setfield(L, LUA_REGISTRYINDEX, ENGINE_KEY);
  return E;
}

/* ---- driving the loop from the host --------------------------------------- */

int tide_poll(tide_engine *E)
{
  if (E->closed)
    return 0;
  if (E->owns_loop)
    uv_run(E->loop, UV_RUN_NOWAIT);
  engine_drain(E, E->L);
  return E->live_count;
}

int tide_wait(tide_engine *E)
{
  if (E->closed)
    return 0;
  engine_drain(E, E->L);
  if (E->ready_head) {
    uv_run(E->loop, UV_RUN_NOWAIT);
  } else {
    uv_idle_stop(E->wake);   /* nothing ready: let the loop block for an event */
    if (!uv_loop_alive(E->loop))
      return E->live_count > 0 ? -1 : 0;
    uv_run(E->loop, UV_RUN_ONCE);
  }
  engine_drain(E, E->L);
  return E->live_count;
}

int tide_run(tide_engine *E)
{
  if (E->closed)
    return 0;
  return engine_loop_until(E, E->L, engine_is_idle, E);
}

/* ---- errors nobody took ---------------------------------------------------- */

/* The default handler: one line with the message, then the traceback, on stderr,
 * and the error a <close> handler raised meanwhile, if any. */
static void engine_print_error(lua_State *L, void *ud)
{
  const char *msg, *tb, *cmsg;
  (void)ud;
  lua_getfield(L, -1, "message");
  lua_getfield(L, -2, "traceback");
  lua_getfield(L, -3, "close_error");
  if (lua_istable(L, -1))
    lua_getfield(L, -1, "message");
  else
    lua_pushvalue(L, -1);
  msg = lua_isstring(L, -4) ? lua_tostring(L, -4) : "(an error object)";
  tb = lua_isstring(L, -3) ? lua_tostring(L, -3) : "";
  cmsg = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
  fprintf(stderr, "tide: a task failed and nobody took its error: %s\n%s\n", msg, tb);
  if (cmsg)
    fprintf(stderr, "tide: and a <close> handler failed as it unwound: %s\n", cmsg);
  fflush(stderr);
  lua_pop(L, 4);
}

void tide_set_error_handler(tide_engine *E, tide_error_fn fn, void *ud)
{
  E->on_error = fn ? fn : engine_print_error;
  E->on_error_ud = fn ? ud : NULL;
}

void engine_report_error(tide_engine *E, lua_State *L)
{
  int top = lua_gettop(L) - 1;
  luaL_checkstack(L, 8, "tide error handler");
  E->on_error(L, E->on_error_ud);
  lua_settop(L, top);   /* whatever the handler left, and the error */
}

/* ---- checking numbers the API is given ------------------------------------ */

/* [-0, +1] what the value at idx is, for an error message: a number as Lua
 * prints it ("nan" for every NaN), else its type. */
static const char *push_got(lua_State *L, int idx)
{
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number v = lua_tonumber(L, idx);
    if (v != v)
      return lua_pushliteral(L, "nan");
    lua_pushvalue(L, idx);
    return luaL_tolstring(L, -1, NULL);   /* leaves two; the caller raises */
  }
  return lua_pushstring(L, luaL_typename(L, idx));
}

double engine_check_seconds(lua_State *L, int idx, int arg, const char *field, int zero_ok)
{
  int isnum;
  double v = (double)lua_tonumberx(L, idx, &isnum);
  if (isnum && v <= ENGINE_MAX_SECONDS && (zero_ok ? v >= 0 : v > 0))
    return v;   /* the comparisons are false for NaN; inf fails the maximum */
  idx = lua_absindex(L, idx);   /* the messages say 1e9: ENGINE_MAX_SECONDS */
  if (field)
    lua_pushfstring(L, "field '%s' must be a number of seconds %s 0 and <= 1e9 (got %s)",
                    field, zero_ok ? ">=" : ">", push_got(L, idx));
  else
    lua_pushfstring(L, "a number of seconds %s 0 and <= 1e9 expected, got %s",
                    zero_ok ? ">=" : ">", push_got(L, idx));
  return (double)luaL_argerror(L, arg, lua_tostring(L, -1));
}

/* ---- the engine's own Lua functions --------------------------------------- */

static void engine_check_main_flow(tide_engine *E, lua_State *L, const char *fname)
{
  if (E->current)
    luaL_error(L, "%s: called inside a task; only the main flow (a host, a script's top "
                  "level outside tide) drives the loop", fname);
}

/* tide.poll() → number of live tasks; never blocks. */
static int engine_lpoll(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  engine_check_main_flow(E, L, "tide.poll");
  if (E->owns_loop)
    uv_run(E->loop, UV_RUN_NOWAIT);
  engine_drain(E, L);
  lua_pushinteger(L, E->live_count);
  return 1;
}

/* tide.run_until_idle() — runs the loop until no task is left. */
static int engine_lrun_idle(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  engine_check_main_flow(E, L, "tide.run");
  if (engine_loop_until(E, L, engine_is_idle, E) != 0)
    error_raise(L, "deadlock", "%d task(s) wait for something that no task or I/O can complete",
                E->live_count);
  return 0;
}

/* tide.stats() → what the engine holds right now. */
static int engine_lstats(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, E->live_count);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, E->refs);
  lua_setfield(L, -2, "refs");
  lua_pushinteger(L, E->transfers);
  lua_setfield(L, -2, "transfers");
  lua_pushinteger(L, E->sockets);
  lua_setfield(L, -2, "sockets");
  lua_pushinteger(L, E->timers);
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, E->easy_pooled);
  lua_setfield(L, -2, "idle_handles");
  return 1;
}

static int engine_lnow(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

void engine_setfuncs(lua_State *L, const luaL_Reg *l)
{
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, l, 1);
}

int engine_newclass(lua_State *L, const char *name, const luaL_Reg *methods)
{
  if (!luaL_newmetatable(L, name))
    return 0;
  lua_pushvalue(L, -3);   /* the engine */
  luaL_setfuncs(L, methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  return 1;
}

int luaopen_tide_core(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"poll", engine_lpoll},
    {"run_until_idle", engine_lrun_idle},
    {"stats", engine_lstats},
    {"now", engine_lnow},
    {NULL, NULL}
  };
  tide_open(L, NULL);
  lua_getfield(L, LUA_REGISTRYINDEX, ENGINE_KEY);
  lua_newtable(L);
  engine_setfuncs(L, funcs);
  error_open_lib(L);
  task_open_lib(L);
  gather_open_lib(L);
  timer_open_lib(L);
  sync_open_lib(L);
  retry_open_lib(L);
  bucket_open_lib(L);
  http_open_lib(L);
  stream_open_lib(L);
  digest_open_lib(L);
  files_open_lib(L);
  lua_pushliteral(L, TIDE_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
