/*
 * pty.c — runs a command on a pseudo-terminal and plays a script of keystrokes
 * against it, for the REPL specs (line editing, Ctrl-C, Ctrl-D need a terminal).
 *
 *   spec_pty SCRIPT CMD [ARGS...]
 *
 * SCRIPT has one step per line:
 *   send TEXT     write TEXT to the terminal (escapes: \n \r \t \e \\ \xHH)
 *   expect TEXT   read until the output after the last match contains TEXT
 *   ready         wait until the command reads keys one by one (a line editor
 *                 switched the terminal to non-canonical mode): keys sent before
 *                 that would be taken by the kernel's line discipline instead
 *   until PORT PATH TEXT
 *                 GET http://127.0.0.1:PORT/PATH until its answer contains TEXT
 *                 (mockllm's /__stats: send Ctrl-C only once a request is in flight)
 *   wait          wait for the command to exit
 * Then the whole transcript is printed, and a last line `exit=N` or `signal=N`.
 * A step that cannot complete (the text never came, the command died) prints
 * `pty: ...` and exits 3; the guard is 20 s per step, to end a stuck run, not to
 * measure anything.
 */
#define _XOPEN_SOURCE 600
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define GUARD_MS 20000

typedef struct {
  int master;
  pid_t child;
  char *out;
  size_t len, cap, mark;
  int status;
  int exited;
} session;

static void die(session *S, const char *what, const char *arg)
{
  fwrite(S->out, 1, S->len, stdout);
  printf("\npty: %s%s\n", what, arg ? arg : "");
  if (!S->exited)
    kill(S->child, SIGKILL);
  exit(3);
}

/* Reads what the terminal has within ms; 0 when the command's side closed. */
static int pump(session *S, int ms)
{
  struct pollfd p;
  char buf[4096];
  ssize_t n;
  p.fd = S->master;
  p.events = POLLIN;
  if (poll(&p, 1, ms) <= 0)
    return 1;
  n = read(S->master, buf, sizeof buf);
  if (n <= 0)
    return 0;   /* EIO: every slave descriptor is closed */
  if (S->len + (size_t)n + 1 > S->cap) {
    S->cap = (S->len + (size_t)n + 1) * 2;
    S->out = (char *)realloc(S->out, S->cap);
    if (S->out == NULL)
      exit(3);
  }
  memcpy(S->out + S->len, buf, (size_t)n);
  S->len += (size_t)n;
  S->out[S->len] = '\0';
  return 1;
}

static size_t unescape(const char *in, char *out)
{
  size_t n = 0;
  while (*in) {
    if (*in != '\\' || in[1] == '\0') {
      out[n++] = *in++;
      continue;
    }
    in++;
    switch (*in) {
    case 'n': out[n++] = '\n'; in++; break;
    case 'r': out[n++] = '\r'; in++; break;
    case 't': out[n++] = '\t'; in++; break;
    case 'e': out[n++] = 27; in++; break;
    case 'x': {
      char hex[3] = {0, 0, 0};
      hex[0] = in[1];
      hex[1] = in[1] ? in[2] : 0;
      out[n++] = (char)strtol(hex, NULL, 16);
      in += 3;
      break;
    }
    default: out[n++] = *in++; break;
    }
  }
  out[n] = '\0';
  return n;
}

static void step_expect(session *S, const char *text)
{
  int waited = 0;
  for (;;) {
    char *hit = S->len > S->mark ? strstr(S->out + S->mark, text) : NULL;
    if (hit) {
      S->mark = (size_t)(hit - S->out) + strlen(text);
      return;
    }
    if (waited >= GUARD_MS)
      die(S, "timed out waiting for: ", text);
    if (!pump(S, 50))
      die(S, "the command closed the terminal before printing: ", text);
    waited += 50;
  }
}

static void step_ready(session *S)
{
  int waited = 0;
  struct termios t;
  while (tcgetattr(S->master, &t) == 0 && (t.c_lflag & ICANON)) {
    if (waited >= GUARD_MS)
      die(S, "timed out waiting for a line editor on the terminal", NULL);
    pump(S, 10);
    waited += 10;
  }
}

