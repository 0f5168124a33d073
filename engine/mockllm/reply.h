/* reply.h: reading a provider request and writing provider-shaped bodies. */
#ifndef MOCKLLM_REPLY_H
#define MOCKLLM_REPLY_H

#include "buf.h"
#include "json.h"
#include "mockllm.h"

/* A tool call of the reply: the tool's name and its arguments as JSON text. */
struct tcall {
  char *name;
  size_t nlen;
  struct buf args;
  int malformed;              /* NAME!(ARGS) in a script: its arguments malformed */
};

/* One more choice (n, candidateCount): its text, finish and output tokens. */
struct choice {
  struct buf text;
  int f;                      /* enum finish */
  unsigned long long ctok;
};

struct prompt {
  struct buf all;             /* system + every message text, '\n'-joined */
  const char *last_user;      /* text of the last user message (points into doc) */
  size_t last_user_len;
  struct buf last_user_buf;   /* holds it when it had several parts */
  const char *model;
  size_t model_len;
  /* Not read from the request: how the answer writes its token counts
     (usage=). prompt_read leaves it USAGE_REAL; the caller may change it. */
  enum usage_mode usage;
  /* Set by reply_usage_init: input tokens read from a prompt cache (cached=),
     and whether the model's name says it thinks (reasoning tokens). */
  unsigned long long cached;
  int thinking;
  /* The stop sequence the reply was cut before (Anthropic names it), or NULL. */
  const char *stop_seq;
  size_t stop_len;
  enum route route;           /* the format it was read from */
  /* An Anthropic tool forced by tool_choice (a member of tools): the reply is
     its input, as a tool_use block. NULL: a text reply. */
  const struct json *tool;
  /* The tools the reply calls (tools.c); none: a text reply. */
  struct tcall *calls;
  int ncalls;
  /* answer_default's variant: 0 for the first choice, i for choice i (its
     strings say "#i+1", its numbers come from another hash). */
  int variant;
  /* Choices 1.. when the request asked for several (streamed by OpenAI only). */
  struct choice *more;
  int nmore;
};

/* Collect the prompt of an OpenAI/Anthropic/Gemini request body.
   Returns NULL, or a static message for a 400. */
const char *prompt_read(enum route r, const struct json *root, struct prompt *p);
void prompt_free(struct prompt *p);
/* How many times the model spoke in the request's conversation: its
   assistant (Gemini: model) messages, demos included. */
int prompt_model_turns(enum route r, const struct json *root);

/* ceil(bytes / 4), at least 1. */
unsigned long long token_count(size_t bytes);

/* How an answer ends: complete, cut by max tokens, refused by a safety
   filter (no text), or out of tokens before any text. */
enum finish { FINISH_STOP, FINISH_LENGTH, FINISH_BLOCKED, FINISH_NO_TEXT };

/* Success body for route r. *text_at receives the offset just inside the
   reply string's opening quote (fault=huge inserts its filler there), or 0
   when the body carries no text. */
void reply_ok(struct buf *b, enum route r, const struct prompt *p,
              unsigned long long id, const char *text, size_t n,
              unsigned long long ctok, enum finish f, size_t *text_at);

/* Error body in route r's shape; retry_after < 0 means none. */
void reply_error(struct buf *b, enum route r, int status, const char *msg,
                 long retry_after);
/* The same, with the message already a JSON string literal q[0..qn), quotes
   included (echo_key writes its own escapes). */
void reply_error_quoted(struct buf *b, enum route r, int status, const char *q, size_t qn,
                        long retry_after);
/* What a refusal sets in the route's error body beyond its message: OpenAI's
   type, param and code (all three as given, NULL written null), Anthropic's
   type (NULL: the status's), Gemini's details (the members of its array, as
   JSON text; NULL: none). */
struct error_extra {
  const char *type;
  const char *param;
  const char *code;
  const char *details;
};
void reply_error_extra(struct buf *b, enum route r, int status, const char *msg,
                       const struct error_extra *x);
