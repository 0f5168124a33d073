/*
 * files.c — the file operations the disk cache needs and stock Lua lacks, safe
 * in a directory other users might reach (a shared /tmp, a pre-created
 * TIDE_CACHE_DIR):
 *
 *   tide.mkdir_private(path)        → true: path (and missing parents) made 0700
 *   tide.write_atomic(path, data)   → true: path replaced atomically, 0600
 *   tide.read_private(path)         → the file's bytes, or nil when it is absent
 *
 * Each raises a typed error {kind = "io", message, path} when it fails.
 *
 * A cache entry comes back as the LM's answer, so nothing another user could have
 * written is trusted.  mkdir_private refuses an existing directory (the last
 * component only: parents such as /tmp or ~/.cache are shared or the user's by
 * design) that belongs to another user or that others may write; it never chmods
 * one, which may be shared on purpose.  write_atomic writes a temporary file at an
 * unpredictable name created with O_EXCL (mkstemp), so a symlink planted there
 * cannot redirect the write, then renames it over the target, which replaces a
 * symlink there instead of following it; a reader sees the old file or the new
 * one, never a mix (nothing is fsynced: a cache may lose its last entries in a
 * crash, never hold half of one).  read_private opens with O_NOFOLLOW and reads
 * only a regular file of the user's that others cannot write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

#define FD_GUARD_MT "tide.fd"

/* [-0, +0, v] raises {kind = "io", message = "<formatted>", path = path}. */
static int io_fail(lua_State *L, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  error_push(L, "io", "%s", lua_pushvfstring(L, fmt, ap));
  va_end(ap);
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  return lua_error(L);
}

/* [-0, +0, v] raises "<what> <path>: <strerror(err)>". */
static int io_fail_errno(lua_State *L, const char *what, const char *path, int err)
{
  return io_fail(L, path, "%s %s: %s", what, path, strerror(err));
}

/* A path argument: a string without NUL bytes (the system would cut it there).
 * [-0, +0, v] */
static const char *check_path(lua_State *L, int arg)
{
  size_t n;
  const char *path = luaL_checklstring(L, arg, &n);
  luaL_argcheck(L, n > 0, arg, "empty path");
  luaL_argcheck(L, strlen(path) == n, arg, "path contains a NUL byte");
  return path;
}

/* Raises unless st (of path) is something only the user can change: owned by
 * the effective user, not writable by group or others.  `noun` names it.
 * [-0, +0, v] */
static void check_private(lua_State *L, const char *path, const struct stat *st, const char *noun)
{
  if (st->st_uid != geteuid())
    io_fail(L, path, "refusing %s %s: it belongs to another user (uid %d), who could plant "
                     "answers in it; use a %s of your own (TIDE_CACHE_DIR for the cache)",
            noun, path, (int)st->st_uid, noun);
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[16];   /* lua_pushfstring has no %o */
    snprintf(mode, sizeof mode, "%04o", (unsigned)(st->st_mode & 07777));
    io_fail(L, path, "refusing %s %s: other users may write it (mode %s); run `chmod %s %s` "
                     "or use another %s (TIDE_CACHE_DIR for the cache)",
            noun, path, mode, S_ISDIR(st->st_mode) ? "700" : "600", path, noun);
  }
}

/* tide.mkdir_private(path) */
static int files_lmkdir(lua_State *L)
{
  const char *path = check_path(L, 1);
  size_t n = strlen(path);
  char *copy = (char *)lua_newuserdatauv(L, n + 1, 0), *p;
  struct stat st;
  memcpy(copy, path, n + 1);
  while (n > 1 && copy[n - 1] == '/')   /* "dir/" names dir */
    copy[--n] = '\0';
  for (p = copy + 1; *p; p++) {         /* the parents: created if missing, as they are */
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(copy, 0700) != 0 && errno != EEXIST)
      return io_fail_errno(L, "cannot create", copy, errno);
    *p = '/';
  }
  if (mkdir(copy, 0700) == 0) {        /* new, ours, 0700 (the umask only narrows it) */
    lua_pushboolean(L, 1);
    return 1;
  }
  if (errno != EEXIST)
    return io_fail_errno(L, "cannot create", copy, errno);
  if (stat(copy, &st) != 0)
    return io_fail_errno(L, "cannot inspect", copy, errno);
  if (!S_ISDIR(st.st_mode))
    return io_fail(L, copy, "cannot use %s as a directory: it is a file", copy);
  check_private(L, copy, &st, "directory");
  lua_pushboolean(L, 1);
  return 1;
}

