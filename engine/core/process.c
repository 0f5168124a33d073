/*
 * process.c — tide.process: a child process with pipes, read and written
 * without blocking the loop.
 *
 *   local p <close> = tide.process{cmd = {"cat"}, env = {LANG = "C"}, cwd = "/tmp"}
 *   p:write("hello\n")              -- waits until the kernel took the bytes
 *   print(p:read_line())            --> "hello"   (nil at the end of stdout)
 *   p:close_stdin()
 *   print(p:wait())                 --> 0, nil     (exit code, signal name)
 *
 * The child leads a process group of its own, so kill and close reach what it
 * started too (npx → sh → node).  close, __close, __gc and the engine's close
 * kill a running child (SIGKILL to the group) and close every pipe; libuv reaps
 * it when it dies: no zombie, no descriptor left.
 *
 * stdin is a socket pair written with send(MSG_NOSIGNAL): a child that closed
 * its stdin is an error object (kind `process`), never a SIGPIPE that kills the
 * whole program.  stdout is read as it comes, up to max_line bytes ahead of the
 * reader (then the child waits, as with any pipe).  stderr goes to the engine's
 * stderr, to nowhere, or (the default) is read all the time and its last
 * PROC_TAIL bytes kept for error messages (p:stderr()).
 *
 * The loop's reference counting matches who waits: a handle keeps the loop alive
 * only while a task waits on it, so a child nobody waits for does not turn a
 * deadlock of the main flow into a hang.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include "engine.h"

#define PROCESS_MT "tide.process"
#define PROC_TAIL 8192                      /* bytes of stderr kept */
#define PROC_READ_CHUNK 65536
#define PROC_MAX_LINE_DEFAULT (16 * 1024 * 1024)

extern char **environ;

typedef struct proc proc;

enum proc_op_kind { OP_READ, OP_WRITE, OP_EXIT };

typedef struct proc_op {
  op op;
  proc *p;                 /* NULL once the process was closed under it */
  int linked;              /* in p->ops */
  int kind;
  int line;                /* a read: a whole line rather than what is there */
  uint64_t until;          /* a write: done when this many bytes were sent */
  struct proc_op *prev, *next;
} proc_op;

typedef struct proc_ud {
  proc *p;                 /* NULL once closed */
} proc_ud;

typedef struct bytes {
  char *data;
  size_t start, len, cap;  /* unread bytes are data[start, start + len) */
} bytes;

struct proc {
  tide_engine *E;          /* NULL once the engine released it */
  proc *prev, *next;       /* the engine's list */
  proc_ud *ud;             /* the Lua handle, while it refers to this process */
  uv_process_t handle;
  uv_pipe_t out, err;
  uv_poll_t in_poll;
  int in_fd;               /* our end of stdin, -1 once closed */
  int in_closing;          /* close stdin once the pending bytes are sent */
  int has_err;             /* stderr is piped (kept as a tail) */
  int handles;             /* uv handles not yet closed */
  int stopped;             /* closed by its owner or the engine */
  int running;             /* not exited yet */
  int64_t exit_status;
  int term_signal;
  int pid;
  bytes outbuf;            /* stdout not read yet */
  int out_eof, out_error, out_reading;
  size_t max_line;
  char tail[PROC_TAIL];    /* the last bytes of stderr */
  size_t tail_len;
  char err_scratch[4096];  /* one read of stderr, copied into tail at once */
  bytes wbuf;              /* stdin not sent yet */
  uint64_t queued, sent;   /* bytes given to write, bytes sent */
  int in_error;            /* errno of a failed send */
  proc_op *ops;            /* waiting reads, writes and waits */
};

/* ---- bookkeeping ------------------------------------------------------------ */

static void proc_maybe_free(proc *p)
{
  if (!p->stopped || p->handles > 0)
    return;
  if (p->E) {
    if (p->prev)
      p->prev->next = p->next;
    else
      p->E->procs = p->next;
    if (p->next)
      p->next->prev = p->prev;
    p->E->processes--;
  }
  free(p->outbuf.data);
  free(p->wbuf.data);
  free(p);
}

