/*
 * module.c — tide.core: the module table (luaopen_tide_core), the engine's own
 * Lua functions (poll, run_until_idle, stats, now), and what every part
 * registers its functions and checks its numbers with.
 *
 * Registration is one sequence, as Lua's linit.c does it: each part's
 * *_open_lib adds its functions to the table, with the engine as their upvalue.
 */
#include "engine.h"

/* ---- checking numbers the API is given ------------------------------------ */

/* [-0, +1 or +2, m] what the value at idx is, for an error message: a number as
 * Lua prints it ("nan" for every NaN), else its type.  Only for a caller about
 * to raise: a number leaves its copy below the string. */
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

/* ---- registering ------------------------------------------------------------ */

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
  engine_poll(E, L);
  lua_pushinteger(L, E->live_count);
  return 1;
}

/* tide.run_until_idle() — runs the loop until no task is left. */
static int engine_lrun_idle(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  engine_check_main_flow(E, L, "tide.run");
  if (engine_run_until_idle(E, L) != 0)
    error_raise(L, "deadlock", "%d task(s) wait for something that no task or I/O can complete",
                E->live_count);
  return 0;
}

/* tide.stats() → what the engine holds right now. */
static int engine_lstats(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, E->live_count);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, E->refs);
  lua_setfield(L, -2, "refs");
  lua_pushinteger(L, E->timers);
  lua_setfield(L, -2, "timers");
  http_push_stats(L, E);   /* transfers, sockets, idle_handles */
  lua_pushinteger(L, E->processes);
  lua_setfield(L, -2, "processes");
  return 1;
}

static int engine_lnow(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

/* The module table, with every part's functions; the engine is created on first
 * use (or was attached by the host with tide_open). */
int luaopen_tide_core(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"poll", engine_lpoll},
    {"run_until_idle", engine_lrun_idle},
    {"stats", engine_lstats},
    {"now", engine_lnow},
    {"at_close", engine_lat_close},
    {NULL, NULL}
  };
  engine_push(L, tide_open(L, NULL));
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
  jsonnum_open_lib(L);
  otlp_open_lib(L);
  files_open_lib(L);
  redis_open_lib(L);
  process_open_lib(L);
  lua_pushliteral(L, TIDE_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