/* One GET on 127.0.0.1; 1 when the answer contains text. */
static int http_has(int port, const char *path, const char *text)
{
  struct sockaddr_in a;
  char req[1200], buf[16384];
  size_t len = 0;
  ssize_t n;
  int fd = socket(AF_INET, SOCK_STREAM, 0), found;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           path);
  if (write(fd, req, strlen(req)) < 0) {
    close(fd);
    return 0;
  }
  while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  close(fd);
  found = strstr(buf, text) != NULL;
  return found;
}

static void step_until(session *S, const char *args)
{
  char path[1024], text[1024];
  int port, waited = 0;
  if (sscanf(args, "%d %1023s %1023[^\n]", &port, path, text) != 3)
    die(S, "bad until step: ", args);
  while (!http_has(port, path, text)) {
    if (waited >= GUARD_MS)
      die(S, "timed out waiting for the server to say: ", text);
    pump(S, 10);
    waited += 10;
  }
}

static void step_wait(session *S)
{
  int waited = 0;
  while (waitpid(S->child, &S->status, WNOHANG) == 0) {
    if (waited >= GUARD_MS)
      die(S, "timed out waiting for the command to exit", NULL);
    if (!pump(S, 50))
      usleep(50000);   /* the terminal is closed: poll returns at once from now on */
    waited += 50;
  }
  S->exited = 1;
  while (pump(S, 0) && S->len < 1 << 24) {
    struct pollfd p = {S->master, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
      break;
  }
}

static pid_t spawn(session *S, char **argv)
{
  struct winsize ws = {24, 80, 0, 0};
  char *slave;
  pid_t pid;
  S->master = posix_openpt(O_RDWR | O_NOCTTY);
  if (S->master < 0 || grantpt(S->master) != 0 || unlockpt(S->master) != 0)
    return -1;
  slave = ptsname(S->master);
  pid = fork();
  if (pid == 0) {
    int fd;
    setsid();
    fd = open(slave, O_RDWR);   /* the first terminal a session leader opens is its own */
    if (fd < 0)
      _exit(127);
    ioctl(fd, TIOCSCTTY, 0);
    ioctl(fd, TIOCSWINSZ, &ws);
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
      close(fd);
    close(S->master);
    if (getenv("TERM") == NULL || strcmp(getenv("TERM"), "dumb") == 0)
      setenv("TERM", "xterm", 1);
    execvp(argv[0], argv);
    _exit(127);
  }
  return pid;
}

int main(int argc, char **argv)
{
  session S;
  FILE *script;
  char line[8192], text[8192];
  if (argc < 3) {
    fprintf(stderr, "usage: spec_pty SCRIPT CMD [ARGS...]\n");
    return 2;
  }
  memset(&S, 0, sizeof S);
  script = fopen(argv[1], "r");
  if (script == NULL) {
    perror(argv[1]);
    return 2;
  }
  S.child = spawn(&S, argv + 2);
  if (S.child < 0) {
    perror("spec_pty");
    fclose(script);
    return 2;
  }
  while (fgets(line, sizeof line, script)) {
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "send ", 5) == 0) {
      size_t n = unescape(line + 5, text);
      if (write(S.master, text, n) != (ssize_t)n)
        die(&S, "cannot write to the terminal", NULL);
    } else if (strncmp(line, "expect ", 7) == 0) {
      unescape(line + 7, text);
      step_expect(&S, text);
    } else if (strncmp(line, "until ", 6) == 0) {
      step_until(&S, line + 6);
    } else if (strcmp(line, "ready") == 0) {
      step_ready(&S);
    } else if (strcmp(line, "wait") == 0) {
      step_wait(&S);
    } else if (line[0] != '\0' && line[0] != '#') {
      die(&S, "unknown step: ", line);
    }
  }
  fclose(script);
  if (!S.exited) {
    kill(S.child, SIGKILL);
    waitpid(S.child, &S.status, 0);
  }
  fwrite(S.out, 1, S.len, stdout);
  if (WIFEXITED(S.status))
    printf("\nexit=%d\n", WEXITSTATUS(S.status));
  else
    printf("\nsignal=%d\n", WTERMSIG(S.status));
  free(S.out);
  return 0;
}
