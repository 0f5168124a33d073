-- A typed critic and a chain of thought.
--   scripts/with_mockllm build/tide scripts/predict.lua                (local mock server)
--   TIDE_MODEL=openai/gpt-4o-mini build/tide scripts/predict.lua       (a real provider)
local tide = require "tide"
local script = require "tide.script"

local _, _, lm = script.setup(arg, "scripts/predict.lua")

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
