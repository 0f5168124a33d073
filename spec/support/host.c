/*
 * host.c — a minimal host program for the embedding specs.
 *
 * It owns a libuv loop and a lua_State, attaches tide to both through tide.h, runs
 * a Lua chunk that starts tasks, then drives everything from its own "frame" loop
 * with tide_poll — never blocking — and closes it all.  It prints how many frames
 * ran and whether the loop closed with no handle left, for the spec to check.
 *
 *   host SCRIPT.lua [--own] [--frames N] [--handler]
 *     --own       let tide own its loop instead of using the host's
 *     --frames N  stop after N frames even if tasks are still live (default 20000)
 *     --handler   errors of tasks nobody took go to the host's handler, which
 *                 prints `handled: MESSAGE` on stdout
 *
 * A global function `after_close` in the script, if any, runs after tide_close
 * and before lua_close (what a host's Lua may still do with tide's objects then);
 * its error, if it raises, is printed as `after_close: MESSAGE`.
 *
 * It also counts libcurl's memory blocks (curl_global_init_mem, before tide starts
 * libcurl) and prints how many were still held once tide and Lua are closed:
 * `curl_blocks=0` when tide released every curl handle it made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

/* libcurl's allocation callbacks take no user data, so the count is file-level;
 * atomic because the threaded resolver allocates from its own thread. */
static long curl_blocks;

static void count_block(const void *p, long delta)
{
  if (p)
    __atomic_add_fetch(&curl_blocks, delta, __ATOMIC_RELAXED);
}

static void *counted_malloc(size_t n)
{
  void *p = malloc(n);
  count_block(p, 1);
  return p;
}

static void counted_free(void *p)
{
  count_block(p, -1);
  free(p);
}

static void *counted_realloc(void *p, size_t n)
{
  void *q = realloc(p, n);
  if (p == NULL)
    count_block(q, 1);
  return q;
}

static char *counted_strdup(const char *s)
{
  char *p = strdup(s);
  count_block(p, 1);
  return p;
}

static void *counted_calloc(size_t n, size_t size)
{
  void *p = calloc(n, size);
  count_block(p, 1);
  return p;
}

static void host_error(lua_State *L, void *ud)
{
  int *count = (int *)ud;
  lua_getfield(L, -1, "message");
  printf("handled: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  (*count)++;
}

int main(int argc, char **argv)
{
  uv_loop_t loop;
  lua_State *L;
  tide_engine *E;
  int own = 0, max_frames = 20000, frames = 0, live, closed, i, handler = 0, handled = 0;
  long baseline;

  if (argc < 2) {
    fprintf(stderr, "usage: host SCRIPT.lua [--own] [--frames N]\n");
    return 2;
  }
  for (i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--own") == 0)
      own = 1;
    else if (strcmp(argv[i], "--handler") == 0)
      handler = 1;
    else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc)
      max_frames = atoi(argv[++i]);
  }
  curl_global_init_mem(CURL_GLOBAL_DEFAULT, counted_malloc, counted_free, counted_realloc,
                       counted_strdup, counted_calloc);
  baseline = __atomic_load_n(&curl_blocks, __ATOMIC_RELAXED);
  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  E = tide_open(L, own ? NULL : &loop);
  if (handler)
    tide_set_error_handler(E, host_error, &handled);
  luaL_requiref(L, "tide.core", luaopen_tide_core, 0);
  lua_pop(L, 1);
  if (luaL_dofile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  /* the frame loop: a game would render here */
  do {
    if (!own)
      uv_run(&loop, UV_RUN_NOWAIT);
    live = tide_poll(E);
    frames++;
    usleep(1000);
  } while (live > 0 && frames < max_frames);
  printf("frames=%d live=%d\n", frames, live);
  lua_getglobal(L, "report");
  if (lua_isfunction(L, -1) && lua_pcall(L, 0, 0, 0) != LUA_OK)
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
  tide_close(E);
  lua_getglobal(L, "after_close");
  if (lua_isfunction(L, -1) && lua_pcall(L, 0, 0, 0) != LUA_OK)
    printf("after_close: %s\n", lua_tostring(L, -1));
  lua_close(L);
  uv_run(&loop, UV_RUN_DEFAULT);   /* close callbacks of handles tide closed */
  closed = uv_loop_close(&loop);
  printf("loop_closed=%s\n", closed == 0 ? "yes" : "no");
  printf("curl_blocks=%ld\n", __atomic_load_n(&curl_blocks, __ATOMIC_RELAXED) - baseline);
  curl_global_cleanup();
  if (handler)
    printf("handled=%d\n", handled);
  return 0;
}
