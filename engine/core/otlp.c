/*
 * otlp.c — OpenTelemetry's OTLP/HTTP JSON (ExportTraceServiceRequest in the
 * protobuf JSON mapping: ids as hex, 64-bit integers and nanosecond times as
 * decimal strings, attributes as {key, value = {stringValue | intValue |
 * doubleValue | boolValue | arrayValue}}):
 *
 *   core.otlp_span(span)                       → one span's JSON text
 *   core.otlp_body(texts, resource, version)   → an export request of those texts
 *
 * Written in C because the text is most of what tracing costs a program: built
 * in Lua, each span was dozens of short strings (quoted values, formatted
 * numbers, pieces to join) and their garbage; here it is one growing buffer.  A
 * span is written as it ends, so the exporter's queue holds strings, which the
 * collector never walks, rather than tables of attributes.
 *
 * A span is tide.trace.spans' table: [1] trace id, [2] span id, [3] parent span
 * id or false, [4] name, [5] kind, [6] start and [7] end (seconds since the
 * epoch), [8] status code or false, [9] status message; its attributes under
 * their (string) names.  A value that is not a string, boolean, number or list
 * is written as the text tostring gives it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

#define FIRST_CAPACITY 4096
#define MAX_LIST_DEPTH 8   /* lists inside lists deeper than this are written as text */

/* The text being written: a userdata at a fixed stack slot, replaced by a bigger
 * one as it grows, so that an error on the way (a __tostring that raises, memory)
 * leaves nothing to free by hand. */
typedef struct out {
  lua_State *L;
  int slot;
  char *p;
  size_t len, cap;
} out;

static void reserve(out *o, size_t more)
{
  size_t cap;
  char *p;
  if (more <= o->cap - o->len)
    return;
  if (more > ((size_t)-1) / 4 - o->len)
    luaL_error(o->L, "otlp_body: the batch is too large");
  cap = o->cap ? o->cap : FIRST_CAPACITY;
  while (cap - o->len < more)
    cap *= 2;
  p = (char *)lua_newuserdatauv(o->L, cap, 0);
  if (o->len)
    memcpy(p, o->p, o->len);
  lua_replace(o->L, o->slot);
  o->p = p;
  o->cap = cap;
}

static void put(out *o, const char *s, size_t n)
{
  reserve(o, n);
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

#define PUT_LITERAL(o, s) put((o), "" s, sizeof(s) - 1)

/* s as a JSON string literal: the quote, the backslash and control characters
 * escaped; other bytes (UTF-8 included) as they are.  Room for every byte as it is
 * and the quotes is made first; an escape makes room for itself and the rest. */
static void put_string(out *o, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;
  reserve(o, n + 2);
  o->p[o->len++] = '"';
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      o->p[o->len++] = (char)c;
      continue;
    }
    reserve(o, 6 + (n - i) + 1);
    o->p[o->len++] = '\\';
    switch (c) {
    case '"': o->p[o->len++] = '"'; break;
    case '\\': o->p[o->len++] = '\\'; break;
    case '\n': o->p[o->len++] = 'n'; break;
    case '\r': o->p[o->len++] = 'r'; break;
    case '\t': o->p[o->len++] = 't'; break;
    case '\b': o->p[o->len++] = 'b'; break;
    case '\f': o->p[o->len++] = 'f'; break;
    default:
      o->p[o->len++] = 'u';
      o->p[o->len++] = '0';
      o->p[o->len++] = '0';
      o->p[o->len++] = hex[c >> 4];
      o->p[o->len++] = hex[c & 15];
    }
  }
  o->p[o->len++] = '"';
}

/* [-0, +0, e] the value at idx (absolute) as its text: tostring's. */
static void put_tostring(out *o, int idx)
{
  size_t n;
  const char *s = luaL_tolstring(o->L, idx, &n);
  put_string(o, s, n);
  lua_pop(o->L, 1);
}

static void put_integer(out *o, lua_Integer v)
{
  char buf[32];
  int n = snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)v);
  put(o, buf, (size_t)n);
}

/* [-0, +0, e] the AnyValue of the value at idx (absolute). */
static void put_value(out *o, int idx, int depth)
{
  lua_State *L = o->L;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    PUT_LITERAL(o, "{\"stringValue\":");
    put_string(o, s, n);
    PUT_LITERAL(o, "}");
    return;
  }
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx))
      PUT_LITERAL(o, "{\"boolValue\":true}");
    else
      PUT_LITERAL(o, "{\"boolValue\":false}");
    return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      PUT_LITERAL(o, "{\"intValue\":\"");
      put_integer(o, lua_tointeger(L, idx));
      PUT_LITERAL(o, "\"}");
    } else {
      lua_Number v = lua_tonumber(L, idx);
      if (isfinite(v)) {
        char buf[40];
        int n = snprintf(buf, sizeof buf, "%.17g", (double)v);
        PUT_LITERAL(o, "{\"doubleValue\":");
        put(o, buf, (size_t)n);
        PUT_LITERAL(o, "}");
      } else {   /* JSON has no NaN nor infinity: their text, as a string */
        PUT_LITERAL(o, "{\"stringValue\":");
        put_tostring(o, idx);
        PUT_LITERAL(o, "}");
      }
    }
    return;
  case LUA_TTABLE:
    if (depth < MAX_LIST_DEPTH) {
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
      PUT_LITERAL(o, "{\"arrayValue\":{\"values\":[");
      for (i = 1; i <= n; i++) {
        if (i > 1)
          PUT_LITERAL(o, ",");
        lua_rawgeti(L, idx, i);
        put_value(o, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
      }
      PUT_LITERAL(o, "]}}");
      return;
    }
    break;
  default:
    break;
  }
  PUT_LITERAL(o, "{\"stringValue\":");
  put_tostring(o, idx);
  PUT_LITERAL(o, "}");
}

