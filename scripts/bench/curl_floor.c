/*
 * curl_floor.c — the floor tide is measured against: the same fan-out of chat
 * completion POSTs, driven the canonical way (libcurl multi_socket on libuv) with
 * no Lua, no tasks and no prompt work.  Whatever tide spends above this is the
 * price of its engine.
 *
 *   curl_floor URL N [--concurrency C] [--latency-ms L] [--cacert FILE]
 *
 * Launches N POSTs at once (or at most C at a time), keeps every response body in
 * memory until the batch ends (as tide.map keeps its results), and prints one line
 * (CPU: the batch's alone, from the first start to the last completion; RSS: peak):
 *   {"client":"c-floor","n":N,"ok":K,"wall_s":..,"cpu_user_s":..,"cpu_sys_s":..,"maxrss_kb":..}
 * --latency-ms asks mockllm to hold each answer L ms (X-Mock-Scenario header).
 * An https URL gets what tide gives one: the CA of --cacert, TLS sessions shared,
 * PIPEWAIT and up to 1 000 HTTP/2 streams per connection.
 * Exits 0 when every request got HTTP 200.
 *
 * Build: cc -O2 -std=gnu99 -Wall -Wextra scripts/bench/curl_floor.c -o build/curl_floor \
 *          $(pkg-config --cflags --libs libuv libcurl)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <uv.h>

#define PROMPT_CHARS 900   /* the user message; the body comes to ~1 KB, like fanout.lua's */

typedef struct bench bench;

typedef struct {
  CURL *easy;
  char *data;              /* the response body, kept until the batch ends */
  size_t len, cap;
} transfer;

/* One per socket curl asks us to watch; curl hands it back as socketp. */
typedef struct {
  uv_poll_t poll;
  curl_socket_t fd;
  bench *b;
} sock;

struct bench {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;        /* the one timer CURLMOPT_TIMERFUNCTION drives */
  struct curl_slist *headers;
  const char *url;
  const char *cacert;      /* --cacert: the CA file of an https URL */
  CURLSH *share;           /* https: TLS sessions shared between transfers, as tide does */
  char *body;
  size_t body_len;
  transfer *xfers;
  int n, concurrency;      /* concurrency 0: all N at once */
  int started, done, ok;
  int failures_shown;
  uint64_t t_start, t_end; /* uv_hrtime() at the first start and the last completion */
};

static void die(const char *what)
{
  fprintf(stderr, "curl_floor: %s\n", what);
  exit(2);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *userp)
{
  transfer *x = (transfer *)userp;
  size_t n = size * nmemb;
  if (x->len + n > x->cap) {
    size_t cap = x->cap ? x->cap : 2048;
    char *d;
    while (cap < x->len + n)
      cap *= 2;
    d = (char *)realloc(x->data, cap);
    if (d == NULL)
      return 0;   /* curl fails the transfer with CURLE_WRITE_ERROR */
    x->data = d;
    x->cap = cap;
  }
  memcpy(x->data + x->len, p, n);
  x->len += n;
  return n;
}

/* The options tide's http_multi.c and http_request.c set that bear on cost;
 * timeouts do not, and TLS and sharing only to an https URL. */
static void transfer_start(bench *b, int i)
{
  transfer *x = &b->xfers[i];
  CURL *e = curl_easy_init();
  if (e == NULL)
    die("curl_easy_init failed");
  x->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, b->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->headers);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body_len);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body);   /* not copied: b->body outlives the batch */
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  if (b->share) {
    curl_easy_setopt(e, CURLOPT_SHARE, b->share);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    if (b->cacert)
      curl_easy_setopt(e, CURLOPT_CAINFO, b->cacert);
  }
  if (curl_multi_add_handle(b->multi, e) != CURLM_OK)
    die("curl_multi_add_handle failed");
  b->started++;
}

/* Collects finished transfers; called after every curl_multi_socket_action, since
 * only then can a transfer have finished. */
static void check_done(bench *b)
{
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(b->multi, &left)) != NULL) {
    transfer *x;
    long status = 0;
    if (m->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    if (m->data.result == CURLE_OK && status == 200) {
      b->ok++;
    } else if (b->failures_shown++ < 5) {
      fprintf(stderr, "curl_floor: request %d: %s, HTTP %ld\n", (int)(x - b->xfers),
              curl_easy_strerror(m->data.result), status);
    }
    curl_multi_remove_handle(b->multi, m->easy_handle);
    curl_easy_cleanup(m->easy_handle);   /* its connection stays in the multi's cache */
    x->easy = NULL;
    if (++b->done == b->n) {
      b->t_end = uv_hrtime();
      uv_stop(b->loop);
      return;
    }
    if (b->started < b->n)
      transfer_start(b, b->started);   /* only reached with a concurrency cap */
  }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
  sock *s = (sock *)h->data;
  int flags = 0, running;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(s->b->multi, s->fd, flags, &running);
  check_done(s->b);
}

static void on_timeout(uv_timer_t *t)
{
  bench *b = (bench *)t->data;
  int running;
  curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(b);
}

static void sock_closed(uv_handle_t *h)
{
  free(h->data);
}

