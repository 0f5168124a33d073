/*
 * embed.c — the engine's lifetime and the rest of tide.h: attaching an engine to
 * a lua_State, driving it from a host (tide_poll, tide_wait, tide_run), the
 * handler of errors nobody took, and closing it.
 *
 * tide_open starts only what the engine itself runs on: a libuv loop when the
 * host gives none, one idle handle, and libcurl (http_init).  It changes nothing
 * else in the process: no signal handler, no resource limit, no global state of
 * its own (the tide binary raises its descriptor limit itself: engine/cli/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define ENGINE_KEY "tide:engine"   /* registry field holding the engine userdata */
#define ENGINE_MT "tide.engine"
#define CLOSE_HOOKS_KEY "tide:close_hooks"   /* registry field: the at_close functions */

static void engine_print_error(lua_State *L, void *ud);

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
  redis_release(E);
  process_release_all(E);
  uv_idle_stop(E->wake);
  uv_close((uv_handle_t *)E->wake, engine_handle_free);
  if (E->owns_loop) {
    uv_run(E->loop, UV_RUN_DEFAULT);   /* only close callbacks are left */
    uv_loop_close(E->loop);
  }
}

/* core.at_close(fn): fn() runs on the main flow when the host calls tide_close,
 * before the tasks left are cancelled, so that it may still wait for work of its
 * own (the tracer sends the spans it has queued, within its own time bound). */
int engine_lat_close(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_getfield(L, LUA_REGISTRYINDEX, CLOSE_HOOKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, CLOSE_HOOKS_KEY);
  }
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

/* Runs the at_close functions in the order given; one that raises is reported to
 * the error handler and the close goes on.  [-0, +0, -] */
static void engine_run_close_hooks(tide_engine *E, lua_State *L)
{
  int top = lua_gettop(L);
  lua_Integer i, n;
  luaL_checkstack(L, 3, "tide_close");
  if (lua_getfield(L, LUA_REGISTRYINDEX, CLOSE_HOOKS_KEY) == LUA_TTABLE) {
    n = (lua_Integer)lua_rawlen(L, top + 1);
    for (i = 1; i <= n && !E->closed; i++) {
      lua_rawgeti(L, top + 1, i);
      if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        if (!lua_istable(L, -1)) {   /* the handler reads an error object's fields */
          lua_newtable(L);
          lua_insert(L, -2);
          lua_setfield(L, -2, "message");
        }
        engine_report_error(E, L);
      }
    }
  }
  lua_settop(L, top);
}

void tide_close(tide_engine *E)
{
  task *t;
  if (E->closed)
    return;
  engine_run_close_hooks(E, E->L);
  for (t = E->live; t; t = t->live_next)
    task_cancel(t);
  engine_run_until_idle(E, E->L);
  engine_release(E);
}

static int engine_gc(lua_State *L)
{
  engine_release((tide_engine *)lua_touserdata(L, 1));
  return 0;
}

/* Starts what the engine runs on: the loop (its own when loop is NULL), the wake
 * handle, libcurl and the multi handle.  Returns NULL, or what failed, with
 * everything started so far undone: one way back from every failure. */
static const char *engine_start(tide_engine *E, uv_loop_t *loop)
{
  if (loop == NULL) {
    if (uv_loop_init(&E->own_loop) != 0)
      return "cannot start a libuv loop";
    loop = &E->own_loop;
    E->owns_loop = 1;
  }
  E->loop = loop;
  E->wake = (uv_idle_t *)malloc(sizeof *E->wake);
  if (E->wake != NULL && http_init(E) == 0) {   /* http_init undoes its own part */
    uv_idle_init(E->loop, E->wake);
    return NULL;
  }
  free(E->wake);
  E->wake = NULL;
  if (E->owns_loop)
    uv_loop_close(E->loop);
  E->owns_loop = 0;
  return "cannot start libcurl";
}

tide_engine *tide_open(lua_State *L, uv_loop_t *loop)
{
  const char *failed;
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
  failed = engine_start(E, loop);
  if (failed)
    luaL_error(L, "tide: %s", failed);
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
  engine_poll(E, E->L);
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
  return engine_run_until_idle(E, E->L);
}

/* ---- errors nobody took ---------------------------------------------------- */

/* The default handler: one line with the message, then the traceback, on stderr,
 * and the error a <close> handler raised meanwhile, if any.  [-0, +0, m] with
 * the error object on top (4 slots of its fields meanwhile). */
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

