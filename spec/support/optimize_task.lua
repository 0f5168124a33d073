--- What the optimizer specs share: mockllm's prompt-dependent task (model
-- mock-task: the word reversed, right only when the prompt holds demos or says
-- "reverse"), its examples, its metric and a quiet evaluation.
local tide = require "tide"
local lm_server = require "support.lm_server"
local assert_clean = require "support.clean"

local M = {}

M.WORDS = {"apple", "stone", "river", "candle", "garden", "pepper", "silver", "window",
  "forest", "bottle", "planet", "rocket", "castle", "butter", "mirror", "carpet", "lemon",
  "tiger", "violin", "hammer", "pencil", "desert", "harbor", "meadow"}

--- Examples from..to of WORDS: {word, answer = the word reversed}, word the input.
function M.examples(from, to)
  local out = {}
  for i = from, to do
    out[#out + 1] = tide.Example{word = M.WORDS[i], answer = M.WORDS[i]:reverse()}:with_inputs("word")
  end
  return out
end

function M.metric(example, pred)
  return example.answer == pred.answer
end

--- A feedback metric, as GEPA takes: the score and what was wrong.
function M.feedback_metric(example, pred)
  if example.answer == pred.answer then return {score = 1, feedback = "Correct."} end
  return {score = 0, feedback = string.format("Wrong: the answer must be the letters of '%s' reversed, '%s'.",
    example.word, example.answer)}
end

function M.lm(server, opts)
  local o = {api_key = "sk-test-key", base_url = server.url .. "/v1"}
  for k, v in pairs(opts or {}) do o[k] = v end
  return tide.LM("openai/mock-task", o)
end

function M.score(program, devset)
  return tide.Evaluate{devset = devset, metric = M.metric, display_progress = false,
    display_table = false}(program).score
end

--- For a describe block, its hooks registered through busted's API: a mockllm with
-- a private disk cache (support.lm_server) as env.server and the task's LM on it
-- as env.lm, the server reset before each spec and nothing left behind after it,
-- all stopped at the end.
--
--   local env = task.env()
function M.env()
  local busted = require "busted"
  local env, started = {}, nil
  busted.setup(function()
    started = lm_server.start()
    env.server, env.lm = started.server, M.lm(started.server)
  end)
  busted.teardown(function() started:stop() end)
  busted.before_each(function() env.server:reset() end)
  busted.after_each(assert_clean)
  return env
end

return M
