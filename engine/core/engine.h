/*
 * engine.h — the internal contract between the files of libtide (engine/core/).
 *
 * The picture: libuv and libcurl callbacks never run Lua.  They only complete
 * operations (`op_complete`), which moves the task waiting on the operation to the
 * engine's ready queue.  One scheduler (`engine_drain`) resumes ready tasks, always
 * from C code that Lua called or that the host called — never from a callback.
 *
 * Every async primitive follows one pattern:
 *
 *     engine_check_wait(E, L, "tide.sleep");   raise early if L cannot wait here
 *     ... allocate the op as a userdata on L's stack, start the I/O ...
 *     return engine_await(E, L, &op->op, continuation);
 *
 * engine_await yields the task (the continuation later pushes the results), or, on
 * the main thread, runs the loop until the op is done and calls the continuation
 * directly.
 *
 * Nothing declared here is exported: the core is compiled with hidden visibility,
 * and only tide.h's TIDE_API functions leave libtide.a and core.so.  Comments on
 * functions that move Lua values say their stack effect as the Lua manual does:
 * [-o, +p, x] pops o, pushes p, and x is "-" (never raises), "m" (raises only out
 * of memory), "v" (raises on purpose) or "e" (runs Lua code, may raise anything).
 */
#ifndef TIDE_ENGINE_H
#define TIDE_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "tide.h"

typedef struct task task;
typedef struct op op;
typedef struct group group;

/* What a pending operation knows how to do besides completing. */
typedef struct op_class {
  const char *what;        /* named in deadlock errors: "sleep", "request", ... */
  void (*cancel)(op *o);   /* abort the work; completes the op now or later */
} op_class;

struct op {
  const op_class *cls;
  tide_engine *E;
  task *waiter;            /* the task suspended on this op; NULL on the main thread */
  int done;
  int deadlock;            /* the main flow gave up on it: nothing could complete it */
};

enum task_status { TASK_PENDING, TASK_RUNNING, TASK_DONE, TASK_FAILED, TASK_CANCELLED };

struct task {
  tide_engine *E;
  lua_State *co;
  int anchor;              /* registry ref to the task's userdata while it is live */
  unsigned char status;
  unsigned char cancelled; /* cancellation requested: every wait raises from now on */
  unsigned char queued;    /* in the ready queue */
  unsigned char observed;  /* someone took its error (wait, result, gather) */
  unsigned char taken;     /* its error object itself was handed out (not just dropped
                            * by a gather): a close_error on it was seen */
  int nargs;               /* arguments waiting on co's stack for the first resume */
  int nres;                /* results on co's stack once done */
  op *op;                  /* what it waits for, or NULL */
  task *parent;            /* cancelling a task cancels its children */
  task *child_first, *sib_prev, *sib_next;
  task *ready_next;
  task *live_prev, *live_next;
  group *group;            /* the gather/race/timeout this task is a member of */
  int group_index;
  task *member_prev, *member_next;
  struct join_op *joiners; /* ops of tasks (or the main thread) waiting for this one */
};

/* One per lua_State.  Lives in a full userdata anchored in the registry. */
struct tide_engine {
  lua_State *L;            /* the main thread: scratch stack for tide_poll/tide_run */
  uv_loop_t *loop;
  uv_loop_t own_loop;
  uv_idle_t *wake;         /* active while work is ready: the loop must not block */
  int owns_loop;
  int closed;
  task *current;           /* the task being resumed right now, or NULL */
  task *ready_head, *ready_tail;
  task *live;              /* every task not finished yet */
  int live_count;
  int refs;                /* registry references held (specs check it returns to 0) */
  struct http_state *http; /* libcurl's side, private to the http files (http.h) */
  struct redis_conn *redis; /* open Redis connections (redis.h), closed with the engine */
  int timers;              /* uv timers open for sleeps and deadlines */
  uint64_t rng;            /* retry jitter: xorshift state, seeded per engine */
  tide_error_fn on_error;  /* errors of tasks nobody took (tide_set_error_handler) */
  void *on_error_ud;
  struct proc *procs;      /* child processes not yet freed (process.c) */
  int processes;
};

/* ---- scheduler.c: operations, the ready queue, the one scheduler ------------ */

int engine_ref(tide_engine *E, lua_State *L);      /* [-1, +0, m] luaL_ref + count */
void engine_unref(tide_engine *E, lua_State *L, int ref);   /* [-0, +0, -] */

