/*
 * game.c — an example host: a game loop at 60 frames per second that embeds Lua
 * and tide, starts a panel of three LM critics on frame 1 and keeps rendering
 * while their requests are out.  The verdict arrives through an on_done callback
 * that tide runs inside one of the frame's tide_poll calls; nothing ever blocks a
 * frame.
 *
 *   scripts/with_mockllm build/game [--script scripts/host/panel.lua] [--frames N]
 *
 * Against mockllm it ends with frames_with_requests_in_flight=N peak_in_flight=M:
 * mockllm's own counts, asked frame after frame, of the requests out while the game
 * kept rendering.
 *
 * The Lua side (scripts/host/panel.lua) returns {start = fn, update = fn}.  The
 * host owns the libuv loop and hands it to tide (tide_open(L, &loop)), runs it
 * without blocking once a frame, and closes everything at the end: tide_close,
 * lua_close, and the loop — which closes only if tide left no handle on it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

#define FRAME_NS (1000000000ull / 60)

typedef struct game {
  lua_State *L;
  tide_engine *E;
  uv_loop_t loop;
  int frame;
  int errors;          /* errors of tasks nobody took, seen by the handler */
} game;

/* Errors nobody took: a game logs them and goes on; it never exits for them. */
static void game_task_error(lua_State *L, void *ud)
{
  game *G = (game *)ud;
  lua_getfield(L, -1, "message");
  fprintf(stderr, "game: frame %d: a background task failed: %s\n", G->frame,
          lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  G->errors++;
}

/* The frame number, for the Lua side (an upvalue holds the game). */
static int game_frame(lua_State *L)
{
  game *G = (game *)lua_touserdata(L, lua_upvalueindex(1));
  lua_pushinteger(L, G->frame);
  return 1;
}

/* <exe dir>/../lua and <exe dir>/../scripts/host, so build/game finds the library
 * and its script from anywhere. */
static void add_paths(lua_State *L, char *dir, size_t size)
{
  ssize_t n = readlink("/proc/self/exe", dir, size - 1);
  char *slash;
  if (n <= 0) {
    strcpy(dir, ".");
    return;
  }
  dir[n] = '\0';
  slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/../lua/?.lua;%s/../lua/?/init.lua;", dir, dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* [-0, +0] game[name](args...) from the table at idx; 1 when it ran. */
static int call_lua(game *G, int idx, const char *name, int nargs, int nres)
{
  lua_State *L = G->L;
  lua_getfield(L, idx, name);
  lua_insert(L, -(nargs + 1));
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    fprintf(stderr, "game: %s: %s\n", name, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
    return 0;
  }
  return 1;
}

static void sleep_until(uint64_t t)
{
  uint64_t now = uv_hrtime();
  if (t > now)
    usleep((useconds_t)((t - now) / 1000));
}

int main(int argc, char **argv)
{
  game G;
  char dir[PATH_MAX], script[PATH_MAX + 32];
  const char *script_arg = NULL;
  int max_frames = 60 * 60, i, done = 0, live = 0, ok = 1, loop_closed, mod;
  uint64_t next;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc)
      max_frames = atoi(argv[++i]);
    else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc)
      script_arg = argv[++i];
    else {
      fprintf(stderr, "usage: game [--script FILE.lua] [--frames N]\n");
      return 2;
    }
  }
  memset(&G, 0, sizeof G);
  uv_loop_init(&G.loop);
  G.L = luaL_newstate();
  luaL_openlibs(G.L);
  add_paths(G.L, dir, sizeof dir);
  G.E = tide_open(G.L, &G.loop);             /* tide runs on the game's loop */
  tide_set_error_handler(G.E, game_task_error, &G);
  luaL_requiref(G.L, "tide.core", luaopen_tide_core, 0);
  lua_pop(G.L, 1);

  snprintf(script, sizeof script, "%s/../scripts/host/panel.lua", dir);
  if (luaL_dofile(G.L, script_arg ? script_arg : script) != LUA_OK || !lua_istable(G.L, -1)) {
    fprintf(stderr, "game: %s\n", lua_isstring(G.L, -1) ? lua_tostring(G.L, -1) : "no game table");
    ok = 0;
  }
  mod = lua_gettop(G.L);

  next = uv_hrtime();
  for (G.frame = 1; ok && !done && G.frame <= max_frames; G.frame++) {
    uv_run(&G.loop, UV_RUN_NOWAIT);         /* the host's own I/O, and tide's */
    live = tide_poll(G.E);                   /* ready tasks, on_done callbacks */
    if (G.frame == 1) {
      lua_pushlightuserdata(G.L, &G);
      lua_pushcclosure(G.L, game_frame, 1);
      ok = call_lua(&G, mod, "start", 1, 0);   /* returns at once: the panel is a task */
    }
    lua_pushinteger(G.L, G.frame);
    if (ok && call_lua(&G, mod, "update", 1, 1)) {
      done = lua_toboolean(G.L, -1);
      lua_pop(G.L, 1);
    }
    /* render(): a real game draws here */
    next += FRAME_NS;
    sleep_until(next);
  }
  if (ok) {
    printf("frames=%d live=%d errors=%d\n", G.frame - 1, live, G.errors);
    lua_getfield(G.L, mod, "probing");
    lua_getfield(G.L, mod, "frames_in_flight");
    lua_getfield(G.L, mod, "peak_in_flight");
    if (lua_toboolean(G.L, -3))   /* the probe ran: against mockllm, which counts */
      printf("frames_with_requests_in_flight=%d peak_in_flight=%d\n",
             (int)lua_tointeger(G.L, -2), (int)lua_tointeger(G.L, -1));
    lua_pop(G.L, 3);
  }
  tide_close(G.E);                           /* cancels what is left, closes tide's handles */
  lua_close(G.L);
  uv_run(&G.loop, UV_RUN_DEFAULT);           /* their close callbacks */
  loop_closed = uv_loop_close(&G.loop) == 0;
  printf("loop_closed=%s\n", loop_closed ? "yes" : "no");
  return ok && done ? 0 : 1;
}
