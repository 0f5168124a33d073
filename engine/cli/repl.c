/*
 * repl.c — the REPL's loop: lines in, each complete input run as a task.
 *
 * What an input means (an expression or a statement, complete or not, a :command)
 * and how values look is the Lua session's business (lua/tide/repl/); this
 * file only moves lines from the reader to the session and runs what the session
 * hands back as a task that Ctrl-C cancels.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cli.h"

/* The history file: $XDG_STATE_HOME/tide/history, else ~/.tide_history.  The
 * directory is made private when tide creates it. */
static char *history_path(void)
{
  const char *state = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  char *path;
  if (state && state[0] == '/') {
    size_t n = strlen(state) + sizeof "/tide/history";
    path = (char *)malloc(n);
    if (path == NULL)
      return NULL;
    snprintf(path, n, "%s/tide", state);
    mkdir(state, 0700);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
      free(path);
      return NULL;
    }
    snprintf(path, n, "%s/tide/history", state);
    return path;
  }
  if (home && home[0]) {
    size_t n = strlen(home) + sizeof "/.tide_history";
    path = (char *)malloc(n);
    if (path)
      snprintf(path, n, "%s/.tide_history", home);
    return path;
  }
  return NULL;
}

/* The session, for the error handler: errors of tasks nobody took go to
 * session:task_failed, which queues them for the next prompt. */
typedef struct repl_state {
  cli *C;
  int session_ref;   /* registry ref of the session */
} repl_state;

/* A tide_error_fn: runs inside a task handle's finalizer, so it only hands the
 * error over (under pcall: it must not raise).  [-0, +0] with the error on top;
 * the session, its method and the error's copy meanwhile. */
static void repl_task_error(lua_State *L, void *ud)
{
  repl_state *S = (repl_state *)ud;
  int err = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->session_ref);
  lua_getfield(L, -1, "task_failed");
  lua_insert(L, -2);
  lua_pushvalue(L, err);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "%s: a task failed and nobody took its error: %s\n", S->C->progname,
            luaL_tolstring(L, err, NULL));
    lua_pop(L, 2);
  }
}

/* [-nargs, +(nres|0), e] session:name(the nargs values on top) under pcall:
 * leaves nres results and returns 1, or prints the error, leaves nothing and
 * returns 0.  `session` is the session's index. */
static int session_call(cli *C, int session, const char *name, int nargs, int nres)
{
  lua_State *L = C->L;
  lua_getfield(L, session, name);
  lua_pushvalue(L, session);
  lua_rotate(L, -(nargs + 2), 2);
  if (lua_pcall(L, nargs + 1, nres, 0) != LUA_OK) {
    fprintf(stderr, "%s: repl: %s\n", C->progname, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
    return 0;
  }
  return 1;
}

/* End of input: 1 to leave, 0 when Ctrl-D only dropped an unfinished chunk.
 * [-0, +0, e] */
static int repl_eof(cli *C, int session, line_reader *R, int editor)
{
  lua_State *L = C->L;
  int leave = 1;
  if (editor)
    fputc('\n', stdout);
  lua_pushboolean(L, !editor || lineread_at_eof(R));
  if (session_call(C, session, "eof", 1, 1)) {
    const char *what = lua_tostring(L, -1);
    leave = !(what && strcmp(what, "more") == 0);
    lua_pop(L, 1);
  }
  return leave;
}

int repl_main(cli *C)
{
  lua_State *L = C->L;
  int editor = isatty(STDIN_FILENO);
  int top = lua_gettop(L), session;
  char *hist = editor ? history_path() : NULL;
  line_reader *R;
  repl_state S;

  lua_getglobal(L, "require");
  lua_pushliteral(L, "tide.repl");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, editor);
  lua_setfield(L, -2, "interactive");
  lua_call(L, 1, 1);                         /* the session */
  session = lua_gettop(L);
  S.C = C;
  lua_pushvalue(L, session);
  S.session_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  tide_set_error_handler(C->E, repl_task_error, &S);
  lua_getfield(L, session, "completer");     /* function(text) -> word, candidates */
  R = lineread_open(C, editor, hist, lua_isfunction(L, -1) ? lua_gettop(L) : 0);
  lua_pop(L, 1);
  free(hist);
  if (editor)
    session_call(C, session, "banner", 0, 0);

  for (;;) {
    const char *line, *action;
    size_t len;
    int st;
    if (!session_call(C, session, "prompt", 0, 1))
      break;
    st = lineread_get(R, lua_tostring(L, -1), &line, &len);
    lua_pop(L, 1);
    if (st == LINE_EOF) {
      if (repl_eof(C, session, R, editor))
        break;
      continue;
    }
    if (st == LINE_INTERRUPTED) {
      session_call(C, session, "reset", 0, 0);
      continue;
    }
    lua_pushlstring(L, line, len);
    if (!session_call(C, session, "feed", 1, 3))   /* action, function, whole input */
      continue;
    action = lua_tostring(L, -3);
    if (action && strcmp(action, "quit") == 0) {
      lua_pop(L, 3);
      break;
    }
    if (action && strcmp(action, "run") == 0) {
      if (editor && lua_isstring(L, -1))
        lineread_add_history(R, lua_tostring(L, -1));
      lua_pop(L, 1);
      lua_remove(L, -2);                     /* the function */
      if (cli_run_task(C, 0) != CLI_DONE)    /* an error the session's body let out */
        session_call(C, session, "print_error", 1, 0);
      else
        lua_pop(L, 1);
      fflush(stdout);
      continue;
    }
    lua_pop(L, 3);                           /* "more" or "none" */
  }
  lineread_close(R);
  /* the last errors nobody took, while the session can still print them */
  lua_gc(L, LUA_GCCOLLECT);
  session_call(C, session, "report_failed", 0, 0);
  fflush(stdout);
  tide_set_error_handler(C->E, NULL, NULL);
  luaL_unref(L, LUA_REGISTRYINDEX, S.session_ref);
  lua_settop(L, top);
  return 0;
}