void engine_enqueue(tide_engine *E, task *t);
void engine_drain(tide_engine *E, lua_State *L);   /* resume ready tasks until none */
void engine_block_until(tide_engine *E, lua_State *L, op *o);
/* What tide.poll and tide_poll do: on tide's own loop, collect finished I/O
 * without blocking; then resume every ready task. */
void engine_poll(tide_engine *E, lua_State *L);
/* Runs the loop until no task is left.  0, or -1 when the tasks left wait for
 * something no task or I/O can complete (a deadlock). */
int engine_run_until_idle(tide_engine *E, lua_State *L);

/* Raises unless L may wait: a task's own coroutine or the main flow outside tasks.
 * [-0, +0, v] */
void engine_check_wait(tide_engine *E, lua_State *L, const char *fname);
int engine_await_ctx(tide_engine *E, lua_State *L, op *o, lua_KFunction k, lua_KContext ctx);
#define engine_await(E, L, o, k) engine_await_ctx((E), (L), (o), (k), (lua_KContext)(o))
void op_init(op *o, const op_class *cls, tide_engine *E);
void op_complete(op *o);
/* Raises the cancellation error when the task running on L was cancelled.
 * [-0, +0, v] */
void engine_raise_if_cancelled(tide_engine *E, lua_State *L);
/* In a continuation: raises when the wait on o ended by cancellation or by a
 * deadlock of the main flow rather than by its completion.  [-0, +0, v] */
void op_check(op *o, lua_State *L);

/* ---- embed.c: the engine's lifetime and tide.h ------------------------------- */

tide_engine *engine_check(lua_State *L, int idx);  /* the engine at idx, not closed */
#define engine_upvalue(L) engine_check((L), lua_upvalueindex(1))
void engine_push(lua_State *L, tide_engine *E);     /* [-0, +1, -] the engine userdata */
/* [-1, +0, e] hands the error object on top of L (a task's nobody took) to the
 * engine's error handler. */
void engine_report_error(tide_engine *E, lua_State *L);
int engine_lat_close(lua_State *L);                 /* core.at_close(fn) */

/* ---- task.c ---------------------------------------------------------------- */

#define TASK_MT "tide.task"

/* [-(nargs+1), +1, m] spawns the function below the nargs values on top of L;
 * pushes the task's handle. */
task *task_spawn(tide_engine *E, lua_State *L, int nargs);
task *task_spawn_awaiter(tide_engine *E, lua_State *L);  /* [-1, +1, m] task -> waiter */
int task_is_callable(lua_State *L, int idx);             /* [-0, +0, -] */
void task_resume(tide_engine *E, lua_State *L, task *t); /* runs the task's Lua */
void task_cancel(task *t);                                /* no Lua */
task *task_check(lua_State *L, int idx);                  /* [-0, +0, v] */
/* [-0, +n, m] the results of a DONE task (only the first when first_only);
 * returns n. */
int task_push_results(lua_State *L, task *t, int first_only);
/* [-0, +1, -] the error object of a FAILED/CANCELLED task, while it finishes. */
void task_push_error(lua_State *L, task *t);
int task_finished(const task *t);
void task_abandon_all(tide_engine *E);             /* engine release: drop ops, no Lua */

/* ---- gather.c -------------------------------------------------------------- */

/* The scheduler calls this when member t of a group finished (t still
 * anchored).  [-0, +0, m] */
void group_member_done(tide_engine *E, lua_State *L, task *t);

/* ---- timer.c --------------------------------------------------------------- */

/* A one-shot libuv timer that calls fire(arg) — C only, no Lua — then closes
 * itself; timer_stop closes it early.  Counted in E->timers. */
uv_timer_t *timer_start(tide_engine *E, double seconds, void (*fire)(void *), void *arg);
op *timer_sleep_op(tide_engine *E, lua_State *L, double secs);   /* [-0, +1, m] */
void timer_stop(tide_engine *E, uv_timer_t *timer);

/* ---- http_multi.c: libcurl's side, behind E->http -------------------------- */

/* Starts libcurl (curl_global_init) and the engine's multi handle on E->loop.
 * 0, or -1 with everything it started undone. */
int http_init(tide_engine *E);
/* Aborts every transfer, frees every curl handle, closes the uv handles it
 * opened (their close callbacks run at the loop's next turn) and stops libcurl
 * (curl_global_cleanup).  No Lua. */