/* The provider's 400 for a prompt longer than the context window. */
void reply_context_window(struct buf *b, enum route r);
/* error=insufficient_quota: the provider's answer when the account's credit
   or quota is spent (OpenAI 429 insufficient_quota, Anthropic 400
   billing_error, Gemini 429 RESOURCE_EXHAUSTED). Returns the status. */
int reply_quota(struct buf *b, enum route r);
/* 404 for a path no provider has, worded as OpenAI words it. */
void reply_no_route(struct buf *b, enum route r, const char *method, size_t mlen,
                    const char *path, size_t n);

/* Shared with sse.c. */
void reply_put_model(struct buf *b, const struct prompt *p);
const char *reply_finish_name(enum route r, enum finish f);
/* OpenAI's system_fingerprint, in every completion and chunk. */
#define OPENAI_FINGERPRINT "fp_mock0001"
void reply_usage_init(struct prompt *p, enum route r, unsigned long long cached);
/* The reasoning (thinking) tokens spent on an answer of ctok tokens: 0 unless
   the model thinks. */
unsigned long long reply_thoughts(const struct prompt *p, unsigned long long ctok);
void reply_gemini_usage(struct buf *b, const struct prompt *p, unsigned long long ptok,
                        unsigned long long ctok);
/* What ends a Gemini response object: its modelVersion, its responseId, '}'. */
void reply_gemini_end(struct buf *b, const struct prompt *p, unsigned long long id);
void reply_openai_usage(struct buf *b, const struct prompt *p, unsigned long long ptok,
                        unsigned long long ctok);
/* A forced tool's name, as a JSON string. */
void put_tool_name(struct buf *b, const struct prompt *p);
/* "stop_reason":...,"stop_sequence":... for finish f, naming p->stop_seq. */
void reply_anthropic_stop(struct buf *b, const struct prompt *p, enum finish f);
void reply_anthropic_usage(struct buf *b, const struct prompt *p, unsigned long long ctok,
                           int final);
/* A token count v, or the absurd value usage= asks for instead. */
void reply_put_count(struct buf *b, enum usage_mode m, unsigned long long v);

/* sse.c: a streamed answer, as the provider's sequence of events. */
struct events {
  struct buf data;            /* the events, back to back */
  size_t *end;                /* event i is data[end[i-1] .. end[i]) */
  size_t n, cap;
};

enum stream_end {
  STREAM_END_NORMAL,
  STREAM_END_ERROR,           /* the provider's error event after two text deltas */
  STREAM_END_CUT,             /* nothing after two text deltas: the caller drops */
  STREAM_END_CLEAN            /* nothing after the first text delta, yet the body
                                 ends as if complete (a Gemini array is closed) */
};

struct stream_opts {
  int include_usage;          /* OpenAI stream_options.include_usage */
  int json_array;             /* Gemini without alt=sse: one streamed JSON array */
  enum stream_end end;
};

/* Walks a text piece by piece, the deltas of a stream: a handful, cut between
   words, never inside a UTF-8 character. pieces_next returns 0 when there is
   none left, or when o's scripted fault stops the stream after its second
   delta (its first for a clean cut), which then comes before the finish,
   even when the text is all out. */
struct pieces {
  const char *text;
  size_t n, at, target;
  int sent;
  const struct stream_opts *o;
};
void pieces_init(struct pieces *ps, const char *text, size_t n, const struct stream_opts *o);
int pieces_next(struct pieces *ps, const char **p, size_t *len);

void sse_reply(struct events *ev, enum route r, const struct prompt *p,
               unsigned long long id, const char *text, size_t n,
               unsigned long long ctok, enum finish f, const struct stream_opts *o);
void events_free(struct events *ev);
/* The event written since the previous mark ends here. */
void events_mark(struct events *ev);
/* Rewrites the line endings of the events' framing (LF or CR LF) as eol. */
void events_set_eol(struct events *ev, const char *eol);

