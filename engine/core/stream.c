/*
 * stream.c — tide.stream: a response body read piece by piece as it arrives.
 *
 *   local s <close> = tide.stream{url = ..., body = ...}   -- returns at the headers
 *   print(s.status, s.headers["content-type"])
 *   for chunk in s:chunks() do io.write(chunk) end         -- or s:read() until nil
 *
 * The transfer is the same as tide.request's; only the body goes to the reader
 * instead of one buffer.  When the reader falls more than STREAM_PENDING_MAX bytes
 * behind, curl pauses the transfer, so a fast server cannot fill memory.  Framing
 * (SSE events and the like) is the caller's: this file only moves bytes.
 */
#include <string.h>

#include "http.h"

/* The stream's own user value, after the transfer's (http.h). */
#define SLOT_META (TRANSFER_SLOTS + 1)   /* {status = , headers = } once they arrived */

static transfer *stream_check(lua_State *L, int idx)
{
  return (transfer *)luaL_checkudata(L, idx, STREAM_MT);
}

/* Arms the op for one more wait by the reader. */
static void stream_arm(tide_engine *E, transfer *x)
{
  op_init(&x->op, &transfer_class, E);
  x->reading = 1;
}

/* The opening frame: 1 opts, 2 the stream.  [-0, +1, v] the stream. */
static int stream_open_k(lua_State *L, int status, lua_KContext ctx)
{
  transfer *x = (transfer *)ctx;
  (void)status;
  if (x->result == CURLE_ABORTED_BY_CALLBACK)
    op_check(&x->op, L);
  if (!x->headers_done) {
    if (x->finished && x->result != CURLE_OK)
      return raise_transfer_error(L, 2, x);
    if (x->finished)   /* ended without a final response: say so as curl would */
      return error_raise(L, "protocol", "the server closed the stream before its headers");
  }
  if (x->status == 407 && transfer_has_proxy(L, 2))   /* the proxy's answer, not the server's */
    return raise_transfer_error(L, 2, x);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, x->status);
  lua_setfield(L, -2, "status");
  push_headers(L, &x->head);
  lua_setfield(L, -2, "headers");
  lua_setiuservalue(L, 2, SLOT_META);
  lua_settop(L, 2);
  return 1;
}

/* tide.stream{url, method, headers, body, timeout, connect_timeout, max_body, and
 *             tide.request's TLS and proxy options}
 *   → stream, once the response headers are in (s.status, s.headers)
 * max_body caps the whole body (default 64 MiB): a stream that never ends is an
 * error, not an OOM; use timeout to bound its time. */
static int stream_lopen(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  transfer *x;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  x = transfer_start(E, L, 1, "tide.stream", 1, 1);   /* 2: the stream */
  if (x->headers_done || x->finished)
    return stream_open_k(L, LUA_OK, (lua_KContext)x);
  stream_arm(E, x);
  return engine_await(E, L, &x->op, stream_open_k);
}

/* [-0, +1, v] the next piece: unread bytes, nil at the end, or raises. */
static int stream_take(lua_State *L, int sidx, transfer *x)
{
  if (x->body.len > 0) {
    lua_pushlstring(L, x->body.data, x->body.len);
    x->body.len = 0;
    if (x->paused && x->easy && x->active) {
      x->paused = 0;
      curl_easy_pause(x->easy, CURLPAUSE_CONT);   /* may deliver more right away */
    }
    return 1;
  }
  if (x->result != CURLE_OK)
    return raise_transfer_error(L, sidx, x);
  lua_pushnil(L);
  return 1;
}

/* The reading frame: 1 the stream.  [-0, +1, v] as stream_take. */
static int stream_read_k(lua_State *L, int status, lua_KContext ctx)
{
  transfer *x = (transfer *)ctx;
  (void)status;
  if (x->result == CURLE_ABORTED_BY_CALLBACK) {
    op_check(&x->op, L);
    return luaL_error(L, "stream:read: the stream is closed");
  }
  return stream_take(L, 1, x);
}

/* stream:read() → the bytes that arrived since the last read (waits for some),
 * or nil once the body is complete; raises the transport error if it broke. */
static int stream_lread(lua_State *L)
{
  tide_engine *E = engine_upvalue(L);
  transfer *x = stream_check(L, 1);
  lua_settop(L, 1);
  if (x->result == CURLE_ABORTED_BY_CALLBACK)
    return luaL_error(L, "stream:read: the stream is closed");
  if (x->body.len > 0 || x->finished)
    return stream_take(L, 1, x);
  engine_check_wait(E, L, "stream:read");
  stream_arm(E, x);
  return engine_await(E, L, &x->op, stream_read_k);
}

/* stream:chunks() → an iterator for a generic for */
static int stream_lchunks(lua_State *L)
{
  stream_check(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, stream_lread, 1);
  lua_pushvalue(L, 1);
  return 2;
}

/* stream:close() — aborts the transfer if it still runs (the server sees the
 * connection closed) and frees the buffers.  Also __close and __gc. */
static int stream_lclose(lua_State *L)
{
  transfer *x = stream_check(L, 1);
  if (!x->finished)
    transfer_detach(x->op.E, x);
  x->finished = 1;
  x->result = CURLE_ABORTED_BY_CALLBACK;   /* later reads say "closed" */
  if (x->reading) {                        /* a task waits in read: let it go */
    x->reading = 0;
    op_complete(&x->op);
  }
  transfer_release(x);
  return 0;
}

/* s.status, s.headers, and the methods.  [-0, +1, -], with up to four slots
 * meanwhile: the metadata, the key, the metatable, its method table. */
static int stream_lindex(lua_State *L)
{
  stream_check(L, 1);
  lua_getiuservalue(L, 1, SLOT_META);
  lua_pushvalue(L, 2);
  if (lua_istable(L, -2) && lua_rawget(L, -2) != LUA_TNIL)
    return 1;
  return engine_index_method(L);
}

static int stream_ltostring(lua_State *L)
{
  transfer *x = stream_check(L, 1);
  lua_pushfstring(L, "tide.stream (%d, %s): %p", x->status,
                  x->finished ? "finished" : "open", (void *)x);
  return 1;
}

void stream_open_lib(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"read", stream_lread},
    {"chunks", stream_lchunks},
    {"close", stream_lclose},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"stream", stream_lopen},
    {NULL, NULL}
  };
  if (engine_newclass_fields(L, STREAM_MT, methods, stream_lindex)) {
    lua_pushcfunction(L, transfer_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, stream_lclose);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, stream_ltostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  engine_setfuncs(L, funcs);
}
