/*
 * gather.c — structured fan-out: gather, map, race and timeout.
 *
 * All four are a group: member tasks started by one parent (a task or the main
 * flow), which waits on the group's op until every member has finished.  The group
 * never lets a member outlive it: on the first failure (gather), the first finisher
 * (race) or the deadline (timeout) it cancels the others and still waits for them
 * to unwind before it returns or raises.
 *
 * The group is a userdata on the parent's stack, also anchored in the registry while
 * members run, because members finish in the scheduler (group_member_done), where
 * only the registry can reach it.
 */
#include <string.h>

#include "engine.h"

enum { GROUP_ALL, GROUP_RACE };

/* The group userdata's user values. */
#define SLOT_ITEMS 1     /* functions or tasks to run, or the list given to map */
#define SLOT_RESULTS 2   /* first result (or error object) of each member, by index */
#define SLOT_MAPFN 3     /* map's function */
#define SLOT_OUTCOME 4   /* the error that ended the group, or race's winning task */

struct group {
  op op;
  int mode;
  int n, started, running;
  int limit;               /* 0: no cap on members running at once */
  int return_exceptions;
  int list_form;           /* results as one list rather than as values */
  int stopping;            /* no more members start: decided, timed out or cancelled */
  int decided;             /* index of the member whose end decided the group */
  int timed_out;
  int anchor;
  int stack_index;         /* where the group userdata sits on the parent's stack */
  double seconds;          /* timeout's deadline */
  task *members;
  task *winner;
  uv_timer_t *timer;
};

/* ---- members --------------------------------------------------------------- */

static void group_link(group *g, task *t, int index)
{
  t->group = g;
  t->group_index = index;
  t->observed = 1;   /* the group takes its error */
  t->member_prev = NULL;
  t->member_next = g->members;
  if (g->members)
    g->members->member_prev = t;
  g->members = t;
  g->started++;
  g->running++;
}

static void group_unlink(group *g, task *t)
{
  if (t->member_prev)
    t->member_prev->member_next = t->member_next;
  else
    g->members = t->member_next;
  if (t->member_next)
    t->member_next->member_prev = t->member_prev;
  t->member_prev = t->member_next = NULL;
  g->running--;
}

static void group_cancel_members(group *g)
{
  task *t;
  g->stopping = 1;
  for (t = g->members; t; t = t->member_next)
    task_cancel(t);
}

/* Starts member number g->started + 1.  gidx: the group userdata on L.
 * [-0, +0, m]: the items, map's function (or nil), the member's handle and its
 * arguments meanwhile. */
static void group_start_next(tide_engine *E, lua_State *L, group *g, int gidx)
{
  int index = g->started + 1;
  task *t;
  luaL_checkstack(L, 5, "tide.gather");
  lua_getiuservalue(L, gidx, SLOT_ITEMS);
  if (lua_getiuservalue(L, gidx, SLOT_MAPFN) != LUA_TNIL) {
    lua_rawgeti(L, -2, index);
    lua_pushinteger(L, index);
    t = task_spawn(E, L, 2);                  /* fn(item, index) */
  } else {
    lua_pop(L, 1);
    lua_rawgeti(L, -1, index);
    if (luaL_testudata(L, -1, TASK_MT))
      t = task_spawn_awaiter(E, L);
    else
      t = task_spawn(E, L, 0);
  }
  lua_pop(L, 2);   /* the handle and the items */
  group_link(g, t, index);
}

/* [-0, +0, m] starts members while the limit allows. */
static void group_fill(tide_engine *E, lua_State *L, group *g, int gidx)
{
  while (!g->stopping && g->started < g->n && (g->limit == 0 || g->running < g->limit))
    group_start_next(E, L, g, gidx);
}

/* Completes the group's op once nothing runs and nothing more will start. */
static void group_check_done(group *g)
{
  if (g->running == 0 && (g->stopping || g->started == g->n))
    op_complete(&g->op);
}

void group_member_done(tide_engine *E, lua_State *L, task *t)
{
  group *g = t->group;
  int gidx;
  group_unlink(g, t);
  t->group = NULL;
  luaL_checkstack(L, 4, "tide.gather");
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->anchor);
  gidx = lua_gettop(L);
  if (t->status == TASK_DONE) {
    if (g->mode == GROUP_RACE) {
      if (!g->decided) {
        g->decided = t->group_index;
        g->winner = t;
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
        lua_setiuservalue(L, gidx, SLOT_OUTCOME);
        group_cancel_members(g);
      }
    } else {
      lua_getiuservalue(L, gidx, SLOT_RESULTS);
      task_push_results(L, t, 1);
      lua_rawseti(L, -2, t->group_index);
      lua_pop(L, 1);
    }
  } else if (g->return_exceptions && g->mode == GROUP_ALL) {
    lua_getiuservalue(L, gidx, SLOT_RESULTS);
    task_push_error(L, t);
    lua_rawseti(L, -2, t->group_index);
    lua_pop(L, 1);
  } else if (!g->decided) {
    g->decided = t->group_index;
    task_push_error(L, t);
    lua_setiuservalue(L, gidx, SLOT_OUTCOME);
    group_cancel_members(g);
  }
  group_fill(E, L, g, gidx);
  lua_pop(L, 1);
  group_check_done(g);
}

