-- mockllm's answers that are not streams, in each provider's shape: blocked and empty
-- answers, context overflows, the error body of every status, and its wire formats
-- (Anthropic messages, Gemini generateContent, DSPy's chat format).
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local wire = require "support.routes"

describe("mockllm's replies", function()
  local server = mockllm.serve()

  local function post(name, opts) return wire.post(server, name, opts) end
  local function plain_text(name) return wire.plain_text(server, name) end

  it("blocked, no_text and finish=length answer 200 in each provider's shape", function()
    local oa = cjson.decode(post("openai", {scenario = "fault=blocked"}).body).choices[1]
    assert.are.equal("content_filter", oa.finish_reason)
    assert.are.equal(cjson.null, oa.message.content)
    assert.are.equal(cjson.null, oa.message.refusal)
    local an = cjson.decode(post("anthropic", {scenario = "fault=blocked"}).body)
    assert.are.same({"refusal", {}}, {an.stop_reason, an.content})
    local ge = cjson.decode(post("gemini", {scenario = "fault=blocked"}).body)
    assert.are.equal("SAFETY", ge.promptFeedback.blockReason)
    assert.is_nil(ge.candidates)
    assert.is_number(ge.usageMetadata.promptTokenCount)

    oa = cjson.decode(post("openai", {scenario = "fault=no_text"}).body).choices[1]
    assert.are.same({"length", ""}, {oa.finish_reason, oa.message.content})
    an = cjson.decode(post("anthropic", {scenario = "fault=no_text"}).body)
    assert.are.same({"max_tokens", {}}, {an.stop_reason, an.content})
    ge = cjson.decode(post("gemini", {scenario = "fault=no_text"}).body)
    assert.are.same({content = {role = "model"}, finishReason = "MAX_TOKENS", index = 0}, ge.candidates[1])

    oa = cjson.decode(post("openai", {scenario = "finish=length"}).body).choices[1]
    assert.are.same({"length", (plain_text("openai"))}, {oa.finish_reason, oa.message.content})
    an = cjson.decode(post("anthropic", {scenario = "finish=length"}).body)
    assert.are.equal("max_tokens", an.stop_reason)
    ge = cjson.decode(post("gemini", {scenario = "finish=length"}).body)
    assert.are.equal("MAX_TOKENS", ge.candidates[1].finishReason)
    assert.is_string(ge.candidates[1].content.parts[1].text)
  end)

  it("error=context_window answers each provider's 400", function()
    local r = post("openai", {scenario = "error=context_window"})
    assert.are.equal(400, r.status)
    local e = cjson.decode(r.body).error
    assert.are.same({"invalid_request_error", "messages", "context_length_exceeded"}, {e.type, e.param, e.code})
    assert.matches("maximum context length is 128000 tokens", e.message)
    r = post("anthropic", {scenario = "error=context_window"})
    assert.are.equal(400, r.status)
    local an = cjson.decode(r.body)
    assert.matches("^req_", an.request_id)
    assert.are.same({type = "error", error = {type = "invalid_request_error",
      message = "prompt is too long: 210000 tokens > 200000 maximum"}}, {type = an.type, error = an.error})
    r = post("gemini", {scenario = "error=context_window"})
    assert.are.equal(400, r.status)
    e = cjson.decode(r.body).error
    assert.are.same({400, "INVALID_ARGUMENT"}, {e.code, e.status})
    assert.matches("exceeds the maximum number of tokens allowed %(1048576%)", e.message)
  end)

  it("error statuses carry each provider's error kind", function()
    local kinds = {
      [401] = {"invalid_api_key", "authentication_error", "UNAUTHENTICATED"},
      [403] = {cjson.null, "permission_error", "PERMISSION_DENIED"},
      [404] = {"model_not_found", "not_found_error", "NOT_FOUND"},
      [408] = {cjson.null, "timeout_error", "DEADLINE_EXCEEDED"},
      [409] = {cjson.null, "conflict_error", "ABORTED"},
      [429] = {"rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"},
      [500] = {cjson.null, "api_error", "INTERNAL"},
      [502] = {cjson.null, "api_error", "UNAVAILABLE"},
      [503] = {cjson.null, "api_error", "UNAVAILABLE"},
      [504] = {cjson.null, "timeout_error", "DEADLINE_EXCEEDED"},
      [529] = {cjson.null, "overloaded_error", "UNAVAILABLE"},
    }
    for status, want in pairs(kinds) do
      local sc = "status=" .. status
      local oa = post("openai", {scenario = sc})
      local an = post("anthropic", {scenario = sc})
      local ge = post("gemini", {scenario = sc})
      assert.are.same({status, status, status}, {oa.status, an.status, ge.status})
      local oe, ae, ge_ = cjson.decode(oa.body).error, cjson.decode(an.body), cjson.decode(ge.body).error
      assert.are.same(want, {oe.code, ae.error.type, ge_.status}, sc)
      assert.are.equal(status >= 500 and "server_error" or status == 429 and "requests"
        or "invalid_request_error", oe.type, sc)
      assert.are.equal("error", ae.type)
      assert.are.equal(status, ge_.code)
    end
  end)
end)

describe("mockllm's wire formats", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  local function post(path, body, scenario)
    local r = tide.request{url = server.url .. path, body = cjson.encode(body),
      headers = wire.headers(nil, {["content-type"] = "application/json", ["X-Mock-Scenario"] = scenario})}
    return r.status, cjson.decode(r.body), r
  end

  it("speaks Anthropic messages, with its error shapes", function()
    local status, body = post("/v1/messages", {model = "claude-mock", max_tokens = 10,
      system = "be brief", messages = {{role = "user", content = "hello"}}})
    assert.are.equal(200, status)
    assert.are.equal("message", body.type)
    assert.are.equal("text", body.content[1].type)
    assert.is_number(body.usage.input_tokens)
    local s529, err = post("/v1/messages", {model = "m", messages = {}}, "status=529")
    assert.are.equal(529, s529)
    assert.are.equal("overloaded_error", err.error.type)
  end)

  it("speaks Gemini generateContent, with RetryInfo on 429", function()
    local status, body = post("/v1beta/models/gemini-mock:generateContent",
      {contents = {{role = "user", parts = {{text = "hello"}}}}})
    assert.are.equal(200, status)
    assert.are.equal("STOP", body.candidates[1].finishReason)
    assert.is_number(body.usageMetadata.totalTokenCount)
    local s429, err = post("/v1beta/models/gemini-mock:generateContent", {contents = {}},
      "status=429;retry_after=3")
    assert.are.equal(429, s429)
    assert.are.equal("RESOURCE_EXHAUSTED", err.error.status)
    local types = {}
    for i, d in ipairs(err.error.details) do types[i] = d["@type"]:match("rpc%.(%a+)$") end
    assert.are.same({"QuotaFailure", "Help", "RetryInfo"}, types)   -- Google's order
    assert.are.equal("3s", err.error.details[3].retryDelay)
  end)

  it("answers DSPy's chat format with every output field, typed", function()
    local system = table.concat({
      "Your input fields are:",
      "1. `content` (str): the draft",
      "Your output fields are:",
      "1. `technical_score` (int): 0-100",
      "2. `technical_feedback` (str): what to fix",
      "3. `technical_approved` (bool): ok?",
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "", "[[ ## content ## ]]", "{content}", "", "[[ ## technical_score ## ]]", "{technical_score}",
    }, "\n")
    local status, body = post("/v1/chat/completions", {model = "m", messages = {
      {role = "system", content = system},
      {role = "user", content = "[[ ## content ## ]]\nA draft.\n\nRespond with the corresponding output fields."},
    }})
    assert.are.equal(200, status)
    local text = body.choices[1].message.content
    local score = text:match("%[%[ ## technical_score ## %]%]\n(%d+)")
    assert.is_not_nil(score)
    assert.is_true(tonumber(score) >= 0 and tonumber(score) <= 100)
    assert.matches("%[%[ ## technical_feedback ## %]%]\n%S", text)
    assert.matches("%[%[ ## technical_approved ## %]%]\n(%a+)", text)
    local approved = text:match("%[%[ ## technical_approved ## %]%]\n(%a+)")
    assert.is_true(approved == "True" or approved == "False")
    assert.matches("%[%[ ## completed ## %]%]", text)
    -- deterministic: the same prompt, the same answer
    local _, again = post("/v1/chat/completions", {model = "m", messages = {
      {role = "system", content = system},
      {role = "user", content = "[[ ## content ## ]]\nA draft.\n\nRespond with the corresponding output fields."},
    }})
    assert.are.equal(text, again.choices[1].message.content)
  end)
end)
