/* route.c: which provider API a request target names, and its query string.
   Pure functions of the target bytes, shared by respond.c and the fuzzer. */
#include "mockllm.h"
#include "apis.h"

#include <string.h>

/* Length of the path in target t[0..n), without its query string. */
size_t path_len(const char *t, size_t n)
{
  const char *q = memchr(t, '?', n);
  return q ? (size_t)(q - t) : n;
}

/* The next name=value (or bare name) of the query string after *at, which
   starts at the '?': 1 and its bytes p[0..len), or 0 at the end. */
static int next_param(const char *t, size_t n, size_t *at, const char **p, size_t *len)
{
  const char *amp;
  if (*at >= n)
    return 0;
  *p = t + *at + 1;
  amp = memchr(*p, '&', (size_t)(t + n - *p));
  *len = amp ? (size_t)(amp - *p) : (size_t)(t + n - *p);
  *at = (size_t)(*p + *len - t);
  return 1;
}

/* Non-zero when the query string of t[0..n) has name=..., and that value is
   `want` (or anything, for want == NULL). */
int query_has(const char *t, size_t n, const char *name, const char *want)
{
  size_t at = path_len(t, n), k = strlen(name), len;
  const char *p;
  while (next_param(t, n, &at, &p, &len))
    if (len > k && p[k] == '=' && memcmp(p, name, k) == 0 &&
        (want == NULL || (len - k - 1 == strlen(want) && memcmp(p + k + 1, want, len - k - 1) == 0)))
      return 1;
  return 0;
}

int query_value(const char *t, size_t n, const char *name, const char **v, size_t *vn)
{
  size_t at = path_len(t, n), k = strlen(name), len;
  const char *p;
  while (next_param(t, n, &at, &p, &len))
    if (len > k + 1 && p[k] == '=' && memcmp(p, name, k) == 0) {
      *v = p + k + 1;
      *vn = len - k - 1;
      return 1;
    }
  return 0;
}

static int ends_with(const char *t, size_t n, const char *suffix)
{
  size_t k = strlen(suffix);
  return n >= k && memcmp(t + n - k, suffix, k) == 0;
}

#define AZURE_PREFIX "/openai/deployments/"
#define AZURE_SUFFIX "/chat/completions"

/* Azure's /openai/deployments/{deployment}/chat/completions: 1 and the
   deployment's name in *model, or 0. */
static int azure_deployment(const char *t, size_t n, const char **model, size_t *mlen)
{
  size_t pre = sizeof AZURE_PREFIX - 1, suf = sizeof AZURE_SUFFIX - 1;
  if (n <= pre + suf || memcmp(t, AZURE_PREFIX, pre) != 0 || !ends_with(t, n, AZURE_SUFFIX))
    return 0;
  if (memchr(t + pre, '/', n - pre - suf) != NULL)
    return 0;  /* one path segment */
  *model = t + pre;
  *mlen = n - pre - suf;
  return 1;
}

enum api api_of(const char *t, size_t n)
{
  const char *m;
  size_t k;
  n = path_len(t, n);
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(t, lit, n) == 0)
  if (IS("/v1/responses") || IS("/responses"))
    return API_RESPONSES;
  if (IS("/v1/embeddings") || IS("/embeddings") || ends_with(t, n, ":batchEmbedContents"))
    return API_EMBEDDINGS;
#undef IS
  if (azure_deployment(t, n, &m, &k))
    return API_AZURE;
  return API_CHAT;
}

/* Route from the path; *shape is the error format for it, which for unknown
   paths follows the API prefix so a misrouted client can still parse it.
   *gstream is set for Gemini's streamGenerateContent. */
enum route route_of(const char *t, size_t n, enum route *shape,
                    const char **model, size_t *mlen, int *gstream)
{
  const char *m;
  size_t k;
  n = path_len(t, n);
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(t, lit, n) == 0)
  *shape = ROUTE_OPENAI;
  if (IS("/v1/chat/completions") || IS("/chat/completions"))
    return *shape = ROUTE_OPENAI;
  if (IS("/v1/responses") || IS("/responses") || IS("/v1/embeddings") || IS("/embeddings"))
    return *shape = ROUTE_OPENAI;  /* answered by responses.c, embeddings.c: see api_of */
  if (IS("/v1/messages"))
    return *shape = ROUTE_ANTHROPIC;
  if (IS("/health"))
    return ROUTE_HEALTH;
  if (IS("/__stats"))
    return ROUTE_STATS;
  if (IS("/__reset"))
    return ROUTE_RESET;
  if (IS("/__log"))
    return ROUTE_LOG;
#undef IS
  if (azure_deployment(t, n, model, mlen))
    return *shape = ROUTE_OPENAI;
  if (n > 7 && memcmp(t, "/v1beta", 7) == 0)
    *shape = ROUTE_GEMINI;
  if (n > 8 && memcmp(t, "/v1beta/", 8) == 0)
    m = t + 8;
  else if (n > 4 && memcmp(t, "/v1/", 4) == 0)
    m = t + 4;
  else
    return ROUTE_OTHER;
  *gstream = ends_with(t, n, ":streamGenerateContent");
  k = *gstream ? sizeof ":streamGenerateContent" - 1
      : ends_with(t, n, ":batchEmbedContents") ? sizeof ":batchEmbedContents" - 1
      : sizeof ":generateContent" - 1;
  if ((size_t)(t + n - m) > 7 + k && memcmp(m, "models/", 7) == 0 &&
      (*gstream || ends_with(t, n, ":generateContent") || ends_with(t, n, ":batchEmbedContents"))) {
    *model = m + 7;
    *mlen = (size_t)(t + n - k - *model);
    return *shape = ROUTE_GEMINI;
  }
  *gstream = 0;
  return ROUTE_OTHER;
}
