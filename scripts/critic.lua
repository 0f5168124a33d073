-- A typed critic and a chain of thought: issue 4's example as a program.
--   scripts/with_mockllm build/tide scripts/critic.lua      (local mock server)
--   TIDE_MODEL=openai/gpt-4o-mini build/tide scripts/critic.lua   (a real provider)
local tide = require "tide"

local model = os.getenv("TIDE_MODEL")
local mock = os.getenv("MOCKLLM_URL")
local lm
if mock and not model then
  lm = tide.LM("openai/mock", {api_key = "mock", base_url = mock .. "/v1"})
else
  lm = tide.LM(model or "openai/gpt-4o-mini")
end
tide.configure{lm = lm}

local draft = "Our platform cuts onboarding time by 40% with automated checklists."
local Critic = tide.Signature("content, context -> score: int, feedback, approved: bool",
  "Evaluate content from a TECHNICAL accuracy perspective.")
local critic = tide.Predict(Critic)
local r = critic{content = draft, context = "B2B SaaS outreach"}
print("score + 1 =", r.score + 1, math.type(r.score))
print("feedback  =", r.feedback)
print("approved  =", r.approved)

local qa = tide.ChainOfThought("question -> answer: float")
local a = qa{question = "What is 2.5 * 4?"}
print("reasoning =", a.reasoning)
print("answer    =", a.answer, math.type(a.answer))
print(string.format("usage: %d tokens in %d calls", lm.usage.total, #lm.history))