static void proc_handle_closed(uv_handle_t *h)
{
  proc *p = (proc *)h->data;
  p->handles--;
  proc_maybe_free(p);
}

static void proc_close_handle(uv_handle_t *h)
{
  if (!uv_is_closing(h))
    uv_close(h, proc_handle_closed);
}

static void op_unlink(proc_op *o)
{
  if (!o->linked)
    return;
  if (o->prev)
    o->prev->next = o->next;
  else
    o->p->ops = o->next;
  if (o->next)
    o->next->prev = o->prev;
  o->prev = o->next = NULL;
  o->linked = 0;
}

static int proc_has_waiter(const proc *p, int kind)
{
  const proc_op *o;
  for (o = p->ops; o; o = o->next)
    if (o->kind == kind && !o->op.done)
      return 1;
  return 0;
}

static void proc_set_ref(uv_handle_t *h, int waited)
{
  if (uv_is_closing(h))
    return;
  if (waited)
    uv_ref(h);
  else
    uv_unref(h);
}

/* A handle keeps the loop alive only while someone waits on it (and the
 * process handle of a stopped child until libuv reaped it). */
static void proc_refresh_refs(proc *p)
{
  if (p->running)
    proc_set_ref((uv_handle_t *)&p->handle, p->stopped || proc_has_waiter(p, OP_EXIT));
  if (p->stopped)
    return;
  proc_set_ref((uv_handle_t *)&p->out, proc_has_waiter(p, OP_READ));
  if (p->in_fd >= 0)
    proc_set_ref((uv_handle_t *)&p->in_poll, proc_has_waiter(p, OP_WRITE));
}

/* Completes the waiting ops of that kind; a write only once its bytes were sent
 * or sending failed.  A completed op stays linked until its task resumes (its
 * continuation unlinks it), so that a close meanwhile can still detach it: p
 * may be freed before that task runs.  kind < 0 (closing): every op, detached. */
static void proc_wake(proc *p, int kind)
{
  proc_op *o = p->ops, *next;
  for (; o; o = next) {
    next = o->next;
    if (kind < 0) {
      op_unlink(o);
      o->p = NULL;
      op_complete(&o->op);
      continue;
    }
    if (o->kind != kind || o->op.done)
      continue;
    if (o->kind == OP_WRITE && !p->in_error && o->until > p->sent)
      continue;
    op_complete(&o->op);
  }
  proc_refresh_refs(p);
}

/* ---- bytes ------------------------------------------------------------------ */

/* Room for n more bytes at the end; 0 or -1 out of memory. */
static int bytes_reserve(bytes *b, size_t n)
{
  size_t need;
  if (b->start > 0 && b->start + b->len + n > b->cap) {
    memmove(b->data, b->data + b->start, b->len);
    b->start = 0;
  }
  need = b->start + b->len + n;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *d;
    while (cap < need)
      cap *= 2;
    d = (char *)realloc(b->data, cap);
    if (d == NULL)
      return -1;
    b->data = d;
    b->cap = cap;
  }
  return 0;
}

static void bytes_take(bytes *b, size_t n)
{
  b->start += n;
  b->len -= n;
  if (b->len == 0)
    b->start = 0;
}

/* ---- stdout and stderr ------------------------------------------------------ */

static void out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  proc *p = (proc *)h->data;
  (void)hint;
  if (bytes_reserve(&p->outbuf, PROC_READ_CHUNK) != 0) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = p->outbuf.data + p->outbuf.start + p->outbuf.len;
  buf->len = PROC_READ_CHUNK;
}

static void out_pause(proc *p)
{
  if (p->out_reading) {
    uv_read_stop((uv_stream_t *)&p->out);
    p->out_reading = 0;
  }
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  proc *p = (proc *)s->data;
  (void)buf;
  if (n > 0) {
    p->outbuf.len += (size_t)n;
    if (p->outbuf.len >= p->max_line)
      out_pause(p);   /* the reader is that far behind: let the child wait */
  } else if (n == UV_EOF) {
    p->out_eof = 1;
    out_pause(p);
  } else if (n < 0) {
    p->out_error = (int)n;
    out_pause(p);
  } else {
    return;   /* EAGAIN */
  }
  proc_wake(p, OP_READ);
}

