-- tide.metrics: DSPy's normalize_text, exact match, token F1 and passage match; and
-- tide.Evaluate taking a metric's number, boolean or {score =, feedback =}.
local tide = require "tide"
local m = require "tide.metrics"
local assert_clean = require "support.clean"

describe("tide.metrics", function()
  after_each(assert_clean)

  it("normalize_text lower-cases and drops punctuation, articles and extra spaces", function()
    assert.are.equal("eiffel tower", m.normalize_text("  The Eiffel   Tower! "))
    assert.are.equal("cat on mat", m.normalize_text("A cat, on an mat."))
    -- articles go only as whole words; punctuation goes first, so "the-end" is one word
    assert.are.equal("theater anthem theend", m.normalize_text("Theater anthem the-end"))
    assert.are.equal("", m.normalize_text("the a an ..."))
    assert.are.equal("café", m.normalize_text("the café"))
    -- "_" is punctuation, as in Python's string.punctuation
    assert.are.equal("underscore", m.normalize_text("under_score"))
  end)

  it("exact_match compares normalized answers, any of a list, and plain strings", function()
    local ex = tide.Example{question = "q", answer = "The Eiffel Tower"}
    assert.is_true(m.exact_match(ex, tide.Prediction{answer = "eiffel tower."}))
    assert.is_false(m.exact_match(ex, tide.Prediction{answer = "Eiffel"}))
    assert.is_true(m.exact_match({answer = {"Paris", "City of Light"}}, {answer = "city of light"}))
    assert.is_true(m.exact_match("Paris", "paris."))
    assert.is_true(m.exact_match({answer = 42}, {answer = "42"}))
    -- DSPy's frac: F1 at least frac counts as a match
    assert.is_false(m.exact_match(ex, {answer = "Eiffel"}, nil, 1.0))
    assert.is_true(m.exact_match(ex, {answer = "Eiffel"}, nil, 0.5))
    assert.has_error(function() m.exact_match(ex, {answer = "x"}, nil, 2) end)
    assert.has_error(function() m.exact_match({question = "q"}, {answer = "x"}) end)
  end)

  it("f1 is SQuAD's token F1 with multiplicity, the best over the answers", function()
    assert.are.equal(1, m.f1("the big cat", "Big cat"))
    -- prediction "big big dog" vs "big cat": one shared token (a second "big" is not)
    local p, r = 1 / 3, 1 / 2
    assert.is_true(math.abs(m.f1("big cat", "big big dog") - 2 * p * r / (p + r)) < 1e-12)
    assert.are.equal(0, m.f1("cat", "dog"))
    assert.are.equal(1, m.f1({answer = {"dog", "cat"}}, {answer = "cat"}))
    -- both empty once normalized: the texts decide, as in DSPy
    assert.are.equal(1, m.f1("the", "the"))
    assert.are.equal(0, m.f1("the", "a"))
  end)

  it("passage_match finds an answer's words among a passage's, whole words only", function()
    local ex = {answer = "Paris"}
    assert.is_true(m.passage_match(ex, {context = {"Rome is in Italy.", "It is Paris, France."}}))
    assert.is_false(m.passage_match(ex, {context = {"A Parisian cafe."}}))
    assert.is_true(m.passage_match({answer = {"New York", "NYC"}}, {context = "Flights to new york."}))
    assert.is_false(m.passage_match({answer = "New York"}, {context = "York is new."}))
    assert.is_true(m.contains("The Big Apple", "big apple"))
    assert.has_error(function() m.passage_match(ex, {answer = "Paris"}) end)
  end)

  it("score_of reads numbers, booleans and {score, feedback}", function()
    assert.are.same({1}, {m.score_of(true)})
    assert.are.same({0}, {m.score_of(false)})
    assert.are.same({0.5, "close"}, {m.score_of{score = 0.5, feedback = "close"}})
    assert.are.same({1, "ok"}, {m.score_of{score = true, feedback = "ok"}})
    assert.is_nil(m.score_of("1"))
    assert.is_nil(m.score_of(0 / 0))
    assert.is_nil(m.score_of{feedback = "no score"})
  end)

  it("tide.Evaluate takes a number, a boolean or {score =, feedback =} and passes (example, pred)", function()
    local devset = tide.dataset.from_table({
      {question = "q1", answer = "Paris"}, {question = "q2", answer = "Lima"},
      {question = "q3", answer = "Rome"}, {question = "q4", answer = "Oslo"},
    }, {inputs = {"question"}})
    local answers = {q1 = "paris", q2 = "Lima.", q3 = "Milan", q4 = "the Oslo"}
    local program = function(inputs) return tide.Prediction{answer = answers[inputs.question]} end
    local function run(metric)
      return tide.run(function()
        return tide.Evaluate{devset = devset, metric = metric, program = program,
          display_progress = false, display_table = false}
      end)
    end
    assert.are.equal(0.75, run(m.exact_match).score)
    assert.are.equal(0.75, run(function(ex, pred) return m.exact_match(ex, pred) and 1 or 0 end).score)
    local r = run(function(ex, pred)
      local ok = m.exact_match(ex, pred)
      return {score = ok and 1 or 0.25, feedback = ok and "right" or "wrong city"}
    end)
    assert.are.equal((3 + 0.25) / 4, r.score)
    local bad = run(function() return {feedback = "no score"} end)
    assert.are.equal(4, bad.errors)
    assert.are.equal("metric", bad.rows[1].error.kind)
  end)

  it("is tide.metrics", function()
    assert.are.equal(m, tide.metrics)
  end)
end)
