--- What a waiting call holds.  Live Lua memory per call in flight, counted after a
-- full collection while the server holds every call unanswered: the bounds catch a
-- per-call closure, a copied table or a doubled coroutine stack coming back.
-- (Lua's own count: the same under every allocator and sanitizer.)
local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local N = 300
local DRAFT = ("Our platform cuts onboarding time by 40% with automated checklists. "):rep(4)

describe("memory per call in flight", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  local function hanging_lm()
    return tide.LM("openai/mock", {base_url = server.url .. "/v1", api_key = "k", cache = false,
      num_retries = 0, headers = {["x-mock-scenario"] = "fault=hang"}})
  end

  --- KiB of live Lua data per call while `tasks` tasks, each running `call` and
  -- making `per_task` requests, all wait on the server.
  local function live_per_call(call, tasks, per_task)
    tasks, per_task = tasks or N, per_task or 1
    local slots = {}
    for i = 1, tasks do slots[i] = i end
    local calls = tasks * per_task
    collectgarbage()
    collectgarbage()
    local base = collectgarbage("count")
    local t = tide.spawn(tide.map, slots, call)
    local s = server:wait_for(function(st) return st.in_flight == calls end, 1000)
    assert.are.equal(calls, s.in_flight)
    collectgarbage()
    collectgarbage()
    local per_call = (collectgarbage("count") - base) / calls
    t:cancel()
    assert.is_false(pcall(t.wait, t))
    return per_call
  end

  it("a tide.LM call holds under 4 KiB of Lua data while it waits", function()
    local lm = hanging_lm()
    local kib = live_per_call(function() return lm:call{messages = {{role = "user", content = DRAFT}}} end)
    assert.is_true(kib < 4, string.format("%.2f KiB per waiting LM call", kib))
  end)

  it("a Predict call holds under 6 KiB while it waits", function()
    local p = tide.Predict("content, context -> score: int, feedback, approved: bool", {lm = hanging_lm()})
    local kib = live_per_call(function() return p{content = DRAFT, context = "B2B"} end)
    assert.is_true(kib < 6, string.format("%.2f KiB per waiting Predict call", kib))
  end)

  it("a panel of three critics holds under 7 KiB per critic call while they wait", function()
    local lm = hanging_lm()
    local critics = {}
    for i, name in ipairs{"technical", "style", "completeness"} do
      critics[i] = {name, tide.Predict(string.format(
        "content, context -> %s_score: int, %s_feedback, %s_approved: bool", name, name, name), {lm = lm})}
    end
    local panel = tide.fanout.Panel{critics = critics, on_failure = "fail"}
    local inputs = {content = DRAFT, context = "B2B"}
    local kib = live_per_call(function() return panel(inputs) end, N // 3, 3)
    assert.is_true(kib < 7, string.format("%.2f KiB per waiting critic call", kib))
  end)
end)