/* CURLMOPT_SOCKETFUNCTION: keep one uv_poll_t per socket in step with what curl
 * wants to wait for. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  bench *b = (bench *)userp;
  sock *s = (sock *)socketp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      /* stop now: curl may close fd and reuse its number before the close completes */
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, sock_closed);
      curl_multi_assign(b->multi, fd, NULL);
    }
    return 0;
  }
  if (s == NULL) {
    s = (sock *)malloc(sizeof *s);
    if (s == NULL || uv_poll_init_socket(b->loop, &s->poll, fd) != 0)
      return -1;
    s->fd = fd;
    s->b = b;
    s->poll.data = s;
    curl_multi_assign(b->multi, fd, s);
  }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl must not be re-entered from here, so even a 0 ms
 * timeout goes through the loop. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  bench *b = (bench *)userp;
  (void)multi;
  if (timeout_ms < 0)
    uv_timer_stop(&b->timer);
  else
    uv_timer_start(&b->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

/* N connections at once need N descriptors; the soft limit is often 1024. */
static void raise_fd_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static char *make_body(size_t *len)
{
  static const char head[] = "{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"";
  static const char tail[] = "\"}]}";
  size_t n = sizeof head - 1 + PROMPT_CHARS + sizeof tail - 1;
  char *s = (char *)malloc(n + 1);
  if (s == NULL)
    die("out of memory");
  memcpy(s, head, sizeof head - 1);
  memset(s + sizeof head - 1, 'x', PROMPT_CHARS);
  memcpy(s + sizeof head - 1 + PROMPT_CHARS, tail, sizeof tail);   /* with its NUL */
  *len = n;
  return s;
}

static int parse_count(const char *s, int min)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < min || v > 10000000)
    die("counts must be whole numbers in range");
  return (int)v;
}

static double seconds_between(const struct timeval *a, const struct timeval *b)
{
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

static void usage(void)
{
  fputs("usage: curl_floor URL N [--concurrency C] [--latency-ms L] [--cacert FILE]\n", stderr);
  exit(2);
}

int main(int argc, char **argv)
{
  bench b;
  struct rusage ru0, ru;
  char scenario[64];
  int i, latency_ms = -1;

  memset(&b, 0, sizeof b);
  if (argc < 3)
    usage();
  b.url = argv[1];
  b.n = parse_count(argv[2], 1);
  for (i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
      b.concurrency = parse_count(argv[++i], 0);
    else if (strcmp(argv[i], "--latency-ms") == 0 && i + 1 < argc)
      latency_ms = parse_count(argv[++i], 0);
    else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc)
      b.cacert = argv[++i];
    else
      usage();
  }

  raise_fd_limit();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    die("curl_global_init failed");
  b.loop = uv_default_loop();
  b.body = make_body(&b.body_len);
  b.xfers = (transfer *)calloc((size_t)b.n, sizeof *b.xfers);
  b.multi = curl_multi_init();
  if (b.xfers == NULL || b.multi == NULL)
    die("out of memory");

  b.headers = curl_slist_append(b.headers, "Content-Type: application/json");
  b.headers = curl_slist_append(b.headers, "Expect:");   /* no 100-continue round trip */
  if (latency_ms >= 0) {
    snprintf(scenario, sizeof scenario, "X-Mock-Scenario: latency=%d", latency_ms);
    b.headers = curl_slist_append(b.headers, scenario);
  }
  if (b.headers == NULL)
    die("out of memory");

  uv_timer_init(b.loop, &b.timer);
  b.timer.data = &b;
  curl_multi_setopt(b.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(b.multi, CURLMOPT_SOCKETDATA, &b);
  curl_multi_setopt(b.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(b.multi, CURLMOPT_TIMERDATA, &b);
  /* 0 is libcurl's default; spelled out because a cap would make this a queue test */
  curl_multi_setopt(b.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  curl_multi_setopt(b.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  if (strncmp(b.url, "https://", 8) == 0) {
    b.share = curl_share_init();
    if (b.share == NULL)
      die("out of memory");
    curl_share_setopt(b.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(b.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
  }

  getrusage(RUSAGE_SELF, &ru0);   /* CPU counts from here: every contender reports the batch's */
  b.t_start = uv_hrtime();
  for (i = 0; i < b.n && (b.concurrency == 0 || i < b.concurrency); i++)
    transfer_start(&b, i);
  uv_run(b.loop, UV_RUN_DEFAULT);   /* check_done stops it after the last completion */
  if (b.done < b.n)
    die("the loop ran dry before every transfer finished");

  /* CPU and RSS are read here, with the batch over and its connections still open:
   * fanout.lua reads them at the same point, since tide closes its connections only
   * as the process ends, where a script cannot measure. */
  for (i = 0; i < b.n; i++)
    free(b.xfers[i].data);
  getrusage(RUSAGE_SELF, &ru);

  curl_multi_cleanup(b.multi);   /* closes cached connections: CURL_POLL_REMOVE per socket */
  if (b.share)                   /* every easy handle on it was cleaned up as it finished */
    curl_share_cleanup(b.share);
  uv_close((uv_handle_t *)&b.timer, NULL);
  uv_run(b.loop, UV_RUN_DEFAULT);
  curl_slist_free_all(b.headers);
  free(b.xfers);
  free(b.body);
  curl_global_cleanup();

  printf("{\"client\":\"c-floor\",\"n\":%d,\"ok\":%d,\"wall_s\":%.6f,"
         "\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,\"maxrss_kb\":%ld}\n",
         b.n, b.ok, (double)(b.t_end - b.t_start) / 1e9,
         seconds_between(&ru0.ru_utime, &ru.ru_utime), seconds_between(&ru0.ru_stime, &ru.ru_stime),
         ru.ru_maxrss);
  return b.ok == b.n ? 0 : 1;
}
