/* prompt_task.h: the model `mock-task`, whose answers are right only when the
   prompt teaches the task (prompt_task.c). */
#ifndef MOCKLLM_PROMPT_TASK_H
#define MOCKLLM_PROMPT_TASK_H

#include "buf.h"
#include "json.h"
#include "reply.h"

/* Writes the reply to a ChatAdapter prompt sent to a model named mock-task...
   and returns 1; returns 0 (nothing written) for any other request. */
int task_answer(struct buf *out, const struct prompt *p, const struct json *root);

#endif
