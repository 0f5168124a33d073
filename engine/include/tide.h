/*
 * tide.h — the public embedding API of the tide engine.
 *
 * tide runs language-model programs written in Lua 5.4: a C core owns all waiting
 * (a libuv loop, libcurl's multi interface, timers) and exposes tasks, gather and
 * HTTP to Lua.  This header is all a host program needs; link libtide.a with
 * `pkg-config --libs lua5.4 libuv libcurl` (or `pkg-config --libs tide` once
 * installed).
 *
 * WAYS IN
 *
 *   1. From Lua alone: `require "tide"` (the C module `tide.core` is
 *      luaopen_tide_core).  The engine is created on first use, with a libuv loop
 *      of its own; Lua code drives it with tide.poll() or by simply calling
 *      async functions on the main flow (they run the loop until they are done).
 *
 *   2. From C, before any Lua code requires tide:
 *
 *        lua_State *L = luaL_newstate();
 *        luaL_openlibs(L);
 *        tide_engine *E = tide_open(L, &host_loop);     // or NULL: tide's own loop
 *        luaL_requiref(L, "tide.core", luaopen_tide_core, 0);  // or package.cpath
 *        lua_pop(L, 1);
 *        ... run Lua that calls tide.spawn(...) ...
 *        for (;;) {                    // the host's frame loop
 *          uv_run(&host_loop, UV_RUN_NOWAIT);   // the host runs its own loop...
 *          tide_poll(E);               // ...tide does its ready work, never blocks
 *          render_frame();
 *        }
 *        tide_close(E);                // cancels what is left, releases everything
 *        lua_close(L);
 *        uv_run(&host_loop, UV_RUN_DEFAULT);   // close callbacks of tide's handles
 *        uv_loop_close(&host_loop);             // 0: tide left nothing behind
 *
 * THE LOOP
 *
 *   On the host's loop (tide_open(L, loop)) tide only adds handles to it: the host
 *   keeps running it (uv_run with UV_RUN_NOWAIT once a frame, or UV_RUN_DEFAULT),
 *   and tide_poll() resumes the tasks whose I/O completed.  On tide's own loop
 *   (tide_open(L, NULL)) tide_poll() also runs that loop without blocking.
 *
 *   libuv and libcurl callbacks never run Lua: they only mark work as ready.  Lua
 *   runs when the host calls tide_poll/tide_wait/tide_run (or a Lua function of
 *   tide on the main flow), so a Lua error never unwinds through a libuv frame.
 *
 * FROM LUA, IN A HOST
 *
 *   local task = tide.spawn(fn, ...)   -- returns at once; fn runs at the next poll
 *   task:status()                      -- "pending" | "running" | "done" | "failed" | "cancelled"
 *   task:result()                      -- fn's results once done (raises its error)
 *   task:on_done(function(t) ... end)  -- runs inside a later tide_poll() once t ended
 *   tide.poll()                        -- what tide_poll does, from Lua (main flow only)
 *
 * ERRORS
 *
 *   Misuse of the Lua API raises at once.  A task that fails while somebody waits
 *   for it (task:wait, gather, on_done, task:result, task:error) hands its error to
 *   them.  The error of a task nobody took goes, when the task's handle is
 *   collected (at the latest at lua_close), to the engine's error handler: by
 *   default one line on stderr; tide_set_error_handler replaces it.  tide never
 *   calls exit() or abort().
 *
 * THREADS AND STATE
 *
 *   One engine per lua_State; the engine keeps no global mutable state, so two
 *   states (in one thread each) can each have their own.  Every function here must
 *   be called from the thread that owns the lua_State, from the main flow (not from
 *   inside a tide task), and never from inside a libuv callback.
 */
#ifndef TIDE_H
#define TIDE_H

#include <lua.h>
#include <uv.h>

#define TIDE_VERSION "0.1.0"

/* What libtide exports: these functions alone.  Everything else in it is
 * compiled with hidden visibility and made local to libtide.a, so a host's own
 * names never collide with tide's internals. */
#if defined(__GNUC__)
#define TIDE_API __attribute__((visibility("default")))
#else
#define TIDE_API
#endif

typedef struct tide_engine tide_engine;

/* Receives the error object of a task nobody took (a table with `kind`,
 * `message` and usually `traceback`), on top of L's stack.  It may read it and
 * call into Lua with lua_pcall; it must not raise, must not yield and must not
 * call back into tide_* functions.  Whatever it leaves on the stack is dropped. */
typedef void (*tide_error_fn)(lua_State *L, void *ud);

/* Attaches an engine to L.  `loop` is the host's libuv loop, or NULL to let tide
 * own one.  Returns the existing engine when L already has one (so call it before
 * any Lua code requires tide if the host's loop is to be used).  Never returns
 * NULL: raises a Lua error (call it under lua_pcall in a host that must survive)
 * when libcurl or libuv fails to start.  The engine lives in L: lua_close(L)
 * releases it even without tide_close. */
TIDE_API tide_engine *tide_open(lua_State *L, uv_loop_t *loop);

/* The engine attached to L, or NULL. */
TIDE_API tide_engine *tide_get(lua_State *L);

/* The libuv loop the engine runs on (the host's or its own).  A host may add its
 * own handles (signals, timers, pipes) to tide's own loop; tide_wait and tide_run
 * serve them too. */
TIDE_API uv_loop_t *tide_loop(tide_engine *E);

/* Does all work that is ready — on tide's own loop it first collects finished
 * transfers and expired timers without blocking — and runs every task that can
 * run until it waits again, including on_done callbacks; then returns.  Never
 * blocks.  Returns the number of live tasks (0 when the engine is idle). */
TIDE_API int tide_poll(tide_engine *E);

/* Like tide_poll, but first waits for at least one event on the loop (I/O, a
 * timer, a signal or any other handle's callback) when no task is ready.  For a
 * host with no frame loop of its own (a command-line tool, a REPL waiting on a
 * terminal) that runs its own handles on tide_loop(E).  Returns the number of live
 * tasks, or -1 when tasks are live but nothing can ever wake them (no task ready,
 * no active referenced handle on the loop): waiting would block forever. */
TIDE_API int tide_wait(tide_engine *E);

/* Runs the loop until no task is left.  Returns 0, or -1 when tasks remain that no
 * I/O can ever wake (a deadlock), leaving them in place. */
TIDE_API int tide_run(tide_engine *E);

/* Replaces the handler of errors nobody took (see ERRORS above); fn NULL restores
 * the default, which prints the message and traceback on stderr. */
TIDE_API void tide_set_error_handler(tide_engine *E, tide_error_fn fn, void *ud);

/* Cancels every live task, lets them unwind (their <close> variables run, their
 * transfers are aborted, their timers stopped), then releases the curl handles and
 * closes every uv handle tide opened — and tide's own loop, if it has one.  On the
 * host's loop the handles are closing when it returns: one more uv_run of that loop
 * finishes them.  The engine's Lua functions raise afterwards.  Called
 * automatically by lua_close; calling it earlier is allowed and idempotent. */
TIDE_API void tide_close(tide_engine *E);

/* The Lua module `tide.core` (what `require "tide"` builds on). */
TIDE_API int luaopen_tide_core(lua_State *L);

#endif
