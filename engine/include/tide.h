/*
 * tide.h — the public embedding API of the tide engine.
 *
 * tide runs language-model programs written in Lua 5.4: a C core owns all waiting
 * (a libuv loop, libcurl's multi interface, timers) and exposes tasks, gather and
 * HTTP to Lua.  This header is all a host program needs.
 *
 * Two ways in:
 *
 *   1. From Lua: `require "tide"` (the module `tide.core` is `luaopen_tide_core`).
 *      The engine is created on first use with a libuv loop of its own.
 *
 *   2. From C, before any Lua code requires tide:
 *
 *        lua_State *L = luaL_newstate();
 *        luaL_openlibs(L);
 *        tide_engine *E = tide_open(L, host_loop);   // or NULL for tide's own loop
 *        luaL_requiref(L, "tide.core", luaopen_tide_core, 0);  // or package.cpath
 *        ...
 *        for (;;) {                // the host's frame loop
 *          tide_poll(E);           // does ready work, never blocks
 *          render_frame();
 *        }
 *        tide_close(E);            // cancels what is left, releases everything
 *        lua_close(L);
 *
 * One engine per lua_State; the engine keeps no global mutable state, so two states
 * (in one thread each) can each have their own.  All functions must be called from
 * the thread that owns the lua_State, and never from inside a libuv callback.
 */
#ifndef TIDE_H
#define TIDE_H

#include <lua.h>
#include <uv.h>

#define TIDE_VERSION "0.1.0"

typedef struct tide_engine tide_engine;

/* Attaches an engine to L.  `loop` is the host's libuv loop, or NULL to let tide own
 * one.  Returns the existing engine when L already has one.  Never returns NULL:
 * raises a Lua error (use lua_pcall around it in a host) when libcurl or libuv fails
 * to start. */
tide_engine *tide_open(lua_State *L, uv_loop_t *loop);

/* The engine attached to L, or NULL. */
tide_engine *tide_get(lua_State *L);

/* The libuv loop the engine runs on (the host's or its own). */
uv_loop_t *tide_loop(tide_engine *E);

/* Does all work that is ready — finished transfers and timers are collected without
 * blocking, and every task that can run runs until it waits again — then returns.
 * Returns the number of live tasks (0 when the engine is idle). */
int tide_poll(tide_engine *E);

/* Runs the loop until no task is left.  Returns 0, or -1 when tasks remain that no
 * I/O can ever wake (a deadlock), leaving them in place. */
int tide_run(tide_engine *E);

/* Cancels every live task, lets them unwind (their <close> variables run), aborts
 * their transfers and timers, and releases the curl and uv handles.  The engine's
 * Lua functions raise afterwards.  Called automatically by lua_close; calling it
 * earlier is allowed and idempotent. */
void tide_close(tide_engine *E);

/* The Lua module `tide.core`. */
int luaopen_tide_core(lua_State *L);

#endif
