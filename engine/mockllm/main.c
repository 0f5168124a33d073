/* main.c: mockllm, a local fake LLM HTTP server for tests and benchmarks.
   Arguments, startup, and an orderly shutdown on SIGINT/SIGTERM/stdin EOF. */
#include "mockllm.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f)
{
  fputs("usage: mockllm [options]\n"
        "\n"
        "A fake LLM server for tests and benchmarks. It answers the OpenAI, Anthropic and\n"
        "Gemini wire formats deterministically, and each request can script latency,\n"
        "error statuses and broken transports in an X-Mock-Scenario header. Once it\n"
        "listens it prints one line, 'mockllm listening on http://HOST:PORT'.\n"
        "\n"
        "options:\n"
        "  --host ADDR            address to listen on, IPv4 or IPv6 (default 127.0.0.1)\n"
        "  --port N               port, 0-65535; 0 (the default) picks a free one\n"
        "  --latency-ms N         wait N ms before each answer (a scenario's latency= wins)\n"
        "  --scenario 'k=v;...'   the scenario of every request; an X-Mock-Scenario header\n"
        "                         is applied on top of it, key by key (default:\n"
        "                         $MOCKLLM_SCENARIO)\n"
        "  --no-accept            listen, but never accept a connection: the kernel's queue\n"
        "                         fills and clients time out connecting (connect timeouts)\n"
        "  --exit-on-stdin-eof    stop when stdin reaches EOF, so a harness holding the\n"
        "                         pipe takes the server down with it\n"
        "  --lenient              answer requests the real APIs refuse (no key, missing\n"
        "                         fields, bad roles); a scenario's lenient=0 wins\n"
        "  --quiet                no notices on stderr\n"
        "  --verbose              one line per request on stderr\n"
        "  -h, --help             this help\n"
        "  -V, --version          the version\n"
        "SIGINT and SIGTERM stop it cleanly (exit status 0).\n"
        "\n"
        "routes: POST /v1/chat/completions (OpenAI), /v1/messages (Anthropic),\n"
        "  /v1beta/models/MODEL:generateContent and :streamGenerateContent (Gemini);\n"
        "  GET /health, /__stats (counters), /__log (requests); /__reset.\n"
        "\n"
        "scenario keys (X-Mock-Scenario: k=v;k=v), each described in\n"
        "engine/mockllm/README.md in tide's source:\n"
        "  latency status retry_after retry_after_date fail_first key reply finish\n"
        "  error=context_window|insufficient_quota cached stream_interval size interval\n"
        "  bytes endless\n"
        "  lenient invalid_key (strict checks, see --lenient)\n"
        "  tool_calls=NAME(ARGS)+... tool_args=malformed (tool calls)\n"
        "  tool_turns=T1|T2|... react=STEP|STEP|... (agents) context=TOKENS\n"
        "  fault=drop|reset_headers|reset_body|truncate|malformed|empty|html|error_body|\n"
        "        huge|drip|hang|blocked|no_text|stream_error|stream_drop|stream_cut|\n"
        "        stream_reset\n"
        "  hostile: echo_key echo_pad bom sse_eol sse_filler usage\n", f);
}

/* A usage error: one line naming what is wrong, a pointer to --help, status 2. */
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
  va_list ap;
  fputs("mockllm: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(" (try 'mockllm --help')\n", stderr);
  exit(2);
}

/* Thousands of concurrent test clients need as many descriptors. */
static void raise_nofile(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
    return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    rl.rlim_cur = 1 << 20;  /* RLIM_INFINITY is refused; nr_open's default is */
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static void server_stop(struct server *s)
{
  if (s->stopping)
    return;
  s->stopping = 1;
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  if (s->in_open)
    uv_close((uv_handle_t *)&s->in.stream, NULL);
  http_close_all(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct server *s = h->data;
  if (!s->quiet)
    fprintf(stderr, "mockllm: signal %d, stopping\n", signum);
  server_stop(s);
}

static void stdin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
  struct server *s = h->data;
  (void)hint;
  *b = uv_buf_init(s->inbuf, sizeof s->inbuf);
}

static void stdin_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
  struct server *s = st->data;
  (void)b;
  if (n >= 0)
    return;
  if (!s->quiet)
    fputs("mockllm: stdin closed, stopping\n", stderr);
  server_stop(s);
}

/* Returns 0 when watching, 1 when stdin has no stream to watch (a file or
   /dev/null: already at EOF for our purpose). */
