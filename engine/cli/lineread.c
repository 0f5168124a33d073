/*
 * lineread.c — reading the REPL's input one line at a time.
 *
 * On a terminal, libedit edits the line (emacs keys, history, Tab completion);
 * on a pipe or a file, lines are read plainly.  Either way the reader never blocks
 * the engine: while it waits for a key it runs the engine's loop (tide_wait), with
 * standard input watched by a uv_poll_t, so tasks started at earlier prompts go on.
 * libedit reads its characters through line_getc, which is where that waiting
 * happens; Ctrl-C arrives there as a count (interrupt.c) and is turned into a ^C
 * key that discards the line.
 */
#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include <lauxlib.h>

#include "cli.h"

#define HISTORY_SIZE 1000
#define KEY_INTERRUPT 3     /* ^C: what line_getc hands libedit for a Ctrl-C */

struct line_reader {
  cli *C;
  EditLine *el;            /* NULL when reading plainly */
  History *hist;
  char *history_path;
  const char *prompt;
  int interrupted;         /* the ^C binding ran during this el_gets */
  int complete_ref;        /* registry ref of the completion function, or LUA_NOREF */
  uv_poll_t poll;          /* standard input, watched while waiting */
  int poll_ok;             /* 0 for a regular file (epoll refuses them): always ready */
  int readable;
  int stdin_flags;         /* restored after uv_poll_init made the fd non-blocking */
  char ibuf[64];           /* bytes read but not yet decoded (editor) */
  size_t ilen;
  char *pbuf;              /* bytes read but not yet returned (plain) */
  size_t pstart, plen, pcap;
  int eof;
  char *line;              /* the last line returned (editor) */
  size_t line_cap;
};

/* ---- waiting for standard input on the engine's loop -------------------------- */

static void stdin_ready(uv_poll_t *h, int status, int events)
{
  line_reader *R = (line_reader *)h->data;
  (void)status, (void)events;   /* an error shows up in the read that follows */
  R->readable = 1;
  uv_poll_stop(h);
}

/* Runs the loop until standard input is readable (1) or Ctrl-C was pressed (0). */
static int wait_input(line_reader *R)
{
  if (!R->poll_ok)
    return !cli_take_interrupt(R->C);
  R->readable = 0;
  uv_poll_start(&R->poll, UV_READABLE, stdin_ready);
  while (!R->readable && R->C->interrupts == 0)
    tide_wait(R->C->E);   /* the poll handle keeps the loop alive: this blocks */
  uv_poll_stop(&R->poll);
  return !cli_take_interrupt(R->C);
}

/* ---- libedit's hooks ------------------------------------------------------------- */

static line_reader *reader_of(EditLine *el)
{
  void *R = NULL;
  el_get(el, EL_CLIENTDATA, &R);
  return (line_reader *)R;
}

static char *line_prompt(EditLine *el)
{
  return (char *)reader_of(el)->prompt;
}

/* libedit's source of characters: decodes what standard input has, waiting on the
 * loop for more.  Returns 1 with a character, 0 at end of file, -1 on error. */
static int line_getc(EditLine *el, wchar_t *wc)
{
  line_reader *R = reader_of(el);
  for (;;) {
    ssize_t n;
    if (R->ilen > 0) {
      mbstate_t st;
      size_t used;
      memset(&st, 0, sizeof st);
      used = mbrtowc(wc, R->ibuf, R->ilen, &st);
      if (used == (size_t)-2 && R->ilen < sizeof R->ibuf && !R->eof) {
        /* an incomplete multibyte character: read the rest */
      } else {
        if (used == (size_t)-1 || used == (size_t)-2) {
          *wc = (wchar_t)(unsigned char)R->ibuf[0];   /* not valid here: pass the byte */
          used = 1;
        } else if (used == 0) {
          used = 1;   /* a NUL byte */
        }
        R->ilen -= used;
        memmove(R->ibuf, R->ibuf + used, R->ilen);
        return 1;
      }
    }
    if (R->eof)
      return 0;
    if (!wait_input(R)) {
      *wc = KEY_INTERRUPT;
      return 1;
    }
    n = read(STDIN_FILENO, R->ibuf + R->ilen, sizeof R->ibuf - R->ilen);
    if (n > 0)
      R->ilen += (size_t)n;
    else if (n == 0)
      R->eof = 1;
    else if (errno != EINTR && errno != EAGAIN)
      return -1;
  }
}

/* ^C: shows it, ends the line, and marks it to be dropped. */
static unsigned char line_interrupt(EditLine *el, int ch)
{
  line_reader *R = reader_of(el);
  const LineInfo *li = el_line(el);
  (void)ch;
  R->interrupted = 1;
  el_cursor(el, (int)(li->lastchar - li->cursor));
  el_insertstr(el, "^C");
  el_push(el, "\n");   /* the usual newline key: libedit moves below the line */
  return CC_REFRESH;
}

