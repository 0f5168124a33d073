-- An evaluation of the founding example: does the critic panel approve the drafts a
-- person approved?  Each draft goes to three critics in parallel (tide.critics: technical,
-- style, completeness); the panel approves when all three do; the metric is agreement
-- with the human label in the dataset.
--
--   scripts/with_mockllm build/tide eval scripts/eval_critics.lua \
--     --data scripts/data/drafts.jsonl --out /tmp/critics.jsonl
--   build/tide eval scripts/eval_critics.lua --model openai/gpt-4o-mini \
--     --data scripts/data/drafts.jsonl --out critics.csv --concurrency 32
--
-- Run it again and it resumes (or, with --overwrite, is answered from the cache).
local tide = require "tide"

local cli = ... or {}

-- The LM: the one `tide eval` configured (--model, TIDE_MODEL, or mockllm under
-- scripts/with_mockllm).
if not cli.lm then
  error("no model: pass --model provider/model, set TIDE_MODEL, or run under scripts/with_mockllm", 0)
end

-- A critic that fails fails the draft's row (the error is recorded), rather than
-- quietly not approving it: an evaluation should count what it could not judge.
local panel = tide.critics.panel{on_failure = "fail"}

local function program(inputs)
  return panel(inputs)
end

--- 1 when the panel's verdict matches the person's, else 0.
local function metric(example, prediction)
  return prediction.approved == example.approved
end

return {
  program = program,
  metric = metric,
  inputs = {"content", "context", "requirements"},
}