/* Reads stdout ahead of the reader, up to max_line bytes. */
static void out_resume(proc *p)
{
  if (p->out_reading || p->out_eof || p->out_error || p->stopped || p->outbuf.len >= p->max_line)
    return;
  if (uv_read_start((uv_stream_t *)&p->out, out_alloc, out_read) == 0)
    p->out_reading = 1;
}

static void err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  proc *p = (proc *)h->data;
  (void)hint;
  buf->base = p->err_scratch;
  buf->len = sizeof p->err_scratch;
}

static void err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  proc *p = (proc *)s->data;
  size_t k = (size_t)n;
  if (n < 0) {
    uv_read_stop(s);
    return;
  }
  if (k >= PROC_TAIL) {
    memcpy(p->tail, buf->base + k - PROC_TAIL, PROC_TAIL);
    p->tail_len = PROC_TAIL;
    return;
  }
  if (p->tail_len + k > PROC_TAIL) {
    size_t drop = p->tail_len + k - PROC_TAIL;
    memmove(p->tail, p->tail + drop, p->tail_len - drop);
    p->tail_len -= drop;
  }
  memcpy(p->tail + p->tail_len, buf->base, k);
  p->tail_len += k;
}

/* ---- stdin ------------------------------------------------------------------ */

static void in_close(proc *p)
{
  if (p->in_fd < 0)
    return;
  proc_close_handle((uv_handle_t *)&p->in_poll);
  close(p->in_fd);   /* after uv_close: the poll handle no longer watches it */
  p->in_fd = -1;
}

static void in_writable(uv_poll_t *h, int status, int events);