/* tide.write_atomic(path, data) */
static int files_lwrite(lua_State *L)
{
  size_t n, done = 0, plen;
  const char *path = check_path(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  char *tmp;
  int fd;
  plen = strlen(path);
  tmp = (char *)lua_newuserdatauv(L, plen + 8, 0);
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".XXXXXX", 8);
  fd = mkstemp(tmp);   /* O_CREAT | O_EXCL, 0600, a random name */
  if (fd < 0)
    return io_fail_errno(L, "cannot create", tmp, errno);
  while (done < n) {
    ssize_t w = write(fd, data + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int saved = errno;
      close(fd);
      unlink(tmp);
      return io_fail_errno(L, "cannot write", tmp, saved);
    }
    done += (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int saved = errno;
    unlink(tmp);
    return io_fail_errno(L, "cannot write", path, saved);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* A descriptor held by a userdata, closed by __gc if a raise skips the close. */
static int fd_guard_gc(lua_State *L)
{
  int *fd = (int *)luaL_checkudata(L, 1, FD_GUARD_MT);
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
  return 0;
}

/* tide.read_private(path) */
static int files_lread(lua_State *L)
{
  const char *path = check_path(L, 1);
  int *fd = (int *)lua_newuserdatauv(L, sizeof *fd, 0);
  struct stat st;
  luaL_Buffer b;
  *fd = -1;
  luaL_setmetatable(L, FD_GUARD_MT);
  /* O_NONBLOCK: a FIFO planted at the path must not block the open */
  *fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (*fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      lua_pushnil(L);
      return 1;
    }
    if (errno == ELOOP)
      return io_fail(L, path, "refusing file %s: it is a symbolic link", path);
    return io_fail_errno(L, "cannot open", path, errno);
  }
  if (fstat(*fd, &st) != 0)
    return io_fail_errno(L, "cannot inspect", path, errno);
  if (!S_ISREG(st.st_mode))
    return io_fail(L, path, "refusing file %s: not a regular file", path);
  check_private(L, path, &st, "file");
  luaL_buffinit(L, &b);
  for (;;) {
    char *p = luaL_prepbuffer(&b);
    ssize_t r = read(*fd, p, LUAL_BUFFERSIZE);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return io_fail_errno(L, "cannot read", path, errno);
    if (r == 0)
      break;
    luaL_addsize(&b, (size_t)r);
  }
  close(*fd);
  *fd = -1;
  luaL_pushresult(&b);
  return 1;
}

/* isatty(fd) → whether the descriptor is a terminal (stock Lua cannot tell). */
static int files_lisatty(lua_State *L)
{
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_pushboolean(L, fd >= 0 && fd <= INT32_MAX && isatty((int)fd));
  return 1;
}

/* file_id(path) → "device:inode" of the file the path reaches (through
 * symlinks), or nil when there is none: two paths name the same file exactly
 * when their ids are equal, hard links and symlinks included. */
static int files_lfile_id(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushfstring(L, "%I:%I", (lua_Integer)st.st_dev, (lua_Integer)st.st_ino);
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
    {"read_private", files_lread},
    {"isatty", files_lisatty},
    {"term_columns", files_lterm_columns},
    {"file_id", files_lfile_id},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, FD_GUARD_MT)) {
    lua_pushcfunction(L, fd_guard_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