/* ---- the group's op and deadline ------------------------------------------- */

static void group_cancel(op *o)
{
  group *g = (group *)o;
  if (g->timer) {
    timer_stop(o->E, g->timer);
    g->timer = NULL;
  }
  group_cancel_members(g);
  group_check_done(g);   /* its members' ends complete it */
}

static const op_class group_class = {"gather", group_cancel};

static void group_deadline(void *arg)
{
  group *g = (group *)arg;
  g->timer = NULL;   /* the timer closes itself after firing */
  if (g->op.done)
    return;
  g->timed_out = 1;
  group_cancel_members(g);
  group_check_done(g);
}

/* [-0, +1, m] a new group userdata with its results table; anchored by the
 * caller. */
static group *group_new(tide_engine *E, lua_State *L, int mode, int n)
{
  group *g = (group *)lua_newuserdatauv(L, sizeof *g, 4);
  memset(g, 0, sizeof *g);
  op_init(&g->op, &group_class, E);
  g->mode = mode;
  g->n = n;
  g->anchor = LUA_NOREF;
  g->stack_index = lua_gettop(L);
  lua_createtable(L, mode == GROUP_ALL ? n : 0, 0);
  lua_setiuservalue(L, -2, SLOT_RESULTS);
  return g;
}

static void group_release(tide_engine *E, lua_State *L, group *g)
{
  if (g->timer) {
    timer_stop(E, g->timer);
    g->timer = NULL;
  }
  engine_unref(E, L, g->anchor);
  g->anchor = LUA_NOREF;
}

/* Continuation: every member has ended.  The group userdata is at
 * g->stack_index of the caller's frame.  [-0, +n, v] the results, or raises. */
static int group_k(lua_State *L, int status, lua_KContext ctx)
{
  group *g = (group *)ctx;
  tide_engine *E = g->op.E;
  int gidx = g->stack_index, results, i;
  (void)status;
  group_release(E, L, g);
  op_check(&g->op, L);
  if (g->timed_out) {
    /* the function's cancellation error goes no further: the error a <close>
     * handler raised as it unwound goes on the timeout error instead */
    error_push(L, "timeout", "timed out after %f s", g->seconds);
    lua_getiuservalue(L, gidx, SLOT_OUTCOME);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "close_error");
      lua_setfield(L, -3, "close_error");   /* nil when there is none: no field */
    }
    lua_pop(L, 1);
    return lua_error(L);
  }
  if (g->mode == GROUP_RACE) {
    if (g->winner)
      return task_push_results(L, g->winner, 0);
    lua_getiuservalue(L, gidx, SLOT_OUTCOME);
    return lua_error(L);
  }
  if (g->decided) {
    lua_getiuservalue(L, gidx, SLOT_OUTCOME);
    return lua_error(L);
  }
  lua_getiuservalue(L, gidx, SLOT_RESULTS);
  if (g->list_form)
    return 1;
  results = lua_gettop(L);
  luaL_checkstack(L, g->n, "too many results");
  for (i = 1; i <= g->n; i++)
    lua_rawgeti(L, results, i);
  return g->n;
}

/* Anchors g (its userdata at g->stack_index), arms its deadline, starts members
 * and waits for them all.  [-0, +n, v] as group_k. */
static int group_run(tide_engine *E, lua_State *L, group *g)
{
  lua_pushvalue(L, g->stack_index);
  g->anchor = engine_ref(E, L);
  if (g->seconds > 0)
    g->timer = timer_start(E, g->seconds, group_deadline, g);
  group_fill(E, L, g, g->stack_index);
  group_check_done(g);
  return engine_await(E, L, &g->op, group_k);
}

/* ---- options --------------------------------------------------------------- */

/* Reads opts.limit and opts.return_exceptions from the table at L[idx], if any.
 * [-0, +0, v] */
static void group_read_opts(lua_State *L, int idx, group *g, const char *fname)
{
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "limit") != LUA_TNIL) {
    int ok;
    lua_Integer n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 1)
      luaL_error(L, "%s: opts.limit must be a positive integer", fname);
    g->limit = n > g->n ? g->n : (int)n;
  }
  if (lua_getfield(L, idx, "return_exceptions") != LUA_TNIL) {
    if (!lua_isboolean(L, -1))
      luaL_error(L, "%s: opts.return_exceptions must be a boolean", fname);
    g->return_exceptions = lua_toboolean(L, -1);
  }
  lua_pop(L, 2);
}

