/*
 * http.h — what http.c (the curl/uv integration, tide.request) shares with
 * stream.c (tide.stream): the transfer, the buffers its callbacks fill, and the
 * helpers that turn it into Lua values and errors.
 */
#ifndef TIDE_HTTP_H
#define TIDE_HTTP_H

#include "engine.h"

#define TRANSFER_MT "tide.transfer"
#define STREAM_MT "tide.stream"

typedef struct buffer {
  char *data;
  size_t len, cap, max;
} buffer;

typedef struct transfer {
  op op;
  CURL *easy;
  struct curl_slist *headers;
  buffer body;             /* the whole body, or a stream's unread bytes */
  buffer head;             /* the final response's raw header block */
  int status;              /* from the status line */
  int active;              /* added to the multi handle */
  int finished;            /* curl is done with it (result says how) */
  int headers_done;
  int too_large;
  int streaming;
  int reading;             /* a stream's reader waits on op */
  int paused;              /* a stream's writes are paused until the reader catches up */
  size_t received, max_total;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
  struct transfer *prev, *next;   /* E->transfers_live, while it holds an easy handle */
} transfer;

extern const op_class transfer_class;

transfer *transfer_start(tide_engine *E, lua_State *L, const char *fname, int streaming, int nuv);
void transfer_detach(tide_engine *E, transfer *x);
void transfer_release(transfer *x);
int transfer_gc(lua_State *L);
void push_headers(lua_State *L, const buffer *head);
int raise_transfer_error(lua_State *L, transfer *x, const char *method, const char *url);

#endif
