/*
 * redis_reply.c — a Redis reply out of hiredis and into Lua.
 *
 * hiredis frees a reply as soon as its callback returns, and a callback may not
 * run Lua; so the callback copies the reply (redis_value_copy) and the task that
 * waited pushes the copy when it resumes (redis_value_push).
 *
 * In Lua: a bulk or status string is a string, an integer an integer, nil is nil
 * (false inside an array, where nil would end it), an array a table, and an
 * error reply an error object of kind "redis" whose `code` is its first word.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis.h"

static int value_fill(redis_value *v, const redisReply *r)
{
  size_t i;
  v->type = r->type;
  v->integer = r->integer;
  v->len = 0;
  v->str = NULL;
  v->element = NULL;
  if (r->type == REDIS_REPLY_ARRAY) {
    if (r->elements == 0)
      return 0;
    v->element = (redis_value *)calloc(r->elements, sizeof *v->element);
    if (v->element == NULL)
      return -1;
    for (i = 0; i < r->elements; i++) {
      v->len = i + 1;   /* what value_clear frees if the next one fails */
      if (value_fill(&v->element[i], r->element[i]) != 0)
        return -1;
    }
    return 0;
  }
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR) {
    v->str = (char *)malloc(r->len + 1);
    if (v->str == NULL)
      return -1;
    memcpy(v->str, r->str, r->len);
    v->str[r->len] = '\0';
    v->len = r->len;
  }
  return 0;
}

static void value_clear(redis_value *v)
{
  size_t i;
  if (v->type == REDIS_REPLY_ARRAY) {
    for (i = 0; v->element && i < v->len; i++)
      value_clear(&v->element[i]);
    free(v->element);
  } else {
    free(v->str);
  }
}

redis_value *redis_value_copy(const void *hiredis_reply)
{
  redis_value *v = (redis_value *)calloc(1, sizeof *v);
  if (v == NULL)
    return NULL;
  if (value_fill(v, (const redisReply *)hiredis_reply) != 0) {
    redis_value_free(v);
    return NULL;
  }
  return v;
}

void redis_value_free(redis_value *v)
{
  if (v) {
    value_clear(v);
    free(v);
  }
}

void redis_error_push(lua_State *L, const char *text, size_t len, const char *where)
{
  size_t code = 0;
  while (code < len && text[code] != ' ' && code < 32)
    code++;
  error_push(L, "redis", "redis %s answered an error: %s", where, text);
  lua_pushlstring(L, text, code);
  lua_setfield(L, -2, "code");
}

static void value_push(lua_State *L, const redis_value *v, const char *where, int nested)
{
  size_t i;
  luaL_checkstack(L, 3, "redis reply nested too deep");
  switch (v->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, v->str, v->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)v->integer);
    break;
  case REDIS_REPLY_ARRAY:
    lua_createtable(L, (int)v->len, 0);
    for (i = 0; i < v->len; i++) {
      value_push(L, &v->element[i], where, 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case REDIS_REPLY_ERROR:
    redis_error_push(L, v->str, v->len, where);
    break;
  default:   /* REDIS_REPLY_NIL */
    if (nested)
      lua_pushboolean(L, 0);
    else
      lua_pushnil(L);
  }
}

void redis_value_push(lua_State *L, const redis_value *v, const char *where)
{
  value_push(L, v, where, 0);
}