/* strict.c: what the real APIs refuse. A refusal's status (0: none), message
   and the extra fields of its error body. */
struct refusal {
  int status;
  char msg[400];
  char param[96];            /* e.g. messages[12].content[3].input_audio.format */
  struct error_extra x;
};
/* The credential: none, or a scenario's invalid_key=1. Returns 1 with *f set. */
int strict_auth(enum route r, const struct request *rq, int invalid_key, struct refusal *f);
/* The body (a parsed JSON root) and, for Anthropic, its version header;
   azure: the request came by Azure's deployment route; model[0..mlen):
   Gemini's, from the path (NULL: none). */
int strict_body(enum route r, int azure, const struct request *rq, const struct json *root,
                const char *model, size_t mlen, struct refusal *f);

/* params.c: the parameters honoured. */
struct params {
  unsigned long long max_tokens;  /* 0: no limit */
  const struct json *stops;       /* stop / stop_sequences / stopSequences */
  int n;                          /* choices or candidates, 1..16 */
};
void params_read(enum route r, const struct json *root, struct params *pa);
const struct json *params_stop(const struct params *pa, struct buf *text);
int params_cut(const struct params *pa, struct buf *text);

/* answer.c: the deterministic default reply text. */
void answer_default(struct buf *out, struct prompt *p, const struct json *root);

/* schema.c: structured outputs. The schema a request pins its reply to, or
   NULL; *tool is the Anthropic tool that tool_choice forces (its input_schema
   is the schema), else NULL. */
const struct json *schema_of(enum route r, const struct json *root, const struct json **tool);
/* A JSON value valid against schema (an object node of the request). */
void schema_answer(struct buf *out, const struct json *schema, const struct prompt *p);
/* A DSPy output field whose schema holds a record (pydantic's model): a value
   valid against it, from the request's structured output or else from the
   prompt's "# note: ... must adhere to the JSON schema: {...}"; 0 (nothing
   written) for other fields. root is the request. */
int schema_field_answer(struct buf *out, const struct prompt *p, const struct json *root,
                        const char *name, size_t nlen);

/* tools.c: tool calls. Fills p->calls as the request's tools, its
   tool_choice and the scenario (tool_calls=, tool_args=) ask; returns how
   many. */
int tools_plan(enum route r, const struct json *root, const struct scenario *sc,
               struct prompt *p);
/* Parses a tool_calls= script s[0..n) (URL-decoded) into p's calls (p may be
   NULL: only checked). Returns 0, or -1 with err set. */
int tools_script(const char *s, size_t n, struct prompt *p, char *err, size_t errlen);
/* Checks a tool_turns= script: tool_calls= scripts separated by '|'. */
int tools_turns_check(const char *s, size_t n, char *err, size_t errlen);
/* react.c: a DSPy ReAct step's answer (the prompt asks for next_tool_name) as
   the react= script says for the step the trajectory has reached; returns 1
   when it wrote one, 0 for another prompt. */
int react_answer(struct buf *out, const struct prompt *p, const struct scenario *sc);
/* Checks a react= script: NAME(ARGS) steps separated by '|'. */
int react_check(const char *s, size_t n, char *err, size_t errlen);
/* Adds a call of the tool name[0..n) to p, its arguments valid against
   schema (an object node of the request; else none: {}). */
void tools_add_call(struct prompt *p, const char *name, size_t n, const struct json *schema);
unsigned long long tools_tokens(const struct prompt *p);
void tools_free(struct prompt *p);
/* The non-streamed answer that makes p's calls. */
void tools_reply(struct buf *b, enum route r, const struct prompt *p, unsigned long long id,
                 unsigned long long ctok);
/* Gemini's functionCall parts, comma-separated. */
void tools_gemini_parts(struct buf *b, const struct prompt *p);

#endif