static int terminal_width(void)
{
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 80;
}

/* [-0, +0, m] prints the n candidates in the list on top of L, in columns. */
static void print_candidates(lua_State *L, lua_Integer n)
{
  size_t width = 0, len;
  lua_Integer i;
  int cols, col = 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_tolstring(L, -1, &len);
    if (len > width)
      width = len;
    lua_pop(L, 1);
  }
  width += 2;
  cols = (int)((size_t)terminal_width() / width);
  if (cols < 1)
    cols = 1;
  fputc('\n', stdout);
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, -1, i);
    s = lua_tolstring(L, -1, &len);
    if (++col == cols || i == n) {
      printf("%s\n", s);
      col = 0;
    } else {
      printf("%-*s", (int)width, s);
    }
    lua_pop(L, 1);
  }
  fflush(stdout);
}

/* Tab: asks the Lua completer, then inserts what all candidates share, or lists
 * them when that adds nothing.  [-0, +0, m] on the binary's state: the word, the
 * candidates and two of them at a time meanwhile. */
static unsigned char line_complete(EditLine *el, int ch)
{
  line_reader *R = reader_of(el);
  lua_State *L = R->C->L;
  const LineInfo *li = el_line(el);
  const char *first;
  size_t wlen, common, len;
  lua_Integer n, i;
  unsigned char ret = CC_REFRESH_BEEP;
  int top = lua_gettop(L);
  (void)ch;
  if (R->complete_ref == LUA_NOREF)
    return CC_ERROR;
  lua_rawgeti(L, LUA_REGISTRYINDEX, R->complete_ref);
  lua_pushlstring(L, li->buffer, (size_t)(li->cursor - li->buffer));
  if (lua_pcall(L, 1, 2, 0) != LUA_OK || !lua_isstring(L, -2) || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return CC_ERROR;
  }
  lua_tolstring(L, -2, &wlen);   /* the word being completed: candidates extend it */
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n == 0) {
    lua_settop(L, top);
    return CC_REFRESH_BEEP;
  }
  lua_rawgeti(L, -1, 1);
  first = lua_tolstring(L, -1, &common);
  for (i = 2; i <= n; i++) {
    const char *s;
    size_t k = 0;
    lua_rawgeti(L, -2, i);
    s = lua_tolstring(L, -1, &len);
    while (k < common && k < len && s[k] == first[k])
      k++;
    common = k;
    lua_pop(L, 1);
  }
  if (common > wlen) {
    lua_pushlstring(L, first + wlen, common - wlen);
    el_insertstr(el, lua_tostring(L, -1));
    ret = CC_REFRESH;
  } else if (n > 1) {
    lua_pop(L, 1);
    print_candidates(L, n);
    ret = CC_REDISPLAY;
  }
  lua_settop(L, top);
  return ret;
}

/* ---- opening and closing ---------------------------------------------------------- */

static void reader_free(line_reader *R)
{
  free(R->history_path);
  free(R->pbuf);
  free(R->line);
  free(R);
}

static void poll_closed(uv_handle_t *h)
{
  reader_free((line_reader *)h->data);
}

static void history_load(line_reader *R, const char *path)
{
  HistEvent ev;
  R->hist = history_init();
  history(R->hist, &ev, H_SETSIZE, HISTORY_SIZE);
  history(R->hist, &ev, H_SETUNIQUE, 1);
  if (path) {
    R->history_path = strdup(path);
    history(R->hist, &ev, H_LOAD, path);
  }
}

static void editor_open(line_reader *R, const char *progname)
{
  EditLine *el = el_init(progname, stdin, stdout, stderr);
  R->el = el;
  el_set(el, EL_CLIENTDATA, (void *)R);
  el_set(el, EL_EDITOR, "emacs");
  el_set(el, EL_PROMPT, line_prompt);
  el_set(el, EL_HIST, history, R->hist);
  el_set(el, EL_GETCFN, line_getc);
  /* the wide form keeps pointers to these literals; the narrow one copies the
   * names and never frees the copies */
  el_wset(el, EL_ADDFN, L"tide-interrupt", L"Drop the line (Ctrl-C)", line_interrupt);
  el_set(el, EL_BIND, "^C", "tide-interrupt", NULL);
  el_wset(el, EL_ADDFN, L"tide-complete", L"Complete a name", line_complete);
  el_set(el, EL_BIND, "^I", "tide-complete", NULL);
  el_source(el, NULL);   /* the user's ~/.editrc, as other libedit programs do */
}

