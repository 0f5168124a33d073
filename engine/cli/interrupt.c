/*
 * interrupt.c — Ctrl-C in the `tide` binary, and running a chunk as a task that
 * Ctrl-C cancels.
 *
 * SIGINT arrives through a uv_signal_t on the engine's loop, so its callback runs
 * from the loop like any other: it only counts.  Whoever is waiting (a running
 * task here, the line reader at the prompt) acts on the count between two turns of
 * the loop.  The handle is unreferenced: it never keeps the loop alive, so a
 * deadlock is still seen as one.
 *
 * Lua code that never waits never lets the loop turn, so a count hook (set on the
 * main thread, inherited by every task's coroutine) turns it without blocking
 * every HOOK_COUNT instructions while a task runs for cli_run_task; when Ctrl-C
 * came, the hook cancels that task and raises `cancelled` in the running code.
 * libuv's callbacks run no Lua, so turning the loop there is as safe as anywhere.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cli.h"

#define CLI_KEY "tide:cli"       /* registry: the cli, for the hook */
/* VM instructions between looks at the loop: rare enough to cost nothing
 * measurable, often enough that Ctrl-C stops `while true do end` at once
 * (spec/repl_spec.lua). */
#define HOOK_COUNT 1000000

static void interrupt_cb(uv_signal_t *h, int signum)
{
  cli *C = (cli *)h->data;
  (void)signum;
  if (C->cancelling) {
    /* a second Ctrl-C while the first one's cancellation unwinds: the user wants
     * out now, whatever is still closing (no cleanup, like a default SIGINT) */
    fflush(stdout);
    fputs("\n", stderr);
    _exit(130);
  }
  C->interrupts++;
}

/* [-0, +0] cancels the task cli_run_task waits for */
static void cancel_running(cli *C, lua_State *L)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, C->task_ref);
  lua_getfield(L, -1, "cancel");
  lua_insert(L, -2);
  lua_call(L, 1, 0);
  C->cancelling = 1;
  C->interrupted = 1;
}

/* The count hook: turns the loop and, after a Ctrl-C, cancels the task
 * cli_run_task waits for and raises `cancelled` in the code running on L.
 * [-0, +0, e]: the registry's cli, then tide.core.error and its two arguments. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
  cli *C;
  (void)ar;
  if (lua_pushthread(L)) {   /* the main thread: the binary's own calls, never stopped */
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, CLI_KEY);
  C = (cli *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (C == NULL || C->task_ref == LUA_NOREF)
    return;
  uv_run(tide_loop(C->E), UV_RUN_NOWAIT);   /* a pending SIGINT reaches interrupt_cb */
  if (!cli_take_interrupt(C))
    return;
  cancel_running(C, L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "tide.core");
  lua_getfield(L, -1, "error");
  lua_pushliteral(L, "cancelled");
  lua_pushliteral(L, "interrupted (Ctrl-C) while running Lua code");
  lua_call(L, 2, 1);
  lua_error(L);
}

void cli_interrupt_open(cli *C)
{
  if (C->sigint_open)
    return;
  uv_signal_init(tide_loop(C->E), &C->sigint);
  C->sigint.data = C;
  uv_signal_start(&C->sigint, interrupt_cb, SIGINT);
  uv_unref((uv_handle_t *)&C->sigint);
  C->sigint_open = 1;
  C->task_ref = LUA_NOREF;
  lua_pushlightuserdata(C->L, C);
  lua_setfield(C->L, LUA_REGISTRYINDEX, CLI_KEY);
  lua_sethook(C->L, interrupt_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

void cli_interrupt_close(cli *C)
{
  if (!C->sigint_open)
    return;
  uv_close((uv_handle_t *)&C->sigint, NULL);   /* the engine's last loop run ends it */
  C->sigint_open = 0;
  lua_sethook(C->L, NULL, 0, 0);
  lua_pushnil(C->L);
  lua_setfield(C->L, LUA_REGISTRYINDEX, CLI_KEY);
}

int cli_take_interrupt(cli *C)
{
  if (C->interrupts == 0)
    return 0;
  C->interrupts = 0;
  return 1;
}

/* Whether the task at idx is still pending or running.  [-0, +0, e] */
static int task_is_live(lua_State *L, int idx)
{
  const char *s;
  int live;
  lua_getfield(L, idx, "status");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  s = lua_tostring(L, -1);
  live = s && (strcmp(s, "pending") == 0 || strcmp(s, "running") == 0);
  lua_pop(L, 1);
  return live;
}

int cli_run_task(cli *C, int nargs)
{
  lua_State *L = C->L;
  int base = lua_gettop(L) - nargs;   /* the function */
  int st;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "tide.core");
  lua_getfield(L, -1, "spawn");
  lua_replace(L, -3);
  lua_pop(L, 1);
  lua_rotate(L, base, 1);             /* spawn, function, args */
  lua_call(L, nargs + 1, 1);          /* the task, at base */
  C->interrupts = 0;                  /* a Ctrl-C from before it started is not for it */
  C->interrupted = 0;
  lua_pushvalue(L, base);
  C->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  while (task_is_live(L, base)) {
    if (cli_take_interrupt(C))
      cancel_running(C, L);
    if (tide_wait(C->E) < 0)
      break;   /* nothing can wake it: task:wait reports the deadlock */
  }
  luaL_unref(L, LUA_REGISTRYINDEX, C->task_ref);
  C->task_ref = LUA_NOREF;
  C->cancelling = 0;
  C->interrupts = 0;
  lua_getfield(L, base, "wait");
  lua_pushvalue(L, base);
  st = lua_pcall(L, 1, 1, 0);
  lua_replace(L, base);
  if (st == LUA_OK)
    return CLI_DONE;
  return C->interrupted ? CLI_INTERRUPTED : CLI_FAILED;
}
