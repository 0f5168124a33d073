/*
 * jsonnum.c — what tide.json needs to give JSON's integers as Lua integers over
 * lua-cjson, which decodes every number as a float:
 *
 *   core.json_scan(text)     → whether text holds a number that must be read from
 *                              its text: one written with a fraction or an exponent
 *                              whose value is integral (1.0, 2e3 — a float in Lua,
 *                              though integral), or an integer of 16 digits or more
 *                              (past what a double holds exactly)
 *   core.json_integers(v)    → v with every integral float in (-2^53, 2^53) made an
 *                              integer, in place at any depth
 *
 * When json_scan says no, every integral float cjson gave came from an integer
 * written as one, small enough to be exact: json_integers is then the whole fix,
 * one C walk instead of a Lua one (tide.json's decode runs on every LM answer).
 * When it says yes, tide.json takes its careful path, in Lua.
 */
#include <math.h>
#include <string.h>

#include "engine.h"

#define EXACT_LIMIT 9007199254740992.0   /* 2^53 */
#define MAX_DEPTH 1000                    /* cjson's own nesting limit */
#define TOKEN_MAX 64                      /* longer number tokens are always "special" */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Whether x is integral and exact as a double: a float to make an integer. */
static int exact_integer(lua_Number x)
{
  return x == floor(x) && x > -EXACT_LIMIT && x < EXACT_LIMIT;
}

/* [-0, +0, -] Whether the number token s[0..n) (with a fraction or an exponent)
 * has an integral value.  Lua reads it (lua_stringtonumber: the same reading,
 * locale and all, as tonumber in tide.json's careful path). */
static int integral_token(lua_State *L, const char *s, size_t n)
{
  char buf[TOKEN_MAX + 1];
  lua_Number v;
  int integral;
  if (n > TOKEN_MAX)
    return 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (lua_stringtonumber(L, buf) == 0)
    return 0;   /* not a number after all: cjson will say what is wrong */
  v = lua_tonumber(L, -1);
  integral = isfinite(v) && v == floor(v);
  lua_pop(L, 1);
  return integral;
}

/* core.json_scan(text) */
static int jsonnum_lscan(lua_State *L)
{
  size_t n, i = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"') {                      /* a string: its bytes are no numbers */
      for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\')
          i++;
      i++;
    } else if (c == '-' || is_digit(c)) {
      size_t start = i, digits = 0;
      int fraction = 0;
      if (c == '-')
        i++;
      for (; i < n && is_digit((unsigned char)s[i]); i++)
        digits++;
      for (; i < n && (is_digit((unsigned char)s[i]) || (s[i] != '\0' && strchr(".eE+-", s[i]) != NULL)); i++)
        fraction = 1;
      if (fraction ? integral_token(L, s + start, i - start) : digits >= 16) {
        lua_pushboolean(L, 1);
        return 1;
      }
    } else {
      i++;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

/* [-0, +0, e] Makes the integral floats of the table on top integers, in place. */
static void integers_in(lua_State *L, int depth)
{
  if (depth > MAX_DEPTH)
    luaL_error(L, "json_integers: tables nested deeper than %d", MAX_DEPTH);
  luaL_checkstack(L, 4, "json_integers");
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {             /* [t, key, value] */
    int t = lua_type(L, -1);
    if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number x = lua_tonumber(L, -1);
      if (exact_integer(x)) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)x);
        lua_rawset(L, -5);                   /* an existing key: allowed during lua_next */
      }
    } else if (t == LUA_TTABLE) {
      integers_in(L, depth + 1);
    }
    lua_pop(L, 1);
  }
}

/* core.json_integers(v) */
static int jsonnum_lintegers(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TTABLE) {
    integers_in(L, 0);
  } else if (lua_type(L, 1) == LUA_TNUMBER && !lua_isinteger(L, 1)) {
    lua_Number x = lua_tonumber(L, 1);
    if (exact_integer(x))
      lua_pushinteger(L, (lua_Integer)x);
  }
  return 1;
}

void jsonnum_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"json_scan", jsonnum_lscan},
    {"json_integers", jsonnum_lintegers},
    {NULL, NULL}
  };
  engine_setfuncs(L, funcs);
}
