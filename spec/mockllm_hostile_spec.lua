-- mockllm's hostile scenarios, checked on the bytes it puts on the wire: an error
-- that quotes the request's key, byte-order marks, odd SSE framing, streams that end
-- too early (cleanly or by a reset), absurd token counts, HTML error pages.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local BOM = "\xEF\xBB\xBF"
local KEY = "sk-canary-0123456789abcdef"
local PROMPT = "tell me a story about a small robot who learns to paint"

local routes = {
  openai = {path = "/v1/chat/completions", auth = {Authorization = "Bearer " .. KEY},
    body = {model = "gpt-mock", messages = {{role = "user", content = PROMPT}}}},
  anthropic = {path = "/v1/messages", auth = {["x-api-key"] = KEY},
    body = {model = "claude-mock", max_tokens = 64, messages = {{role = "user", content = PROMPT}}}},
  gemini = {path = "/v1beta/models/gemini-mock:generateContent", auth = {["x-goog-api-key"] = KEY},
    stream_path = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse",
    array_path = "/v1beta/models/gemini-mock:streamGenerateContent",
    body = {contents = {{role = "user", parts = {{text = PROMPT}}}}}},
}
local NAMES = {"openai", "anthropic", "gemini"}

--- The message of an error body in any of the three shapes.
local function error_message(body)
  local e = cjson.decode(body).error
  return e.message
end