/* Raises unless items[1..n] (the list at L[items]) are functions or tasks.
 * [-0, +0, v] */
static void group_check_items(lua_State *L, int items, int n, const char *fname, int argbase)
{
  int i;
  for (i = 1; i <= n; i++) {
    int ok;
    lua_rawgeti(L, items, i);
    ok = task_is_callable(L, -1) || luaL_testudata(L, -1, TASK_MT) != NULL;
    if (!ok) {
      if (argbase)
        luaL_typeerror(L, argbase + i - 1, "function or task");
      luaL_error(L, "%s: item %d is a %s, expected a function or a task", fname, i,
                 luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
}

static int is_plain_list(lua_State *L, int idx)
{
  return lua_type(L, idx) == LUA_TTABLE && !task_is_callable(L, idx);
}

/* ---- module functions ------------------------------------------------------ */

/* The items of gather and race: the list at 1 (the list form; the stack is set
 * to 1 list, 2 opts), or a new list of the arguments pushed on top.  Checks every
 * item; returns the index of the list.  [-0, +(0|1), v] */
static int group_items(lua_State *L, const char *fname, int *n, int *list_form)
{
  int i;
  *list_form = is_plain_list(L, 1);
  if (*list_form) {
    lua_settop(L, 2);
    *n = (int)lua_rawlen(L, 1);
    group_check_items(L, 1, *n, fname, 0);
    return 1;
  }
  *n = lua_gettop(L);
  lua_createtable(L, *n, 0);
  for (i = 1; i <= *n; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i);
  }
  group_check_items(L, lua_gettop(L), *n, fname, 1);
  return lua_gettop(L);
}

/* tide.gather(f1, f2, ...) → first result of each, in order
 * tide.gather(list [, opts]) → list of first results
 * opts: limit = n, return_exceptions = true */
static int gather_lgather(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  int n, list_form, items;
  group *g;
  engine_check_wait(E, L, "tide.gather");
  items = group_items(L, "tide.gather", &n, &list_form);
  g = group_new(E, L, GROUP_ALL, n);
  g->list_form = list_form;
  if (list_form)
    group_read_opts(L, 2, g, "tide.gather");
  lua_pushvalue(L, items);
  lua_setiuservalue(L, -2, SLOT_ITEMS);
  return group_run(E, L, g);
}

/* tide.map(list, fn [, opts]) → { fn(list[1], 1), fn(list[2], 2), ... } */
static int gather_lmap(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  group *g;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, task_is_callable(L, 2), 2, "function");
  engine_check_wait(E, L, "tide.map");
  lua_settop(L, 3);
  g = group_new(E, L, GROUP_ALL, (int)lua_rawlen(L, 1));
  g->list_form = 1;
  group_read_opts(L, 3, g, "tide.map");
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, SLOT_ITEMS);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, SLOT_MAPFN);
  return group_run(E, L, g);
}

/* tide.race(f1, f2, ...) or tide.race(list) → the results of the first member to
 * finish (its error, if it failed); the others are cancelled. */
static int gather_lrace(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  int n, list_form, items;
  group *g;
  engine_check_wait(E, L, "tide.race");
  items = group_items(L, "tide.race", &n, &list_form);
  luaL_argcheck(L, n > 0, 1, "at least one function or task expected");
  g = group_new(E, L, GROUP_RACE, n);
  lua_pushvalue(L, items);
  lua_setiuservalue(L, -2, SLOT_ITEMS);
  return group_run(E, L, g);
}

/* tide.timeout(seconds, fn, ...) → fn(...)'s results; when fn has not finished
 * after `seconds`, cancels it, waits for it to unwind, and raises a "timeout"
 * error. */
static int gather_ltimeout(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  double s = engine_check_seconds(L, 1, 1, NULL, 1);
  int top = lua_gettop(L), i;
  group *g;
  task *t;
  luaL_argexpected(L, task_is_callable(L, 2), 2, "function");
  engine_check_wait(E, L, "tide.timeout");
  g = group_new(E, L, GROUP_RACE, 1);
  g->seconds = s > 0 ? s : 1e-3;
  luaL_checkstack(L, top, "tide.timeout");
  for (i = 2; i <= top; i++)
    lua_pushvalue(L, i);
  t = task_spawn(E, L, top - 2);
  lua_pop(L, 1);
  group_link(g, t, 1);
  return group_run(E, L, g);
}

void gather_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"gather", gather_lgather},
    {"map", gather_lmap},
    {"race", gather_lrace},
    {"timeout", gather_ltimeout},
    {NULL, NULL}
  };
  engine_setfuncs(L, funcs);
}
