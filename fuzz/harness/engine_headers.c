/* engine_headers: the one parser in tide's engine that reads network bytes
   itself. libcurl frames the response; push_headers
   (engine/core/http_request.c) turns the raw header block it collected into
   the Lua table that providers read Retry-After, content-type and the
   rate-limit headers from.

   Properties: exactly one value (a table) is pushed; every key is a non-empty
   lower-case name without ':' or a line break, under 256 bytes; every value is
   a string without '\n'.  (Not a property: values without trailing blanks. A
   repeated header with an empty value joins as "a, " — see fuzz/RESULTS.md.) */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "http.h"

static void check_table(lua_State *L)
{
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t kn, vn, i;
    const char *k, *v;
    CHECK(lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING);
    k = lua_tolstring(L, -2, &kn);
    v = lua_tolstring(L, -1, &vn);
    CHECK(kn > 0 && kn < 256);
    for (i = 0; i < kn; i++)
      CHECK(k[i] != ':' && k[i] != '\n' && !isupper((unsigned char)k[i]));
    CHECK(memchr(v, '\n', vn) == NULL);
    lua_pop(L, 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  lua_State *L = luaL_newstate();
  buffer head;
  CHECK(L != NULL);
  memset(&head, 0, sizeof head);
  /* a private copy, as large as the input: ASan then sees any read past it */
  /* (never NULL: push_headers is only called once a header line is in; see
     fuzz/RESULTS.md, finding F1, for the NULL case) */
  head.data = malloc(size ? size : 1);
  if (size)
    memcpy(head.data, data, size);
  head.len = head.cap = head.max = size;
  push_headers(L, &head);
  CHECK(lua_gettop(L) == 1 && lua_istable(L, 1));
  check_table(L);
  free(head.data);
  lua_close(L);
  return 0;
}