void http_release(tide_engine *E);
/* [-0, +0, m] sets transfers, sockets and idle_handles in the table on top. */
void http_push_stats(lua_State *L, const tide_engine *E);

/* ---- process.c ------------------------------------------------------------- */

/* Kills every running child (SIGKILL to its group), closes their pipes and
 * forgets them: their handles finish closing on the loop.  No Lua. */
void process_release_all(tide_engine *E);

/* ---- error.c --------------------------------------------------------------- */

#define ERROR_MT "tide.error"

/* [-0, +1, m] a new error object {kind=, message=} with the tide.error metatable. */
void error_push(lua_State *L, const char *kind, const char *fmt, ...);
int error_raise(lua_State *L, const char *kind, const char *fmt, ...);   /* [-0, +0, v] */
int error_is(lua_State *L, int idx, const char *kind);                   /* [-0, +0, -] */

/* ---- module.c: tide.core, and what every part registers with ---------------- */

/* The longest wait the API accepts, in seconds (~31 years).  Beyond it a number
 * is a mistake (1e300, inf), and its milliseconds would overflow a C long. */
#define ENGINE_MAX_SECONDS 1e9

/* The number of seconds at L[idx], given as argument `arg` (field NULL) or as
 * the field `field` of the table argument `arg`: a finite number from 0 (above 0
 * unless zero_ok) to ENGINE_MAX_SECONDS.  Anything else (NaN, inf, negative,
 * not a number) raises luaL_argerror naming it and the range.  [-0, +0, v] */
double engine_check_seconds(lua_State *L, int idx, int arg, const char *field, int zero_ok);

/* Sets every function of l into the module table on top of the stack, each with
 * the engine (the value just below the table) as its only upvalue.  [-0, +0, m]
 * Every *_open_lib(L) expects that same [engine, module] pair on top. */
void engine_setfuncs(lua_State *L, const luaL_Reg *l);

/* Pushes the metatable `name`; when it is new, fills it with `methods` (engine as
 * upvalue) and makes it its own __index, and returns 1 so the caller adds its
 * metamethods.  Expects the same [engine, module] pair on top.  [-0, +1, m] */
int engine_newclass(lua_State *L, const char *name, const luaL_Reg *methods);

/* ---- field_class.c: classes whose userdata answer fields too ---------------- */

/* As engine_newclass, but the methods go into the metatable's own __methods
 * table and `index` becomes __index: it answers the fields and ends with
 * engine_index_method for the rest.  [-0, +1, m] */
int engine_newclass_fields(lua_State *L, const char *name, const luaL_Reg *methods,
                           lua_CFunction index);

/* The tail of such an __index: pushes the method named by L[2] (nil when
 * there is none) from the metatable of the userdata L[1], and returns 1.
 * [-0, +3, -] */
int engine_index_method(lua_State *L);

/* Each part's functions into the module table: [engine, module] on top, as for
 * engine_setfuncs; each leaves the stack as it found it.  [-0, +0, m] */
void error_open_lib(lua_State *L);                 /* error, is_error */
void task_open_lib(lua_State *L);   /* spawn, current, task_settings, spawn_in, task_swap_settings */
void gather_open_lib(lua_State *L);                /* gather, map, race, timeout */
void timer_open_lib(lua_State *L);                 /* sleep */
void sync_open_lib(lua_State *L);                  /* semaphore */
void retry_open_lib(lua_State *L);                 /* retry */
void bucket_open_lib(lua_State *L);                /* bucket */
void http_open_lib(lua_State *L);   /* request, http_limits, tls_defaults, tls_check */
void stream_open_lib(lua_State *L);                /* stream */
void digest_open_lib(lua_State *L);                /* sha256 */
void otlp_open_lib(lua_State *L);                  /* otlp_body: spans as OTLP JSON */
void jsonnum_open_lib(lua_State *L);               /* json_scan, json_integers */
void process_open_lib(lua_State *L);              /* process */
void files_open_lib(lua_State *L);   /* mkdir_private, write_atomic, read_private, isatty,
                                      * term_columns, file_id */
void redis_open_lib(lua_State *L);                 /* redis */

/* ---- redis_conn.c ------------------------------------------------------------ */

/* Closes every Redis connection of E: what waits fails, handles close.  No Lua. */
void redis_release(tide_engine *E);

#endif
