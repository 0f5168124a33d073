/*
 * files.c — the two file operations the cache needs and stock Lua lacks:
 * creating a private directory (0700, with parents) and replacing a file
 * atomically with private permissions (0600).
 *
 *   tide.mkdir_private(path)          → true, or nil, message
 *   tide.write_atomic(path, data)     → true, or nil, message
 *
 * write_atomic writes a temporary file beside the target, fsyncs nothing (a cache
 * may lose its last entries in a crash, never hold half of one) and renames it over
 * the target, so a reader sees the old file or the new one, never a mix.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

static int fail(lua_State *L, const char *what, const char *path)
{
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(errno));
  return 2;
}

/* tide.mkdir_private(path) */
static int files_lmkdir(lua_State *L)
{
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *p, *copy;
  luaL_argcheck(L, n > 0, 1, "empty path");
  copy = luaL_buffinitsize(L, &b, n + 1);
  memcpy(copy, path, n + 1);
  for (p = copy + 1; ; p++) {
    int last = *p == '\0';
    if (*p == '/' || last) {
      *p = '\0';
      if (mkdir(copy, 0700) != 0 && errno != EEXIST)
        return fail(L, "cannot create", copy);
      if (last)
        break;
      *p = '/';
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* tide.write_atomic(path, data) */
static int files_lwrite(lua_State *L)
{
  size_t n, done = 0;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  const char *tmp = lua_pushfstring(L, "%s.%d.tmp", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail(L, "cannot create", tmp);
  while (done < n) {
    ssize_t w = write(fd, data + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int saved = errno;
      close(fd);
      unlink(tmp);
      errno = saved;
      return fail(L, "cannot write", tmp);
    }
    done += (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return fail(L, "cannot write", path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* isatty(fd) → whether the descriptor is a terminal (stock Lua cannot tell). */
static int files_lisatty(lua_State *L)
{
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_pushboolean(L, fd >= 0 && fd <= INT32_MAX && isatty((int)fd));
  return 1;
}

/* term_columns(fd) → the terminal's width in columns, or nil when fd is not a
 * terminal.  Read afresh on every call, so a resized window is seen at the next
 * redraw without a SIGWINCH handler. */
static int files_lterm_columns(lua_State *L)
{
  lua_Integer fd = luaL_checkinteger(L, 1);
  struct winsize ws;
  if (fd < 0 || fd > INT32_MAX || ioctl((int)fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, ws.ws_col);
  return 1;
}

void files_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"mkdir_private", files_lmkdir},
    {"write_atomic", files_lwrite},
    {"isatty", files_lisatty},
    {"term_columns", files_lterm_columns},
    {NULL, NULL}
  };
  engine_setfuncs(L, funcs);
}
