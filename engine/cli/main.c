/*
 * main.c — the `tide` binary: runs a Lua script (or -e code) as a task, or the
 * REPL.
 *
 * Shaped after lua.c: main only lua_pcall's tide_main, which handles the
 * arguments.  The script's main chunk runs as a task, so it can call lm(...),
 * tide.gather(...) and friends directly; when it returns, the binary keeps running
 * until no task is left (like node), then exits 0 — or prints the error with its
 * traceback and exits 1.  Ctrl-C cancels the main task (it unwinds: transfers
 * aborted, <close> variables closed) and exits 130; a second Ctrl-C exits at once.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lualib.h>

#include "cli.h"

static const char usage_text[] =
  "usage: tide [options] [script [args...]]\n"
  "       tide eval PROGRAM.lua --data FILE --out FILE [options]   (tide eval --help)\n"
  "       tide optimize PROGRAM.lua --optimizer NAME --train FILE --out FILE.json   (tide optimize --help)\n"
  "  -e code        run the Lua code (as a task)\n"
  "  -i             enter the REPL after running the script (or -e code)\n"
  "  -v, --version  print the version\n"
  "  -h, --help     print this help\n"
  "  --             stop handling options\n"
  "  -              run standard input as the script\n"
  "The script runs as a tide task: lm calls, tide.gather and tide.sleep work at its\n"
  "top level.  `arg` holds its arguments, as in lua.  Ctrl-C cancels it.\n"
  "With no script, tide reads Lua at a prompt (the REPL; :help there).\n"
  "Exit status: 0, 1 after an error, 2 for a usage error, 130 after Ctrl-C.\n"
  "\n"
  "Environment:\n"
  "  TIDE_MODEL          the default LM, provider/model (openai/gpt-4o-mini): the\n"
  "                      REPL's `lm`, tide eval's --model, the example scripts'\n"
  "  MOCKLLM_URL         without TIDE_MODEL, the REPL and tide eval use the mockllm\n"
  "                      there (scripts/with_mockllm CMD... sets it)\n"
  "  TIDE_CACHE_DIR      the disk cache of LM answers (else $XDG_CACHE_HOME/tide,\n"
  "                      else ~/.cache/tide)\n"
  "  XDG_STATE_HOME      the REPL's history in $XDG_STATE_HOME/tide/history (else\n"
  "                      ~/.tide_history)\n"
  "  TIDE_REDIS_URL      redis://[user:pass@]host:port/db: the cache and rate limits\n"
  "                      shared by every process on it (docs/redis.md)\n"
  "  OTEL_TRACES_EXPORTER=otlp, OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, ..._HEADERS,\n"
  "  OTEL_SERVICE_NAME   OpenTelemetry traces of every LM call (docs/tracing.md)\n"
  "  OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or GOOGLE_API_KEY,\n"
  "  AZURE_API_KEY, MISTRAL_API_KEY, DEEPSEEK_API_KEY, XAI_API_KEY, GROQ_API_KEY,\n"
  "  CEREBRAS_API_KEY, OPENROUTER_API_KEY or OR_API_KEY, PERPLEXITYAI_API_KEY or\n"
  "  PERPLEXITY_API_KEY, TOGETHERAI_API_KEY, TOGETHER_AI_API_KEY, TOGETHER_AI_TOKEN\n"
  "  or TOGETHER_API_KEY, FIREWORKS_AI_API_KEY, FIREWORKSAI_API_KEY,\n"
  "  FIREWORKS_AI_TOKEN or FIREWORKS_API_KEY\n"
  "                      the providers' keys\n"
  "  OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GEMINI_BASE_URL, AZURE_API_BASE (and\n"
  "  AZURE_API_VERSION), MISTRAL_API_BASE, DEEPSEEK_API_BASE, XAI_API_BASE,\n"
  "  GROQ_API_BASE, CEREBRAS_API_BASE, OPENROUTER_API_BASE, PERPLEXITY_API_BASE,\n"
  "  TOGETHER_AI_API_BASE, FIREWORKS_API_BASE\n"
  "                      the providers' base URLs (a proxy, a local server)\n"
  "  LUA_PATH, LUA_CPATH where require looks, as in lua\n";

/* A usage error: the message (what, then 'arg' when there is one), a pointer to
 * --help, and status 2. */