--- SSE events split on any line ending (CR LF, LF or CR alone, as the SSE spec
-- allows); each {event = name or nil, data = text or nil}.  Blank lines end events.
local function sse_events(body)
  local list, ev = {}, {}
  local text = body:gsub("\r\n", "\n"):gsub("\r", "\n")
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line == "" then
      if ev.event or ev.data then list[#list + 1] = ev end
      ev = {}
    else
      local k, v = line:match("^(%a+):? ?(.*)$")
      if k == "event" then ev.event = v elseif k == "data" then ev.data = v end
    end
  end
  return list
end

describe("mockllm hostile scenarios", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  -- opts: scenario, stream (OpenAI/Anthropic body flag, Gemini ?alt=sse path),
  -- array (Gemini's streamed JSON array), headers, path (a different target).
  local function post(name, opts)
    opts = opts or {}
    local route = routes[name]
    local body = {}
    for k, v in pairs(route.body) do body[k] = v end
    if opts.stream and name ~= "gemini" then body.stream = true end
    local path = opts.path or (opts.array and route.array_path)
      or (opts.stream and name == "gemini" and route.stream_path) or route.path
    local headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = opts.scenario}
    for k, v in pairs(opts.headers or {}) do headers[k] = v end
    return tide.request{url = server.url .. path, body = cjson.encode(body), headers = headers,
      timeout = 10, max_body = opts.max_body}
  end

  describe("echo_key", function()
    local function message_for(key, pad)
      return "Incorrect API key provided: " .. ("."):rep(pad or 0) .. key ..
        ". You can find your API key at https://platform.openai.com/account/api-keys."
    end

    it("answers 401 quoting the credential of each header, in each provider's error shape", function()
      for _, name in ipairs(NAMES) do
        local r = post(name, {scenario = "echo_key=1", headers = routes[name].auth})
        assert.are.equal(401, r.status, name)
        assert.are.equal("application/json", r.headers["content-type"])
        assert.are.equal(message_for(KEY), error_message(r.body), name)
      end
      local oa = cjson.decode(post("openai", {scenario = "echo_key=1", headers = routes.openai.auth}).body)
      assert.are.same({"invalid_request_error", "invalid_api_key"}, {oa.error.type, oa.error.code})
      local an = cjson.decode(post("anthropic", {scenario = "echo_key=1", headers = routes.anthropic.auth}).body)
      assert.are.equal("authentication_error", an.error.type)
      local ge = cjson.decode(post("gemini", {scenario = "echo_key=1", headers = routes.gemini.auth}).body)
      assert.are.equal("UNAUTHENTICATED", ge.error.status)
      -- Azure's api-key header, and a Gemini key in the query string (URL-decoded)
      local az = post("openai", {scenario = "echo_key=1", headers = {["api-key"] = "azure-" .. KEY}})
      assert.are.equal(message_for("azure-" .. KEY), error_message(az.body))
      local q = post("gemini", {scenario = "echo_key=1",
        path = routes.gemini.path .. "?key=AIza%2DCANARY%2Fq"})
      assert.are.equal(message_for("AIza-CANARY/q"), error_message(q.body))
    end)

    it("honours status=, and says so when the request carried no key", function()
      local r = post("anthropic", {scenario = "echo_key=1;status=403", headers = routes.anthropic.auth})
      assert.are.equal(403, r.status)
      assert.are.equal("permission_error", cjson.decode(r.body).error.type)
      assert.are.equal(message_for(KEY), error_message(r.body))
      local none = post("openai", {scenario = "echo_key=1"})
      assert.are.equal(401, none.status)
      assert.matches("^You didn't provide an API key", error_message(none.body))
      -- an empty header is no credential: the next one is quoted
      local next_one = post("openai", {scenario = "echo_key=1",
        headers = {Authorization = "", ["x-api-key"] = KEY}})
      assert.are.equal(message_for(KEY), error_message(next_one.body))
    end)

    it("echo_pad puts N filler bytes before the key, at a known offset of the body", function()
      for _, pad in ipairs{0, 150, 1975} do
        local r = post("openai", {scenario = "echo_key=1;echo_pad=" .. pad, headers = routes.openai.auth})
        assert.are.equal(message_for(KEY, pad), error_message(r.body))
        assert.are.equal(50 + pad, (r.body:find(KEY, 1, true)))        -- byte 49 + N, from 0
        assert.are.equal(29 + pad, (error_message(r.body):find(KEY, 1, true)))
      end
      -- so a key can straddle a 200-byte cut of the message: its first 10 bytes in
      local r = post("openai", {scenario = "echo_key=1;echo_pad=162", headers = routes.openai.auth})
      local cut = error_message(r.body):sub(1, 200)
      assert.are.equal("sk-canary-", cut:sub(-10))
      assert.is_nil(cut:find(KEY, 1, true))
    end)

    it("echo_key=escaped writes each character of the key \\u00XX-escaped", function()
      local r = post("openai", {scenario = "echo_key=escaped", headers = routes.openai.auth})
      assert.are.equal(401, r.status)
      assert.is_nil(r.body:find(KEY, 1, true))           -- not in the raw bytes
      local escaped = KEY:gsub(".", function(c) return string.format("\\u%04x", c:byte()) end)
      assert.is_truthy(r.body:find(escaped, 1, true))
      assert.are.equal(message_for(KEY), error_message(r.body))   -- but the JSON means it
      local g = post("gemini", {scenario = "echo_key=escaped;echo_pad=3", headers = routes.gemini.auth})
      assert.is_truthy(g.body:find("provided: ..." .. escaped, 1, true))
    end)

    it("ends with fail_first, never reaches the log, and refuses bad values", function()
      local sc = "echo_key=1;fail_first=1;key=echo"
      assert.are.equal(401, post("openai", {scenario = sc, headers = routes.openai.auth}).status)
      assert.are.equal(200, post("openai", {scenario = sc, headers = routes.openai.auth}).status)
      local log = tide.request{url = server.url .. "/__log"}.body
      assert.is_nil(log:find("canary", 1, true))
      assert.are.same({"authorization", "authorization"},
        {cjson.decode(log).requests[1].auth, cjson.decode(log).requests[2].auth})
      -- without echo_key no answer holds the key, whatever else goes wrong
      for _, s in ipairs{"status=401", "status=500", "fault=error_body", "error=context_window"} do
        local r = post("openai", {scenario = s, headers = routes.openai.auth})
        assert.is_nil(r.body:find("canary", 1, true), s)
      end
      for _, bad in ipairs{"echo_key=2", "echo_key=yes", "echo_pad=x", "echo_pad=2m"} do
        local r = post("openai", {scenario = bad})
        assert.are.equal(400, r.status, bad)
        assert.matches("'echo_", error_message(r.body), bad)
      end
    end)
  end)
end)
