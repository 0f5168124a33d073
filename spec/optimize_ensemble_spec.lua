-- tide.Ensemble: programs answering at once, reduced by tide.majority.
local tide = require "tide"
local task = require "support.optimize_task"

describe("tide.Ensemble", function()
  local env = task.env()   -- env.server, env.lm

  it("runs its programs at once and returns their majority; saves and loads as one module", function()
    local lm = task.lm(env.server, {cache = false, headers = {["X-Mock-Scenario"] = "latency=50"}})
    local with_demos = tide.LabeledFewShot{k = 2}:compile(tide.Predict("word -> answer", {lm = lm}),
      {trainset = task.examples(1, 4)})
    local programs = {tide.Predict("word -> answer", {lm = lm}), with_demos, with_demos}
    local ens = tide.Ensemble{reduce_fn = function(outs) return tide.majority(outs, "answer") end}
    local program = ens:compile(programs)
    assert.are.equal("elppa", program{word = "apple"}.answer)
    assert.are.equal(3, env.server:stats().peak_in_flight)
    local names = {}
    for i, np in ipairs(program:named_predictors()) do names[i] = np[1] end
    assert.are.same({"programs[0]", "programs[1]"}, names)   -- the second and third are one predictor
    local path = os.tmpname()
    program:save(path)
    local again = ens:compile{tide.Predict("word -> answer", {lm = lm}), tide.Predict("word -> answer", {lm = lm})}
    again:load(path)
    os.remove(path)
    assert.are.equal(0, #again.programs[1].demos)
    assert.are.equal(2, #again.programs[2].demos)
  end)

  it("draws size programs per call, returns the outputs without reduce_fn, and refuses misuse", function()
    local lm = task.lm(env.server)
    local p = tide.Predict("word -> answer", {lm = lm})
    local outs = tide.Ensemble{size = 2, seed = 3}:compile{p, p, p}{word = "pear"}
    assert.are.equal(2, #outs)
    assert.are.equal("pear", outs[1].answer)
    assert.has_error(function() tide.Ensemble{size = 0} end)
    assert.has_error(function() tide.Ensemble{size = 4}:compile{p, p} end)
    assert.has_error(function() tide.Ensemble{}:compile{} end)
  end)
end)