/* Sends what it can now; polls for the rest.  Wakes the writes that are done. */
static void in_flush(proc *p)
{
  while (p->wbuf.len > 0 && p->in_fd >= 0) {
    ssize_t n = send(p->in_fd, p->wbuf.data + p->wbuf.start, p->wbuf.len,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes_take(&p->wbuf, (size_t)n);
      p->sent += (uint64_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      uv_poll_start(&p->in_poll, UV_WRITABLE, in_writable);
      proc_refresh_refs(p);
      return;
    } else {
      p->in_error = n < 0 ? errno : EPIPE;
      p->wbuf.len = 0;
      p->wbuf.start = 0;
      break;
    }
  }
  if (p->in_fd >= 0)
    uv_poll_stop(&p->in_poll);
  proc_wake(p, OP_WRITE);
  if (p->in_closing || p->in_error)
    in_close(p);
}

static void in_writable(uv_poll_t *h, int status, int events)
{
  proc *p = (proc *)h->data;
  (void)events;
  if (status < 0) {
    p->in_error = EPIPE;
    p->wbuf.len = 0;
  }
  in_flush(p);
}

/* ---- exit and stopping ------------------------------------------------------- */

static void proc_exited(uv_process_t *h, int64_t status, int term_signal)
{
  proc *p = (proc *)h->data;
  p->running = 0;
  p->exit_status = status;
  p->term_signal = term_signal;
  proc_close_handle((uv_handle_t *)&p->handle);
  proc_wake(p, OP_EXIT);
}

/* Kills a running child's group, closes every pipe, and wakes whoever waits
 * (their continuations see the process closed).  Frees the process once its
 * handles closed, the process handle after libuv reaped the child.  No Lua. */
static void proc_stop(proc *p)
{
  if (p->stopped)
    return;
  p->stopped = 1;
  if (p->ud) {
    p->ud->p = NULL;
    p->ud = NULL;
  }
  if (p->running) {
    if (kill(-p->pid, SIGKILL) != 0)
      uv_process_kill(&p->handle, SIGKILL);
  }
  proc_wake(p, -1);   /* refs the process handle: the loop reaps the child before it stops */
  in_close(p);
  proc_close_handle((uv_handle_t *)&p->out);
  if (p->has_err)
    proc_close_handle((uv_handle_t *)&p->err);
  proc_maybe_free(p);
}

void process_release_all(tide_engine *E)
{
  proc *p;
  while ((p = E->procs) != NULL) {
    E->procs = p->next;
    E->processes--;
    p->prev = p->next = NULL;
    p->E = NULL;    /* from now on its callbacks touch only p itself */
    proc_stop(p);   /* frees p now, or once its handles closed */
  }
}

/* ---- Lua: the handle ---------------------------------------------------------- */

static proc *proc_check(lua_State *L, int idx, const char *fname)
{
  proc_ud *u = (proc_ud *)luaL_checkudata(L, idx, PROCESS_MT);
  if (u->p == NULL)
    luaL_error(L, "%s: the process is closed", fname);
  return u->p;
}

static void proc_op_cancel(op *o)
{
  proc_op *po = (proc_op *)o;
  op_unlink(po);
  if (po->p)
    proc_refresh_refs(po->p);
  op_complete(o);
}

static const op_class read_class = {"process read", proc_op_cancel};
static const op_class write_class = {"process write", proc_op_cancel};
static const op_class exit_class = {"process exit", proc_op_cancel};

/* [-0, +1, m] a waiting op of that kind, linked to p. */
static proc_op *proc_op_push(lua_State *L, proc *p, int kind)
{
  static const op_class *classes[] = {&read_class, &write_class, &exit_class};
  proc_op *o = (proc_op *)lua_newuserdatauv(L, sizeof *o, 0);
  op_init(&o->op, classes[kind], p->E);
  o->p = p;
  o->linked = 1;
  o->kind = kind;
  o->line = 0;
  o->until = 0;
  o->prev = NULL;
  o->next = p->ops;
  if (p->ops)
    p->ops->prev = o;
  p->ops = o;
  return o;
}

/* After a wait: unlinks the op (before anything may raise: the op's memory goes
 * with the task's stack), then raises when the task was cancelled or the
 * process closed meanwhile.  [-0, +0, v] */
static proc *proc_op_finish(lua_State *L, proc_op *o, const char *fname)
{
  proc *p = o->p;
  op_unlink(o);
  op_check(&o->op, L);
  if (p == NULL || p->stopped)
    error_raise(L, "process", "%s: the process was closed", fname);
  return p;
}

/* [-0, +1, v] one line (without its "\n"), what is buffered, or nil at the end;
 * 0 when the caller must wait for more. */
static int proc_take(lua_State *L, proc *p, int line)
{
  bytes *b = &p->outbuf;
  const char *d = b->data + b->start;
  if (line && b->len > 0) {
    const char *nl = (const char *)memchr(d, '\n', b->len);
    if (nl) {
      size_t n = (size_t)(nl - d);
      lua_pushlstring(L, d, n > 0 && d[n - 1] == '\r' ? n - 1 : n);
      bytes_take(b, n + 1);
      out_resume(p);
      return 1;
    }
    if (b->len >= p->max_line)
      return error_raise(L, "too_large", "process:read_line: a line longer than max_line "
                         "(%I bytes) on the stdout of process %d", (lua_Integer)p->max_line, p->pid);
    if (!p->out_eof && !p->out_error)
      return 0;
  }
  if (b->len > 0 && (!line || p->out_eof || p->out_error)) {
    lua_pushlstring(L, d, b->len);
    bytes_take(b, b->len);
    out_resume(p);
    return 1;
  }
  if (p->out_error)
    return error_raise(L, "process", "reading the stdout of process %d failed: %s", p->pid,
                       uv_strerror(p->out_error));
  if (p->out_eof) {
    lua_pushnil(L);
    return 1;
  }
  return 0;
}

static int proc_read_start(lua_State *L, int line);

static int proc_read_k(lua_State *L, int status, lua_KContext ctx)
{
  proc_op *o = (proc_op *)ctx;
  int line = o->line;   /* the op goes with the stack slot popped below */
  proc *p = proc_op_finish(L, o, line ? "process:read_line" : "process:read");
  (void)status;
  lua_settop(L, 1);
  if (proc_take(L, p, line))
    return 1;
  return proc_read_start(L, line);   /* woken by bytes that did not finish a line */
}

static int proc_read_start(lua_State *L, int line)
{
  tide_engine *E = engine_upvalue(L);
  const char *fname = line ? "process:read_line" : "process:read";
  proc *p = proc_check(L, 1, fname);
  proc_op *o;
  lua_settop(L, 1);
  if (proc_take(L, p, line))
    return 1;
  engine_check_wait(E, L, fname);
  if (proc_has_waiter(p, OP_READ))
    return luaL_error(L, "%s: another task is already reading this process's stdout", fname);
  out_resume(p);
  o = proc_op_push(L, p, OP_READ);
  o->line = line;
  proc_refresh_refs(p);
  return engine_await(E, L, &o->op, proc_read_k);
}

/* p:read() → the bytes of stdout that arrived (waits for some), nil at its end */
static int proc_lread(lua_State *L)
{
  return proc_read_start(L, 0);
}

/* p:read_line() → the next line of stdout without its "\n" (or "\r\n"), the
 * last unterminated piece at the end, then nil.  A line longer than max_line
 * raises too_large. */
static int proc_lread_line(lua_State *L)
{
  return proc_read_start(L, 1);
}

static int proc_raise_write(lua_State *L, proc *p)
{
  return error_raise(L, "process", "process:write: process %d no longer reads its stdin (%s)",
                     p->pid, strerror(p->in_error));
}

static int proc_write_k(lua_State *L, int status, lua_KContext ctx)
{
  proc_op *o = (proc_op *)ctx;
  proc *p = proc_op_finish(L, o, "process:write");
  (void)status;
  if (p->in_error && p->sent < o->until)
    return proc_raise_write(L, p);
  return 0;
}

/* p:write(s) — returns once the kernel took every byte of s; writes from
 * several tasks go out whole, in the order they were made.  A child that closed
 * its stdin (or exited) raises kind `process`. */
static int proc_lwrite(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  proc *p = proc_check(L, 1, "process:write");
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  proc_op *o;
  if (p->in_error)
    return proc_raise_write(L, p);
  if (p->in_fd < 0 || p->in_closing)
    return luaL_error(L, "process:write: stdin was closed (process:close_stdin)");
  engine_check_wait(E, L, "process:write");
  if (bytes_reserve(&p->wbuf, len) != 0)
    return luaL_error(L, "process:write: out of memory");
  memcpy(p->wbuf.data + p->wbuf.start + p->wbuf.len, s, len);
  p->wbuf.len += len;
  p->queued += len;
  lua_settop(L, 1);
  o = proc_op_push(L, p, OP_WRITE);
  o->until = p->queued;
  in_flush(p);
  return engine_await(E, L, &o->op, proc_write_k);
}

/* p:close_stdin() — the child reads the end of its input once what was
 * written has gone out. */
static int proc_lclose_stdin(lua_State *L)
{
  proc *p = proc_check(L, 1, "process:close_stdin");
  p->in_closing = 1;
  if (p->wbuf.len == 0)
    in_close(p);
  return 0;
}

static const struct { const char *name; int sig; } signals[] = {
  {"term", SIGTERM}, {"kill", SIGKILL}, {"int", SIGINT}, {"hup", SIGHUP},
  {"quit", SIGQUIT}, {"usr1", SIGUSR1}, {"usr2", SIGUSR2}, {"stop", SIGSTOP}, {"cont", SIGCONT},
};

static const char *signal_name(int sig)
{
  size_t i;
  for (i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (signals[i].sig == sig)
      return signals[i].name;
  return NULL;
}

/* The signal called name in the table above, or 0. */
static int signal_number(const char *name)
{
  size_t i;
  for (i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (strcmp(name, signals[i].name) == 0)
      return signals[i].sig;
  return 0;
}

/* p:kill([signal]) → true, or false when it had exited.  signal: "term" (the
 * default), "kill", "int", "hup", "quit", "usr1", "usr2", "stop", "cont" or a
 * number; sent to the child's process group. */
static int proc_lkill(lua_State *L)
{
  proc *p = proc_check(L, 1, "process:kill");
  int sig = SIGTERM;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n > 0 && n < 65, 2, "a signal number from 1 to 64 expected");
    sig = (int)n;
  } else if (!lua_isnoneornil(L, 2)) {
    const char *name = luaL_checkstring(L, 2);
    sig = signal_number(name);
    if (sig == 0)
      return luaL_argerror(L, 2, lua_pushfstring(L, "unknown signal '%s' (term, kill, int, hup, "
                                                 "quit, usr1, usr2, stop, cont or a number)", name));
  }
  if (!p->running) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (kill(-p->pid, sig) != 0)
    uv_process_kill(&p->handle, sig);
  lua_pushboolean(L, 1);
  return 1;
}

/* [-0, +2, m] the exit code (nil when a signal ended it) and the signal's name
 * (or number), nil when it exited. */
static int proc_push_exit(lua_State *L, proc *p)
{
  const char *name = signal_name(p->term_signal);
  if (p->term_signal)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)p->exit_status);
  if (p->term_signal == 0)
    lua_pushnil(L);
  else if (name)
    lua_pushstring(L, name);
  else
    lua_pushinteger(L, p->term_signal);
  return 2;
}

