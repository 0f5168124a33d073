/*
 * fdlimit.c — the binary's descriptor policy.
 *
 * Every request in flight holds a socket.  A library must leave the process's
 * limits alone (tide_open only reads the soft limit to size its default
 * connection caps), but the `tide` binary is the program: like a server, it lifts
 * its soft limit to the hard one before the engine starts, so 10 000 concurrent
 * calls do not fail at 1 024; then it lowers the caps by the descriptors it holds
 * already (those a parent process left it), so that calls beyond the caps wait in
 * libcurl's queue instead of failing with "too many open files"
 * (spec/limits_spec.lua runs the binary under `ulimit -n 64`).
 */
#include <dirent.h>
#include <sys/resource.h>

#include <lauxlib.h>

#include "cli.h"

void cli_raise_fd_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
    return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);   /* refused: the engine sizes its caps on the old one */
}

/* The descriptors open now, or 0 where /proc cannot tell. */
static long open_descriptors(void)
{
  long n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1;   /* not the one opendir holds */
}

/* [-0, +0, e] tide.core.http_limits, lowered by what is open now. */
void cli_fit_connections(cli *C)
{
  lua_State *L = C->L;
  long open = open_descriptors(), total, per_host;
  int top = lua_gettop(L);
  if (open <= 0)
    return;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "tide.core");
  lua_getfield(L, -1, "http_limits");
  lua_pushvalue(L, -1);
  lua_call(L, 0, 1);                         /* loaded, core, http_limits, caps */
  lua_getfield(L, -1, "connections");
  lua_getfield(L, -2, "per_host");
  total = (long)lua_tointeger(L, -2) - open;
  total = total > 1 ? total : 1;
  per_host = (long)lua_tointeger(L, -1);
  per_host = per_host < total ? per_host : total;
  lua_settop(L, top + 3);                    /* loaded, core, http_limits */
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, total);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, per_host);
  lua_setfield(L, -2, "per_host");
  lua_call(L, 1, 0);
  lua_settop(L, top);
}