/* [-0, +0, e] the attribute list of the table at idx (absolute): its string keys. */
static void put_attributes(out *o, int idx)
{
  lua_State *L = o->L;
  int first = 1;
  PUT_LITERAL(o, "[");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t n;
      const char *key = lua_tolstring(L, -2, &n);
      if (!first)
        PUT_LITERAL(o, ",");
      first = 0;
      PUT_LITERAL(o, "{\"key\":");
      put_string(o, key, n);
      PUT_LITERAL(o, ",\"value\":");
      put_value(o, lua_gettop(L), 0);
      PUT_LITERAL(o, "}");
    }
    lua_pop(L, 1);
  }
  PUT_LITERAL(o, "]");
}

/* [-0, +0, e] field i of the span at idx as a JSON string (tostring's text). */
static void put_field_string(out *o, int idx, int i)
{
  lua_rawgeti(o->L, idx, i);
  put_tostring(o, lua_gettop(o->L));
  lua_pop(o->L, 1);
}

/* Seconds since the epoch → nanoseconds, as decimal text (0 for what is no time). */
static void put_nanos(out *o, int idx, int i)
{
  lua_Number t;
  double ns;
  lua_rawgeti(o->L, idx, i);
  t = lua_tonumber(o->L, -1);
  lua_pop(o->L, 1);
  ns = floor((double)t * 1e9);
  PUT_LITERAL(o, "\"");
  put_integer(o, (ns >= 0 && ns < 9.2e18) ? (lua_Integer)ns : 0);
  PUT_LITERAL(o, "\"");
}

/* [-0, +0, e] one span (the table at idx, absolute). */
static void put_span(out *o, int idx)
{
  lua_State *L = o->L;
  PUT_LITERAL(o, "{\"traceId\":");
  put_field_string(o, idx, 1);
  PUT_LITERAL(o, ",\"spanId\":");
  put_field_string(o, idx, 2);
  if (lua_rawgeti(L, idx, 3) == LUA_TSTRING) {
    PUT_LITERAL(o, ",\"parentSpanId\":");
    put_tostring(o, lua_gettop(L));
  }
  lua_pop(L, 1);
  PUT_LITERAL(o, ",\"name\":");
  put_field_string(o, idx, 4);
  PUT_LITERAL(o, ",\"kind\":");
  lua_rawgeti(L, idx, 5);
  put_integer(o, lua_tointeger(L, -1));
  lua_pop(L, 1);
  PUT_LITERAL(o, ",\"startTimeUnixNano\":");
  put_nanos(o, idx, 6);
  PUT_LITERAL(o, ",\"endTimeUnixNano\":");
  put_nanos(o, idx, 7);
  PUT_LITERAL(o, ",\"attributes\":");
  put_attributes(o, idx);
  if (lua_rawgeti(L, idx, 8) == LUA_TNUMBER) {
    PUT_LITERAL(o, ",\"status\":{\"code\":");
    put_integer(o, lua_tointeger(L, -1));
    PUT_LITERAL(o, ",\"message\":");
    if (lua_rawgeti(L, idx, 9) == LUA_TSTRING)
      put_tostring(o, lua_gettop(L));
    else
      PUT_LITERAL(o, "\"\"");
    lua_pop(L, 1);
    PUT_LITERAL(o, "}");
  }
  lua_pop(L, 1);
  PUT_LITERAL(o, "}");
}

/* An empty text whose buffer will live at stack slot `slot` (holding nil now). */
static void begin(out *o, lua_State *L, int slot)
{
  o->L = L;
  o->slot = slot;
  o->p = NULL;
  o->len = o->cap = 0;
}

/* core.otlp_span(span) → the span's JSON text. */
static int otlp_lspan(lua_State *L)
{
  out o;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushnil(L);   /* the buffer's slot */
  begin(&o, L, 2);
  put_span(&o, 1);
  lua_pushlstring(L, o.p, o.len);
  return 1;
}

/* core.otlp_body(texts, resource, version) → the export request: the resource's
 * attributes, tide's scope, and the spans' texts (otlp_span's) joined. */
static int otlp_lbody(lua_State *L)
{
  out o;
  size_t vlen;
  const char *version;
  lua_Integer i, n;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  version = luaL_checklstring(L, 3, &vlen);
  lua_settop(L, 3);
  lua_pushnil(L);   /* the buffer's slot */
  begin(&o, L, 4);
  PUT_LITERAL(&o, "{\"resourceSpans\":[{\"resource\":{\"attributes\":");
  put_attributes(&o, 2);
  PUT_LITERAL(&o, "},\"scopeSpans\":[{\"scope\":{\"name\":\"tide\",\"version\":");
  put_string(&o, version, vlen);
  PUT_LITERAL(&o, "},\"spans\":[");
  n = (lua_Integer)lua_rawlen(L, 1);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *text;
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
      luaL_error(L, "otlp_body: span %d is a %s, not a span's text", (int)i, luaL_typename(L, -1));
    text = lua_tolstring(L, -1, &len);
    if (i > 1)
      PUT_LITERAL(&o, ",");
    put(&o, text, len);
    lua_pop(L, 1);
  }
  PUT_LITERAL(&o, "]}]}]}");
  lua_pushlstring(L, o.p, o.len);
  return 1;
}

void otlp_open_lib(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"otlp_span", otlp_lspan},
    {"otlp_body", otlp_lbody},
    {NULL, NULL}
  };
  engine_setfuncs(L, funcs);
}