static int proc_wait_k(lua_State *L, int status, lua_KContext ctx)
{
  proc_op *o = (proc_op *)ctx;
  proc *p = proc_op_finish(L, o, "process:wait");
  (void)status;
  return proc_push_exit(L, p);
}

/* p:wait() → exit code, signal: waits until the child exits. */
static int proc_lwait(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  proc *p = proc_check(L, 1, "process:wait");
  proc_op *o;
  if (!p->running)
    return proc_push_exit(L, p);
  engine_check_wait(E, L, "process:wait");
  lua_settop(L, 1);
  o = proc_op_push(L, p, OP_EXIT);
  proc_refresh_refs(p);
  return engine_await(E, L, &o->op, proc_wait_k);
}

/* p:status() → "running" | "exited", and when exited what p:wait() returns */
static int proc_lstatus(lua_State *L)
{
  proc *p = proc_check(L, 1, "process:status");
  if (p->running) {
    lua_pushliteral(L, "running");
    return 1;
  }
  lua_pushliteral(L, "exited");
  return 1 + proc_push_exit(L, p);
}

/* p:stderr() → the last bytes (up to 8 KiB) the child wrote to stderr */
static int proc_lstderr(lua_State *L)
{
  proc *p = proc_check(L, 1, "process:stderr");
  lua_pushlstring(L, p->tail, p->tail_len);
  return 1;
}

