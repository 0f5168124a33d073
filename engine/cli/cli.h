/*
 * cli.h — what the parts of the `tide` binary share: the Lua state, the engine,
 * and Ctrl-C.
 *
 * The binary is main.c (arguments), interrupt.c (Ctrl-C, and running a chunk as
 * a task that Ctrl-C cancels), lineread.c (reading lines: libedit on a terminal,
 * plain reads on a pipe), repl.c (the REPL) and fdlimit.c (its descriptor
 * limit).  None of this is in libtide: a host has its own input, its own signals
 * and its own limits.  The binary uses libtide through tide.h alone.
 */
#ifndef TIDE_CLI_H
#define TIDE_CLI_H

#include <lua.h>
#include <uv.h>

#include "tide.h"

typedef struct cli {
  lua_State *L;
  tide_engine *E;
  const char *progname;
  uv_signal_t sigint;      /* on the engine's loop, unreferenced */
  int sigint_open;
  int interrupts;          /* Ctrl-C's that nobody has acted on yet */
  int cancelling;          /* a task was cancelled by Ctrl-C and is still unwinding */
  int task_ref;            /* registry ref of the task cli_run_task waits for, or LUA_NOREF */
  int interrupted;         /* that task was cancelled by Ctrl-C */
} cli;

/* Starts catching SIGINT on the engine's loop; the engine must exist.  Also sets
 * a count hook on L (inherited by the tasks it spawns) so that Lua code that never
 * waits — `while true do end` — is interrupted too. */
void cli_interrupt_open(cli *C);
void cli_interrupt_close(cli *C);

/* 1 (once per Ctrl-C) when Ctrl-C was pressed since the last call, else 0. */
int cli_take_interrupt(cli *C);

/* What cli_run_task found. */
enum { CLI_DONE, CLI_FAILED, CLI_INTERRUPTED };

/* [-(nargs+1), +1, e] runs the function below the nargs values on top of L as a task
 * and waits for it, running the loop; Ctrl-C cancels it (its transfers are
 * aborted, its <close> variables closed), and a second Ctrl-C while it unwinds
 * exits the process with status 130.  Leaves the task's first result, or its error
 * object, on the stack. */
int cli_run_task(cli *C, int nargs);

/* ---- fdlimit.c: the binary's descriptors ------------------------------------ */

/* Lifts the soft limit on open descriptors to the hard one: before tide_open,
 * whose default connection caps follow the soft limit. */
void cli_raise_fd_limit(void);

/* [-0, +0, e] lowers tide.http_limits by the descriptors open now; tide.core
 * must be loaded. */
void cli_fit_connections(cli *C);

/* ---- lineread.c: one line at a time from standard input ------------------- */

typedef struct line_reader line_reader;

enum { LINE_OK, LINE_EOF, LINE_INTERRUPTED };

/* Reads standard input with libedit (editing, history, Tab completion) when
 * `editor` is set, else plainly.  history_path may be NULL (no file); the function
 * at L[complete_idx] (or 0 for none) is called as f(text before the cursor) and
 * returns the word being completed and a list of the words it may become. */
line_reader *lineread_open(cli *C, int editor, const char *history_path, int complete_idx);

/* Reads one line, without its newline, running the engine's loop while it waits
 * (tasks go on meanwhile).  LINE_OK sets *line (valid until the next call);
 * LINE_INTERRUPTED when Ctrl-C was pressed (the partial line is dropped). */
int lineread_get(line_reader *R, const char *prompt, const char **line, size_t *len);

/* 1 when standard input itself has ended (not a Ctrl-D typed at the editor). */
int lineread_at_eof(line_reader *R);

/* Adds an entry to the history and saves the history file (mode 0600). */
void lineread_add_history(line_reader *R, const char *entry);

void lineread_close(line_reader *R);

/* The REPL: reads inputs from standard input until end of file or :quit, runs
 * each as a task.  Returns the exit status.  [-0, +0, e] */
int repl_main(cli *C);

#endif
