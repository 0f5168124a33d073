-- mockllm's request log (/__log): what it records of each request, and never a key.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"

describe("mockllm's request log", function()
  local server = mockllm.serve()

  local function chat(scenario, headers)
    headers = headers or {}
    headers["X-Mock-Scenario"] = scenario
    return tide.request{url = server.url .. "/v1/chat/completions", headers = headers,
      body = cjson.encode{model = "gpt-log", messages = {{role = "user", content = "hi"}}}}
  end

  it("records each request in order with its key, status, model and auth header name", function()
    local sc = "fail_first=2;key=abc;status=429;retry_after=1"
    for _ = 1, 3 do chat(sc, {Authorization = "Bearer sk-CANARY"}) end
    server:stats()                          -- control routes are not logged
    local r = tide.request{url = server.url .. "/__log"}
    assert.are.equal(200, r.status)
    assert.is_nil(r.body:find("CANARY", 1, true))   -- never a key's value
    local log = cjson.decode(r.body).requests
    assert.are.equal(3, #log)
    for i, e in ipairs(log) do
      assert.are.equal(i, e.seq)
      assert.are.same({"openai", "/v1/chat/completions", "abc", "gpt-log", false, "authorization"},
        {e.route, e.path, e.key, e.model, e.stream, e.auth})
    end
    assert.are.same({429, 429, 200}, {log[1].status, log[2].status, log[3].status})
    -- timestamps in arrival order (their gaps are the machine's, not asserted)
    assert.is_number(log[1].t)
    assert.is_true(log[1].t <= log[2].t and log[2].t <= log[3].t)
  end)

  it("names x-api-key, x-goog-api-key and a key in the query, never their values", function()
    tide.request{url = server.url .. "/v1/messages", headers = {["x-api-key"] = "sk-ant-CANARY"},
      body = cjson.encode{model = "claude-log", stream = true, messages = {{role = "user", content = "hi"}}}}
    tide.request{url = server.url .. "/v1beta/models/gem-log:streamGenerateContent?alt=sse",
      headers = {["x-goog-api-key"] = "AIza-CANARY"},
      body = cjson.encode{contents = {{role = "user", parts = {{text = "hi"}}}}}}
    tide.request{url = server.url .. "/v1beta/models/gem-log:generateContent?key=AIza-CANARY",
      body = cjson.encode{contents = {{role = "user", parts = {{text = "hi"}}}}}}
    assert.is_false(pcall(chat, "fault=drop;key=dropped"))
    local body = tide.request{url = server.url .. "/__log"}.body
    assert.is_nil(body:find("CANARY", 1, true))
    local log = cjson.decode(body).requests
    assert.are.same({"anthropic", "claude-log", true, "x-api-key"},
      {log[1].route, log[1].model, log[1].stream, log[1].auth})
    assert.are.same({"gemini", "/v1beta/models/gem-log:streamGenerateContent", "gem-log", true, "x-goog-api-key"},
      {log[2].route, log[2].path, log[2].model, log[2].stream, log[2].auth})
    assert.are.same({"/v1beta/models/gem-log:generateContent", false, "?key"},
      {log[3].path, log[3].stream, log[3].auth})
    assert.are.same({"dropped", cjson.null, cjson.null}, {log[4].key, log[4].status, log[4].auth})
    for i = 2, #log do assert.is_true(log[i].t >= log[i - 1].t) end
    server:reset()
    assert.are.same({}, server:get_json("/__log").requests)
  end)
end)
