/* apis.h: the APIs a provider route serves besides chat: OpenAI's Responses
   API (responses.c), embeddings (embeddings.c), Azure's deployments. */
#ifndef MOCKLLM_APIS_H
#define MOCKLLM_APIS_H

#include "reply.h"

/* route_of names the provider (and the error format); api_of, which of its
   APIs the path asks for. */
enum api { API_CHAT, API_RESPONSES, API_EMBEDDINGS, API_AZURE };
enum api api_of(const char *t, size_t n);

/* What an API answers: a JSON body, or the events of a stream. */
struct api_answer {
  int status;
  struct buf body;
  int stream;
  struct events ev;
};

/* responses.c: POST /v1/responses. root is the parsed body (an object or
   not), stream whether it asked for one; end says how a scripted stream
   fault ends it. A strict refusal or a bad request comes back as an OpenAI
   error body. */
void responses_answer(struct api_answer *a, const struct json *root, const struct scenario *sc,
                      int stream, enum stream_end end, unsigned long long id);

/* embeddings.c: OpenAI's POST /v1/embeddings (r == ROUTE_OPENAI) and Gemini's
   POST /v1beta/models/{model}:batchEmbedContents (model[0..mlen)). */
void embeddings_answer(struct api_answer *a, enum route r, const struct json *root,
                       const char *model, size_t mlen, int lenient);

/* strict.c: Azure's own refusals (the key's header, the api-version). */
int strict_azure(const struct request *rq, struct refusal *f);

#endif