static int usage_error(const char *progname, const char *what, const char *arg)
{
  if (arg)
    fprintf(stderr, "%s: %s '%s'\n", progname, what, arg);
  else
    fprintf(stderr, "%s: %s\n", progname, what);
  fprintf(stderr, "(%s --help for the options)\n", progname);
  return 2;
}

/* Prints the error on top of L the way a person wants to read it: kind and
 * message, then the traceback of the place it was raised.  [-0, +0, e] (its
 * __tostring runs) */
static void report(lua_State *L, const char *progname)
{
  const char *msg;
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "traceback");
    msg = luaL_tolstring(L, -2, NULL);
    fprintf(stderr, "%s: %s\n", progname, msg);
    if (lua_isstring(L, -2))
      fprintf(stderr, "%s\n", lua_tostring(L, -2));
    lua_pop(L, 2);
  } else {
    msg = luaL_tolstring(L, -1, NULL);
    fprintf(stderr, "%s: %s\n", progname, msg);
    lua_pop(L, 1);
  }
  fflush(stderr);
}

/* Puts <dir of the executable>/../lua (a built tree) and ../share/lua/5.4 (where
 * make install puts the library) in front of package.path, so either finds the
 * tide library without LUA_PATH.  [-0, +0, m] */
static void add_library_path(lua_State *L)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash;
  if (n <= 0)
    return;
  exe[n] = '\0';
  slash = strrchr(exe, '/');
  if (slash == NULL)
    return;
  *slash = '\0';
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/../lua/?.lua;%s/../lua/?/init.lua;%s/../share/lua/5.4/?.lua;"
                     "%s/../share/lua/5.4/?/init.lua;",
                  exe, exe, exe, exe);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* arg = { [-n..-1] = interpreter and options, [0] = script, [1..] = its args }
 * [-0, +0, m] */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
  int i;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* [-(nargs+1), +0] runs the chunk below the nargs values on top as a task, with
 * Ctrl-C cancelling it; returns 1 after reporting an error (130 when Ctrl-C
 * cancelled it), else 0 — or, when status_result is set, the integer the chunk
 * returned (a subcommand's exit code). */
static int run_as_task(cli *C, int nargs, int status_result)
{
  lua_State *L = C->L;
  int st;
  switch (cli_run_task(C, nargs)) {
  case CLI_DONE:
    st = status_result && lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    break;
  case CLI_INTERRUPTED:
    fprintf(stderr, "%s: interrupted\n", C->progname);
    st = 130;
    break;
  default:
    report(L, C->progname);
    return 1;
  }
  lua_pop(L, 1);
  return st;
}

/* Runs the loop until the tasks a script left behind are done.  A Ctrl-C stops
 * waiting (tide_close then cancels and unwinds them; another Ctrl-C exits). */
static int finish_tasks(cli *C)
{
  int live;
  while ((live = tide_wait(C->E)) > 0) {
    if (cli_take_interrupt(C)) {
      C->cancelling = 1;
      fprintf(stderr, "%s: interrupted\n", C->progname);
      return 130;
    }
  }
  if (live < 0) {
    fprintf(stderr, "%s: tasks are left waiting for something that cannot happen\n",
            C->progname);
    return 1;
  }
  return 0;
}

static int load_failed(lua_State *L, const char *progname)
{
  report(L, progname);
  return 1;
}

/* `tide NAME args...` for a subcommand runs require("tide.NAME.cli").main(args...). */
static const char *const subcommands[] = {"eval", "optimize", NULL};

static int is_subcommand(const char *a)
{
  int i;
  for (i = 0; subcommands[i]; i++)
    if (strcmp(a, subcommands[i]) == 0)
      return 1;
  return 0;
}

/* Runs `tide NAME args...` as a task; returns the exit status.  [-0, +0, e] */
static int run_subcommand(cli *C, char **argv, int argc)
{
  lua_State *L = C->L;
  const char *progname = C->progname;
  static const char loader[] =
    "local name = ...\n"
    "return require('tide.' .. name .. '.cli').main(select(2, ...))\n";
  int n;
  create_arg_table(L, argv, argc, 1);
  if (luaL_loadbuffer(L, loader, sizeof loader - 1, "=(subcommand)") != LUA_OK)
    return load_failed(L, progname);
  luaL_checkstack(L, argc, "too many arguments");
  for (n = 1; n < argc; n++)
    lua_pushstring(L, argv[n]);
  return run_as_task(C, argc - 1, 1);
}

static int tide_main(lua_State *L)
{
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  cli *C = (cli *)lua_touserdata(L, 3);
  const char *progname = C->progname;
  int i, status = 0, ran = 0, script = 0, interactive = 0;

  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_tide_core);
  lua_setfield(L, -2, "tide.core");
  lua_pop(L, 1);
  add_library_path(L);
  C->E = tide_open(L, NULL);
  luaL_requiref(L, "tide.core", luaopen_tide_core, 0);
  lua_pop(L, 1);
  cli_fit_connections(C);
  cli_interrupt_open(C);

  if (argc > 1 && is_subcommand(argv[1])) {
    status = run_subcommand(C, argv, argc);
    ran = 1;
    i = argc;
  } else {
    i = 1;
  }
  for (; i < argc && status == 0; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      printf("tide %s (%s, libuv %s, %s)\n", TIDE_VERSION, LUA_RELEASE, uv_version_string(),
             curl_version());
      ran = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      ran = 1;
    } else if (strcmp(a, "-i") == 0) {
      interactive = 1;
    } else if (strcmp(a, "-e") == 0) {
      if (i + 1 >= argc) {
        status = usage_error(progname, "'-e' needs an argument", NULL);
        break;
      }
      create_arg_table(L, argv, argc, i + 1);
      if (luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)") != LUA_OK)
        status = load_failed(L, progname);
      else
        status = run_as_task(C, 0, 0);
      ran = 1;
      i++;
    } else if (strcmp(a, "--") == 0) {
      script = i + 1 < argc ? i + 1 : 0;
      break;
    } else if (a[0] == '-' && a[1] != '\0') {
      lua_pushinteger(L, usage_error(progname, "unknown option", a));
      return 1;
    } else {
      script = i;
      break;
    }
  }
  if (status == 0 && script > 0) {
    const char *path = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
    int n;
    create_arg_table(L, argv, argc, script);
    if (luaL_loadfile(L, path) != LUA_OK) {
      status = load_failed(L, progname);
    } else {
      luaL_checkstack(L, argc - script, "too many arguments");
      for (n = script + 1; n < argc; n++)
        lua_pushstring(L, argv[n]);
      status = run_as_task(C, argc - script - 1, 0);
    }
    ran = 1;
  }
  if (status == 0 && (interactive || !ran)) {
    /* `tide` alone, or -i after a script: the REPL (plain lines on a pipe) */
    if (!ran)
      create_arg_table(L, argv, argc, 0);
    status = repl_main(C);
  } else if (status == 0) {
    /* the script returned: finish the tasks it left running, as node does */
    status = finish_tasks(C);
  }
  lua_pushinteger(L, status);
  return 1;
}

int main(int argc, char **argv)
{
  lua_State *L;
  int status;
  tide_engine *E;
  cli C;
  cli_raise_fd_limit();
  L = luaL_newstate();
  memset(&C, 0, sizeof C);
  C.L = L;
  C.progname = argv[0] ? argv[0] : "tide";
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", argv[0]);
    return EXIT_FAILURE;
  }
  /* Generational GC: a fan-out makes many short-lived tables (requests, replies,
   * predictions), which the generational mode collects for less CPU per call
   * (CPU per call is what `make bench`'s critics workload measures).  Only the
   * binary's own state: a host keeps the mode it chose. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  lua_pushcfunction(L, tide_main);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, &C);
  status = lua_pcall(L, 3, 1, 0);
  if (status != LUA_OK) {
    report(L, argv[0]);
    status = 1;
  } else {
    status = (int)lua_tointeger(L, -1);
  }
  cli_interrupt_close(&C);   /* from here a Ctrl-C ends the process the default way */
  E = tide_get(L);
  if (E)
    tide_close(E);           /* unwinds what is left; its last loop run ends our handles */
  lua_close(L);
  return status;
}