/* p:close() — kills a running child (and its group) and closes the pipes; a
 * task waiting on it gets an error.  Again is a no-op; also __close and __gc. */
static int proc_lclose(lua_State *L)
{
  proc_ud *u = (proc_ud *)luaL_checkudata(L, 1, PROCESS_MT);
  if (u->p)
    proc_stop(u->p);
  return 0;
}

static int proc_lindex_pid(lua_State *L, proc_ud *u)
{
  if (u->p == NULL)
    lua_pushnil(L);
  else
    lua_pushinteger(L, u->p->pid);
  return 1;
}

/* p.pid, and the methods */
static int proc_lindex(lua_State *L)
{
  proc_ud *u = (proc_ud *)luaL_checkudata(L, 1, PROCESS_MT);
  const char *key = lua_tostring(L, 2);
  if (key && strcmp(key, "pid") == 0)
    return proc_lindex_pid(L, u);
  return engine_index_method(L);
}

static int proc_ltostring(lua_State *L)
{
  proc_ud *u = (proc_ud *)luaL_checkudata(L, 1, PROCESS_MT);
  if (u->p == NULL)
    lua_pushliteral(L, "tide.process (closed)");
  else
    lua_pushfstring(L, "tide.process (pid %d, %s)", u->p->pid, u->p->running ? "running" : "exited");
  return 1;
}

/* ---- Lua: tide.process{...} --------------------------------------------------- */

/* [-0, +1, v] the argv (NULL-terminated) from opts.cmd, its strings anchored in
 * the userdata pushed as scratch space (freed by the GC). */