line_reader *lineread_open(cli *C, int editor, const char *history_path, int complete_idx)
{
  line_reader *R = (line_reader *)calloc(1, sizeof *R);
  if (R == NULL)
    luaL_error(C->L, "tide: out of memory");
  R->C = C;
  R->complete_ref = LUA_NOREF;
  if (complete_idx) {
    lua_pushvalue(C->L, complete_idx);
    R->complete_ref = luaL_ref(C->L, LUA_REGISTRYINDEX);
  }
  R->stdin_flags = fcntl(STDIN_FILENO, F_GETFL);
  if (uv_poll_init(tide_loop(C->E), &R->poll, STDIN_FILENO) == 0) {
    R->poll.data = R;
    R->poll_ok = 1;
    /* libuv made the descriptor non-blocking; the terminal is shared with the
     * shell and with the user's own io.read calls, so give it back as it was */
    if (R->stdin_flags != -1)
      fcntl(STDIN_FILENO, F_SETFL, R->stdin_flags);
  }
  if (editor) {
    history_load(R, history_path);
    editor_open(R, C->progname);
  }
  return R;
}

void lineread_close(line_reader *R)
{
  if (R->el)
    el_end(R->el);
  if (R->hist)
    history_end(R->hist);
  if (R->complete_ref != LUA_NOREF)
    luaL_unref(R->C->L, LUA_REGISTRYINDEX, R->complete_ref);
  if (R->poll_ok)
    uv_close((uv_handle_t *)&R->poll, poll_closed);   /* freed once the loop lets go */
  else
    reader_free(R);
}

int lineread_at_eof(line_reader *R)
{
  return R->eof;
}

void lineread_add_history(line_reader *R, const char *entry)
{
  HistEvent ev;
  int fd;
  if (R->hist == NULL)
    return;
  history(R->hist, &ev, H_ENTER, entry);
  if (R->history_path == NULL)
    return;
  /* created private before libedit writes it: inputs may hold keys */
  fd = open(R->history_path, O_WRONLY | O_CREAT, 0600);
  if (fd < 0)
    return;
  fchmod(fd, 0600);
  close(fd);
  history(R->hist, &ev, H_SAVE, R->history_path);
}

/* ---- reading a line ---------------------------------------------------------------- */

static int read_edited(line_reader *R, const char **line, size_t *len)
{
  int count = 0;
  const char *s;
  R->interrupted = 0;
  s = el_gets(R->el, &count);
  if (R->interrupted)
    return LINE_INTERRUPTED;
  if (s == NULL || count <= 0)
    return LINE_EOF;
  if ((size_t)count + 1 > R->line_cap) {
    char *p = (char *)realloc(R->line, (size_t)count + 1);
    if (p == NULL)
      return LINE_EOF;
    R->line = p;
    R->line_cap = (size_t)count + 1;
  }
  memcpy(R->line, s, (size_t)count);
  while (count > 0 && (R->line[count - 1] == '\n' || R->line[count - 1] == '\r'))
    count--;
  R->line[count] = '\0';
  *line = R->line;
  *len = (size_t)count;
  return LINE_OK;
}

static int read_plain(line_reader *R, const char **line, size_t *len)
{
  for (;;) {
    char *start = R->pbuf + R->pstart;
    size_t have = R->plen - R->pstart;
    char *nl = have ? (char *)memchr(start, '\n', have) : NULL;
    ssize_t n;
    if (nl || (R->eof && have > 0)) {
      size_t l = nl ? (size_t)(nl - start) : have;
      R->pstart += nl ? l + 1 : l;
      if (l > 0 && start[l - 1] == '\r')
        l--;
      start[l] = '\0';   /* over the newline, or in the spare byte kept below */
      *line = start;
      *len = l;
      return LINE_OK;
    }
    if (R->eof)
      return LINE_EOF;
    if (have > 0)
      memmove(R->pbuf, start, have);   /* the line returned last is no longer needed */
    R->pstart = 0;
    R->plen = have;
    if (R->pcap - R->plen < 4097) {
      size_t cap = R->pcap ? R->pcap * 2 : 8192;
      char *p = (char *)realloc(R->pbuf, cap);
      if (p == NULL)
        return LINE_EOF;
      R->pbuf = p;
      R->pcap = cap;
    }
    if (!wait_input(R)) {
      R->plen = 0;   /* Ctrl-C drops the partial line */
      return LINE_INTERRUPTED;
    }
    n = read(STDIN_FILENO, R->pbuf + R->plen, R->pcap - R->plen - 1);
    if (n > 0)
      R->plen += (size_t)n;
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
      R->eof = 1;
  }
}

int lineread_get(line_reader *R, const char *prompt, const char **line, size_t *len)
{
  R->prompt = prompt;
  return R->el ? read_edited(R, line, len) : read_plain(R, line, len);
}
