/*
 * error.c — typed error objects.
 *
 * Runtime failures (a transfer that timed out, a cancelled task, a Lua error inside a
 * task) are tables with the "tide.error" metatable: `kind` says what went wrong, and
 * `message` says where; more fields (status, url, traceback, ...) as the raiser knows
 * them.  Misuse of the API is not a runtime failure: it raises a plain luaL_argerror.
 */
#include <stdarg.h>
#include <string.h>

#include "engine.h"

/* [-0, +1, m] */
static void error_push_metatable(lua_State *L)
{
  luaL_getmetatable(L, ERROR_MT);
}

/* [-0, +1, m] a new error object {kind=, message=} (the table, then each field). */
static void error_pushv(lua_State *L, const char *kind, const char *fmt, va_list ap)
{
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushvfstring(L, fmt, ap);
  lua_setfield(L, -2, "message");
  error_push_metatable(L);
  lua_setmetatable(L, -2);
}

void error_push(lua_State *L, const char *kind, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  error_pushv(L, kind, fmt, ap);
  va_end(ap);
}

int error_raise(lua_State *L, const char *kind, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  error_pushv(L, kind, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* True when L[idx] is a tide error of the given kind (any kind when kind is NULL).
 * [-0, +0, -]: its metatable and the registry's, then its kind, meanwhile. */
int error_is(lua_State *L, int idx, const char *kind)
{
  int is = 0;
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
    return 0;
  error_push_metatable(L);
  is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (is && kind) {
    lua_getfield(L, idx, "kind");
    is = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), kind) == 0;
    lua_pop(L, 1);
  }
  return is;
}

/* "kind: message" — the traceback stays in its own field, printed by whoever
 * reports the error to a person. */
static int error_tostring(lua_State *L)
{
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "error"), luaL_optstring(L, -1, "?"));
  return 1;
}

/* tide.error{kind = ..., message = ..., ...} → the same table, made an error
 * object; tide.error(kind, message) builds a new one. */
static int error_new(lua_State *L)
{
  if (lua_istable(L, 1)) {
    lua_settop(L, 1);
    lua_getfield(L, 1, "kind");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field 'kind' must be a string");
    lua_getfield(L, 1, "message");
    if (lua_isnil(L, -1)) {
      lua_pushvalue(L, -2);
      lua_setfield(L, 1, "message");
    }
    lua_settop(L, 1);
  } else {
    const char *kind = luaL_checkstring(L, 1);
    const char *msg = luaL_optstring(L, 2, kind);
    error_push(L, kind, "%s", msg);
  }
  error_push_metatable(L);
  lua_setmetatable(L, -2);
  return 1;
}

/* tide.is_error(v [, kind]) */
static int error_check(lua_State *L)
{
  const char *kind = luaL_optstring(L, 2, NULL);
  lua_pushboolean(L, error_is(L, 1, kind));
  return 1;
}

void error_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"error", error_new},
    {"is_error", error_check},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "tide.error");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