static char **proc_argv(lua_State *L, int opts)
{
  lua_Integer i, n;
  char **argv;
  if (lua_getfield(L, opts, "cmd") != LUA_TTABLE)
    luaL_argerror(L, 1, "field 'cmd' must be a list of strings: the program and its arguments");
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n < 1 || n > 100000)
    luaL_argerror(L, 1, "field 'cmd' must name the program: {\"prog\", \"arg\", ...}");
  argv = (char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -2, i) != LUA_TSTRING)
      luaL_argerror(L, 1, lua_pushfstring(L, "field 'cmd' item %I must be a string, got %s", i,
                                          luaL_typename(L, -1)));
    argv[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);   /* the string lives on in cmd, which stays on the stack */
  }
  argv[n] = NULL;
  return argv;
}

/* [-0, +2, v] the environment: the engine's own, with opts.env's names set
 * (false removes one); NULL (and two nils) without opts.env. */
static char **proc_envp(lua_State *L, int opts)
{
  size_t n = 0, k = 0, i;
  char **envp;
  int env, keep;
  if (lua_getfield(L, opts, "env") == LUA_TNIL) {
    lua_pushnil(L);
    return NULL;
  }
  if (!lua_istable(L, -1))
    luaL_argerror(L, 1, "field 'env' must be a table of names to strings (or false to unset)");
  env = lua_gettop(L);
  lua_newtable(L);   /* keeps the "NAME=value" strings alive */
  keep = lua_gettop(L);
  for (i = 0; environ[i]; i++)
    n++;
  lua_pushnil(L);
  while (lua_next(L, env)) {
    if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '=') ||
        !(lua_type(L, -1) == LUA_TSTRING || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))))
      luaL_argerror(L, 1, "field 'env' must map names (without '=') to strings, or to false "
                          "to unset one");
    n++;
    lua_pop(L, 1);
  }
  envp = (char **)lua_newuserdatauv(L, (n + 1) * sizeof *envp, 0);
  lua_setfield(L, keep, "envp");
  for (i = 0; environ[i]; i++) {
    const char *eq = strchr(environ[i], '=');
    if (eq == NULL)
      continue;
    lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
    if (lua_rawget(L, env) == LUA_TNIL)
      envp[k++] = environ[i];
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, env)) {
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      envp[k++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, keep, (lua_Integer)k);
    }
    lua_pop(L, 1);
  }
  envp[k] = NULL;
  return envp;
}

static int proc_opt_stderr(lua_State *L, int opts)
{
  static const char *const modes[] = {"tail", "inherit", "ignore", NULL};
  int mode = 0;
  if (lua_getfield(L, opts, "stderr") != LUA_TNIL) {
    const char *s = lua_tostring(L, -1);
    for (mode = 0; modes[mode]; mode++)
      if (s && lua_type(L, -1) == LUA_TSTRING && strcmp(s, modes[mode]) == 0)
        break;
    if (modes[mode] == NULL)
      luaL_argerror(L, 1, "field 'stderr' must be \"tail\", \"inherit\" or \"ignore\"");
  }
  lua_pop(L, 1);
  return mode;
}

static size_t proc_opt_max_line(lua_State *L, int opts)
{
  size_t v = PROC_MAX_LINE_DEFAULT;
  if (lua_getfield(L, opts, "max_line") != LUA_TNIL) {
    int isint;
    lua_Integer n = lua_tointegerx(L, -1, &isint);
    if (!isint || n < 1 || n > ((lua_Integer)1 << 40))
      luaL_argerror(L, 1, "field 'max_line' must be a whole number of bytes >= 1");
    v = (size_t)n;
  }
  lua_pop(L, 1);
  return v;
}

/* The socket pair for stdin: sv[0] ours (non-blocking), sv[1] the child's. */
static int proc_stdin_pair(int sv[2])
{
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return -errno;
  shutdown(sv[0], SHUT_RD);
  if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) != 0) {
    int e = -errno;
    close(sv[0]);
    close(sv[1]);
    return e;
  }
  return 0;
}

/* tide.process{cmd = {prog, args...}, env = {NAME = value | false}, cwd = dir,
 *              stderr = "tail" | "inherit" | "ignore", max_line = bytes}
 *   → a process handle.  A program that cannot start raises kind `process`. */
