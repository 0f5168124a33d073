--- tide.metrics: DSPy's answer metrics, for tide.Evaluate and the optimizers.
--
--   local m = tide.metrics
--   m.exact_match(example, pred)          --> true when pred.answer matches example.answer
--   m.f1(example, pred)                   --> token F1 of pred.answer against example.answer
--   m.passage_match(example, pred)        --> whether a passage of pred.context holds the answer
--   m.normalize_text("The Eiffel-Tower!") --> "eiffeltower"
--
-- As DSPy's answer_exact_match and answer_passage_match, a metric takes (example,
-- pred, trace) and reads the `answer` field; an example's answer may be a list of
-- accepted answers (the best counts).  Plain strings work too: exact_match("Paris",
-- "paris.") is true.  A metric of one's own may return a number, a boolean or
-- {score = ..., feedback = "..."}: tide.Evaluate accepts all three.
--
-- normalize_text is DSPy's: lower case, no punctuation, no articles (a, an, the),
-- single spaces.  Lua's string functions know ASCII only: letters outside it are
-- kept as they are (DSPy lower-cases them and decomposes accents, NFD).
local check = require "tide.check"

local M = {}

-- a word's characters: letters, digits, underscore, and any byte of a UTF-8 letter
local WORD = "%w_\128-\255"
local ARTICLES = {}
for i, a in ipairs{"a", "an", "the"} do ARTICLES[i] = "%f[" .. WORD .. "]" .. a .. "%f[^" .. WORD .. "]" end

--- normalize_text(s) → s lower-cased, without punctuation or articles, spaces single.
function M.normalize_text(s)
  check.type("normalize_text", 1, s, "string")
  s = s:lower():gsub("%p", "")
  for _, article in ipairs(ARTICLES) do s = s:gsub(article, " ") end
  local words = {}
  for w in s:gmatch("%S+") do words[#words + 1] = w end
  return table.concat(words, " ")
end

local function tokens(s)
  local out = {}
  for w in M.normalize_text(s):gmatch("%S+") do out[#out + 1] = w end
  return out
end

--- em_score(prediction, answer) → whether they are equal once normalized.
function M.em_score(prediction, answer)
  return M.normalize_text(prediction) == M.normalize_text(answer)
end

--- f1_score(prediction, answer) → the harmonic mean of token precision and recall
-- (tokens counted with their multiplicity, as SQuAD's and DSPy's F1).
function M.f1_score(prediction, answer)
  local p, a = tokens(prediction), tokens(answer)
  if #p == 0 and #a == 0 then
    -- both empty once normalized (only articles or punctuation): DSPy compares the texts
    return prediction == answer and 1 or 0
  end
  local counts = {}
  for _, w in ipairs(a) do counts[w] = (counts[w] or 0) + 1 end
  local same = 0
  for _, w in ipairs(p) do
    if (counts[w] or 0) > 0 then
      counts[w] = counts[w] - 1
      same = same + 1
    end
  end
  if same == 0 then return 0 end
  local precision, recall = same / #p, same / #a
  return 2 * precision * recall / (precision + recall)
end

--- The text of a field's value: strings as they are, numbers and booleans as text.
local function text(v, what)
  if type(v) == "string" then return v end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  check.misuse(string.format("tide.metrics: %s must be a string, got %s", what, type(v)))
end

--- The accepted answers of an example (its `answer`, one or a list) and the
-- prediction's answer; plain strings stand for themselves.
local function answers_of(example, pred, fname)
  local gold = example
  if type(example) == "table" then gold = example.answer end
  if gold == nil then check.fail(fname, 1, "an example with an `answer` field expected") end
  local list = {}
  if type(gold) == "table" then
    for i, g in ipairs(gold) do list[i] = text(g, "an answer") end
  else
    list[1] = text(gold, "the example's answer")
  end
  if #list == 0 then check.fail(fname, 1, "the example's answer list is empty") end
  local got = pred
  if type(pred) == "table" then got = pred.answer end
  if got == nil then check.fail(fname, 2, "a prediction with an `answer` field expected") end
  return list, text(got, "the prediction's answer")
end

local function best(list, fn, got)
  local top = 0
  for _, g in ipairs(list) do
    local s = fn(got, g)
    if s == true then return 1 end
    if type(s) == "number" and s > top then top = s end
  end
  return top
end

--- exact_match(example, pred [, trace [, frac]]) → whether pred's answer equals one of
-- the example's, normalized; with frac < 1 (DSPy's), whether its F1 reaches frac.
local FRACTION = {min = 0, max = 1}

function M.exact_match(example, pred, _trace, frac)
  check.number("exact_match", 4, frac, FRACTION, true)
  local list, got = answers_of(example, pred, "exact_match")
  if frac ~= nil and frac < 1 then return best(list, M.f1_score, got) >= frac end
  return best(list, M.em_score, got) == 1
end

--- f1(example, pred [, trace]) → the best token F1 of pred's answer against the example's.
function M.f1(example, pred)
  local list, got = answers_of(example, pred, "f1")
  return best(list, M.f1_score, got)
end

--- contains(passage, answer) → whether the answer's words appear, in order and
-- together, among the passage's (both normalized): "Paris" is in "It is Paris,
-- France." but not in "Parisian".
function M.contains(passage, answer)
  local p, a = tokens(text(passage, "the passage")), tokens(text(answer, "the answer"))
  if #a == 0 then return false end
  for i = 1, #p - #a + 1 do
    local all = true
    for j = 1, #a do
      if p[i + j - 1] ~= a[j] then all = false break end
    end
    if all then return true end
  end
  return false
end

--- passage_match(example, pred [, trace]) → whether some passage of pred.context (a
-- list, or one text) contains one of the example's answers (DSPy's answer_passage_match).
function M.passage_match(example, pred)
  if type(pred) ~= "table" or pred.context == nil then
    check.fail("passage_match", 2, "a prediction with a `context` field expected")
  end
  local list = answers_of(example, {answer = ""}, "passage_match")
  local passages = pred.context
  if type(passages) ~= "table" then passages = {passages} end
  for _, psg in ipairs(passages) do
    for _, g in ipairs(list) do
      if M.contains(psg, g) then return true end
    end
  end
  return false
end

--- score_of(value) → the number a metric's answer stands for (true 1, false 0,
-- {score = s} s) and its feedback, or nil when it is none of these.
function M.score_of(v)
  local feedback
  if type(v) == "table" then v, feedback = v.score, v.feedback end
  if v == true then return 1, feedback end
  if v == false then return 0, feedback end
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v, feedback end
  return nil
end

return M