static int watch_stdin(struct server *s)
{
  int r;
  switch (uv_guess_handle(0)) {
  case UV_NAMED_PIPE:
    uv_pipe_init(s->loop, &s->in.pipe, 0);
    r = uv_pipe_open(&s->in.pipe, 0);
    break;
  case UV_TTY:
    r = uv_tty_init(s->loop, &s->in.tty, 0, 1);
    break;
  case UV_TCP:
    uv_tcp_init(s->loop, &s->in.tcp);
    r = uv_tcp_open(&s->in.tcp, 0);
    break;
  default:
    return 1;
  }
  s->in_open = 1;
  s->in.stream.data = s;
  if (r == 0)
    r = uv_read_start(&s->in.stream, stdin_alloc, stdin_read);
  return r == 0 ? 0 : 1;
}

static void close_any(uv_handle_t *h, void *arg)
{
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] != '\0')
    return NULL;
  if (*i + 1 >= argc)
    usage_error("%s needs a value", name);
  return argv[++*i];
}

static long opt_long(const char *name, const char *v, long max)
{
  char *end;
  long x = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < 0 || x > max)
    usage_error("bad value for %s: '%s', expected a whole number from 0 to %ld", name, v, max);
  return x;
}

/* The host must be an address: a name would need a resolver mockllm does not have. */
static void check_host(const char *host)
{
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (uv_ip4_addr(host, 0, &a4) != 0 && uv_ip6_addr(host, 0, &a6) != 0)
    usage_error("bad value for --host: '%s', expected an IPv4 or IPv6 address", host);
}

int main(int argc, char **argv)
{
  struct server s;
  uv_loop_t loop;
  const char *host = "127.0.0.1", *v;
  char addr[128], err[160];
  int port = 0, exit_on_eof = 0, scenario_from_env, i, r;
  struct scenario check;

  memset(&s, 0, sizeof s);
  s.default_scenario = getenv("MOCKLLM_SCENARIO");
  scenario_from_env = s.default_scenario != NULL;
  for (i = 1; i < argc; i++) {
    if ((v = opt_value(argc, argv, &i, "--host")) != NULL)
      host = v;
    else if ((v = opt_value(argc, argv, &i, "--port")) != NULL)
      port = (int)opt_long("--port", v, 65535);
    else if ((v = opt_value(argc, argv, &i, "--latency-ms")) != NULL)
      s.latency_ms = opt_long("--latency-ms", v, 86400000L);
    else if ((v = opt_value(argc, argv, &i, "--scenario")) != NULL) {
      s.default_scenario = v;
      scenario_from_env = 0;
    }
    else if (strcmp(argv[i], "--exit-on-stdin-eof") == 0)
      exit_on_eof = 1;
    else if (strcmp(argv[i], "--quiet") == 0)
      s.quiet = 1;
    else if (strcmp(argv[i], "--no-accept") == 0)
      s.no_accept = 1;
    else if (strcmp(argv[i], "--lenient") == 0)
      s.lenient = 1;
    else if (strcmp(argv[i], "--verbose") == 0)
      s.verbose = 1;
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
      printf("mockllm %s\n", MOCKLLM_VERSION);
      return 0;
    } else if (argv[i][0] == '-') {
      usage_error("unknown option: %s", argv[i]);
    } else {
      usage_error("unexpected argument: %s", argv[i]);
    }
  }
  check_host(host);
  if (s.default_scenario && *s.default_scenario == '\0')
    s.default_scenario = NULL;
  if (s.default_scenario) {
    /* Checked once here so a bad default cannot fail every request. */
    scenario_init(&check, 0);
    r = scenario_parse(&check, s.default_scenario, strlen(s.default_scenario), err, sizeof err);
    scenario_free(&check);
    if (r != 0)
      usage_error("%s: %s", scenario_from_env ? "MOCKLLM_SCENARIO" : "--scenario", err);
  }

  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  if (uv_loop_init(&loop) != 0) {
    fputs("mockllm: cannot create event loop\n", stderr);
    return 1;
  }
  s.loop = &loop;
  s.filler = xmalloc(FILL_CHUNK);
  memset(s.filler, 'x', FILL_CHUNK);

  r = http_listen(&s, host, port, addr, sizeof addr);
  if (r != 0) {
    fprintf(stderr, "mockllm: cannot listen on %s:%d: %s\n", host, port, uv_strerror(r));
    s.stopping = 1;
    http_close_all(&s);
  } else {
    uv_signal_init(&loop, &s.sigint);
    uv_signal_init(&loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    printf("mockllm listening on %s\n", addr);
    fflush(stdout);
    if (exit_on_eof && watch_stdin(&s) != 0) {
      if (!s.quiet)
        fputs("mockllm: stdin is not a stream (at EOF), stopping\n", stderr);
      server_stop(&s);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) == UV_EBUSY) {
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  failtab_clear(&s.fails);
  log_clear(&s.log);
  free(s.filler);
  return r == 0 ? 0 : 1;
}
