/*
 * sync.c — tide.semaphore(n): a counting limiter with a FIFO of waiters.
 *
 *   local sem = tide.semaphore(4)
 *   sem:acquire() ... sem:release()
 *   local _ <close> = sem:acquire()      -- released when the scope ends
 *   sem:with(fn, ...)                    -- acquire, fn(...), release even on error
 *
 * A release hands the permit straight to the oldest waiter, so a newcomer can never
 * overtake a task that was queued first.
 */
#include "engine.h"

#define SEMAPHORE_MT "tide.semaphore"

typedef struct sem_op sem_op;

typedef struct semaphore {
  int permits;          /* free now */
  int size;             /* given to tide.semaphore */
  sem_op *head, *tail;  /* waiters, oldest first */
  int waiting;
} semaphore;

struct sem_op {
  op op;
  semaphore *sem;
  sem_op *next, *prev;
  int granted;          /* a release handed it the permit */
  int queued;
};

static semaphore *sem_check(lua_State *L, int idx)
{
  return (semaphore *)luaL_checkudata(L, idx, SEMAPHORE_MT);
}

static void sem_unqueue(semaphore *s, sem_op *w)
{
  if (!w->queued)
    return;
  if (w->prev)
    w->prev->next = w->next;
  else
    s->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    s->tail = w->prev;
  w->next = w->prev = NULL;
  w->queued = 0;
  s->waiting--;
}

/* Gives a permit back: to the oldest waiter, or to the pool. */
static void sem_put(semaphore *s)
{
  sem_op *w = s->head;
  if (w) {
    sem_unqueue(s, w);
    w->granted = 1;
    op_complete(&w->op);
  } else {
    s->permits++;
  }
}

static void sem_cancel(op *o)
{
  sem_op *w = (sem_op *)o;
  sem_unqueue(w->sem, w);
  op_complete(o);
}

static const op_class sem_class = {"semaphore", sem_cancel};

static int sem_acquire_k(lua_State *L, int status, lua_KContext ctx)
{
  sem_op *w = (sem_op *)ctx;
  (void)status;
  if ((w->op.E->current && w->op.E->current->cancelled) || w->op.deadlock) {
    if (w->granted)
      sem_put(w->sem);   /* it was handed over while we were being cancelled */
    op_check(&w->op, L);
  }
  lua_settop(L, 1);
  return 1;
}

/* sem:acquire() → sem (so that `local _ <close> = sem:acquire()` works) */
static int sem_lacquire(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  semaphore *s = sem_check(L, 1);
  sem_op *w;
  lua_settop(L, 1);
  engine_check_wait(E, L, "semaphore:acquire");
  if (s->permits > 0) {
    s->permits--;
    return 1;
  }
  w = (sem_op *)lua_newuserdatauv(L, sizeof *w, 0);
  op_init(&w->op, &sem_class, E);
  w->sem = s;
  w->granted = 0;
  w->queued = 1;
  w->next = NULL;
  w->prev = s->tail;
  if (s->tail)
    s->tail->next = w;
  else
    s->head = w;
  s->tail = w;
  s->waiting++;
  return engine_await(E, L, &w->op, sem_acquire_k);
}

/* sem:release() */
static int sem_lrelease(lua_State *L)
{
  semaphore *s = sem_check(L, 1);
  if (s->permits + 1 > s->size && s->head == NULL)
    return luaL_error(L, "semaphore:release: released more often than acquired");
  sem_put(s);
  return 0;
}

/* __close(sem, err): the end of a `local _ <close> = sem:acquire()` scope */
static int sem_lclose(lua_State *L)
{
  sem_put(sem_check(L, 1));
  return 0;
}

/* sem:with(fn, ...) → fn(...)'s results, holding a permit while fn runs.  Written
 * in Lua because `<close>` already says "release on every exit" exactly. */
static const char sem_with_source[] =
  "return function(sem, fn, ...)\n"
  "  if type(fn) ~= 'function' then\n"
  "    error(\"bad argument #1 to 'with' (function expected, got \" .. type(fn) .. ')', 2)\n"
  "  end\n"
  "  local permit <close> = sem:acquire()\n"
  "  return fn(...)\n"
  "end\n";

static int sem_lavailable(lua_State *L)
{
  lua_pushinteger(L, sem_check(L, 1)->permits);
  return 1;
}

static int sem_lwaiting(lua_State *L)
{
  lua_pushinteger(L, sem_check(L, 1)->waiting);
  return 1;
}

static int sem_ltostring(lua_State *L)
{
  semaphore *s = sem_check(L, 1);
  lua_pushfstring(L, "tide.semaphore (%d/%d free, %d waiting)", s->permits, s->size, s->waiting);
  return 1;
}

/* tide.semaphore(n) */
static int sem_lnew(lua_State *L)
{
  lua_Integer n = luaL_checkinteger(L, 1);
  semaphore *s;
  luaL_argcheck(L, n >= 1 && n <= 0x7fffffff, 1, "must be a positive integer");
  s = (semaphore *)lua_newuserdatauv(L, sizeof *s, 0);
  s->permits = s->size = (int)n;
  s->head = s->tail = NULL;
  s->waiting = 0;
  luaL_setmetatable(L, SEMAPHORE_MT);
  return 1;
}

void sync_open_lib(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"acquire", sem_lacquire},
    {"release", sem_lrelease},
    {"available", sem_lavailable},
    {"waiting", sem_lwaiting},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"semaphore", sem_lnew},
    {NULL, NULL}
  };
  if (engine_newclass(L, SEMAPHORE_MT, methods)) {
    lua_pushcfunction(L, sem_lclose);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, sem_ltostring);
    lua_setfield(L, -2, "__tostring");
    if (luaL_loadbufferx(L, sem_with_source, sizeof sem_with_source - 1, "=semaphore:with", "t") != LUA_OK)
      lua_error(L);
    lua_call(L, 0, 1);
    lua_setfield(L, -2, "with");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