static int proc_lspawn(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  char **argv, **envp;
  const char *cwd = NULL;
  int mode, sv[2], rc;
  size_t max_line;
  proc *p;
  proc_ud *u;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  argv = proc_argv(L, 1);                    /* 2 cmd, 3 argv */
  envp = proc_envp(L, 1);                    /* 4 env, 5 its strings */
  if (lua_getfield(L, 1, "cwd") != LUA_TNIL) {   /* 6 */
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 1, "field 'cwd' must be a string (a directory)");
    cwd = lua_tostring(L, -1);
  }
  mode = proc_opt_stderr(L, 1);
  max_line = proc_opt_max_line(L, 1);
  u = (proc_ud *)lua_newuserdatauv(L, sizeof *u, 0);   /* 7 */
  u->p = NULL;
  luaL_setmetatable(L, PROCESS_MT);
  p = (proc *)calloc(1, sizeof *p);
  if (p == NULL)
    return luaL_error(L, "tide.process: out of memory");
  if ((rc = proc_stdin_pair(sv)) != 0) {
    free(p);
    return error_raise(L, "process", "cannot start '%s': %s", argv[0], uv_strerror(rc));
  }
  p->in_fd = sv[0];
  p->max_line = max_line;
  p->has_err = mode == 0;
  uv_pipe_init(E->loop, &p->out, 0);
  p->out.data = p;
  if (p->has_err) {
    uv_pipe_init(E->loop, &p->err, 0);
    p->err.data = p;
  }
  memset(&o, 0, sizeof o);
  stdio[0].flags = UV_INHERIT_FD;
  stdio[0].data.fd = sv[1];
  stdio[1].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = (uv_stream_t *)&p->out;
  if (mode == 0) {
    stdio[2].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = (uv_stream_t *)&p->err;
  } else {
    stdio[2].flags = mode == 1 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[2].data.fd = 2;
  }
  o.exit_cb = proc_exited;
  o.file = argv[0];
  o.args = argv;
  o.env = envp;
  o.cwd = cwd;
  o.flags = UV_PROCESS_DETACHED;   /* a process group of its own: kill reaches it all */
  o.stdio_count = 3;
  o.stdio = stdio;
  p->handle.data = p;
  rc = uv_spawn(E->loop, &p->handle, &o);
  close(sv[1]);
  /* the handles are open either way: from here on only proc_stop frees p */
  p->handles = 2 + p->has_err;
  uv_poll_init(E->loop, &p->in_poll, p->in_fd);
  p->in_poll.data = p;
  p->handles++;
  if (rc != 0) {   /* p->E still NULL: stopping it touches no list */
    proc_close_handle((uv_handle_t *)&p->handle);
    proc_stop(p);
    return error_raise(L, "process", "cannot start '%s': %s", argv[0], uv_strerror(rc));
  }
  p->E = E;
  p->running = 1;
  p->pid = p->handle.pid;
  p->next = E->procs;
  if (E->procs)
    E->procs->prev = p;
  E->procs = p;
  E->processes++;
  p->ud = u;
  u->p = p;
  if (p->has_err)
    uv_read_start((uv_stream_t *)&p->err, err_alloc, err_read);
  out_resume(p);
  proc_refresh_refs(p);
  if (p->has_err)
    uv_unref((uv_handle_t *)&p->err);   /* the tail is read all along, waited by nobody */
  return 1;
}

void process_open_lib(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"read", proc_lread},
    {"read_line", proc_lread_line},
    {"write", proc_lwrite},
    {"close_stdin", proc_lclose_stdin},
    {"kill", proc_lkill},
    {"wait", proc_lwait},
    {"status", proc_lstatus},
    {"stderr", proc_lstderr},
    {"close", proc_lclose},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"process", proc_lspawn},
    {NULL, NULL}
  };
  if (engine_newclass_fields(L, PROCESS_MT, methods, proc_lindex)) {
    lua_pushcfunction(L, proc_lclose);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, proc_lclose);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, proc_ltostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
