/* field_class.c: metatables for userdata that answer fields besides methods
 * (a process's pid, a stream's status and headers).  Their __index is a C
 * function that looks at the fields first and then at the methods, so the
 * methods live in a table of their own, __methods, rather than in the
 * metatable itself as engine_newclass keeps them. */
#include "engine.h"

int engine_newclass_fields(lua_State *L, const char *name, const luaL_Reg *methods,
                           lua_CFunction index)
{
  if (!luaL_newmetatable(L, name))
    return 0;
  lua_newtable(L);
  lua_pushvalue(L, -4);   /* the engine */
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, -2, "__methods");
  lua_pushcfunction(L, index);
  lua_setfield(L, -2, "__index");
  return 1;
}

int engine_index_method(lua_State *L)
{
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__methods");
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}
