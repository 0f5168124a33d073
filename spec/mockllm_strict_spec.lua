-- mockllm refuses what the real APIs refuse, with their statuses, error kinds and
-- wording: requests without a key or with one a scenario makes invalid, and bodies
-- each API rejects.  --lenient and lenient=1 turn the checks off.  Raw HTTP, so the
-- spec sees the wire.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local wire = require "support.routes"

local routes = wire.routes

--- Posts body (a table, or the route's own with fields over it; raw: the JSON text
-- itself) to a route, with headers (default: the route's key and version headers).
-- → status, decoded body.
local function post(server, name, opts)
  opts = opts or {}
  local body = opts.body
  if not body then
    body = {}
    for k, v in pairs(routes[name].body) do body[k] = v end
    for k, v in pairs(opts.fields or {}) do body[k] = v end
  end
  local headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = opts.scenario}
  for k, v in pairs(opts.headers or routes[name].headers) do headers[k] = v end
  local r = tide.request{url = server.url .. (opts.path or routes[name].path),
    body = opts.raw or cjson.encode(body), headers = headers, timeout = 10}
  return r.status, cjson.decode(r.body), r
end

describe("mockllm's strict checks", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  describe("the key", function()
    it("is required: OpenAI 401, Anthropic 401, Gemini 403, each in its own words", function()
      local s, e = post(server, "openai", {headers = {}})
      assert.are.equal(401, s)
      assert.matches("^You didn't provide an API key%. You need to provide your API key in an "
        .. "Authorization header using Bearer auth", e.error.message)
      assert.are.same({"invalid_request_error", cjson.null, cjson.null},
        {e.error.type, e.error.param, e.error.code})
      s, e = post(server, "anthropic", {headers = {["anthropic-version"] = "2023-06-01"}})
      assert.are.equal(401, s)
      assert.are.same({type = "error", error = {type = "authentication_error",
        message = "x-api-key header is required"}}, {type = e.type, error = e.error})
      s, e = post(server, "gemini", {headers = {}})
      assert.are.equal(403, s)
      assert.are.equal("PERMISSION_DENIED", e.error.status)
      assert.matches("unregistered callers", e.error.message)
    end)

    it("takes any non-empty one, in a header or Gemini's ?key=; an empty one is none", function()
      assert.are.equal(200, (post(server, "openai", {headers = {["api-key"] = "azure"}})))
      assert.are.equal(200, (post(server, "gemini", {headers = {},
        path = routes.gemini.path .. "?key=AIza-q"})))
      assert.are.equal(401, (post(server, "openai", {headers = {Authorization = "Bearer "}})))
    end)

    it("is refused by invalid_key=1: OpenAI 401 invalid_api_key, masked", function()
      local key = "sk-canary-0123456789abcdef"
      local s, e = post(server, "openai", {scenario = "invalid_key=1",
        headers = {Authorization = "Bearer " .. key}})
      assert.are.equal(401, s)
      assert.are.same({"invalid_request_error", "invalid_api_key"}, {e.error.type, e.error.code})
      assert.are.equal("Incorrect API key provided: sk-*******************cdef. You can find "
        .. "your API key at https://platform.openai.com/account/api-keys.", e.error.message)
      assert.is_nil(e.error.message:find(key, 1, true))
    end)

    it("is refused by invalid_key=1: Anthropic 401, Gemini 400 API_KEY_INVALID", function()
      local s, e = post(server, "anthropic", {scenario = "invalid_key=1"})
      assert.are.same({401, "authentication_error", "invalid x-api-key"},
        {s, e.error.type, e.error.message})
      s, e = post(server, "gemini", {scenario = "invalid_key=1"})
      assert.are.same({400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."},
        {s, e.error.status, e.error.message})
      assert.are.equal("type.googleapis.com/google.rpc.ErrorInfo", e.error.details[1]["@type"])
      assert.are.equal("API_KEY_INVALID", e.error.details[1].reason)
    end)

    it("is valid again once fail_first's count is spent", function()
      local sc = "invalid_key=1;fail_first=1;key=strict-fk"
      assert.are.equal(401, (post(server, "openai", {scenario = sc})))
      assert.are.equal(200, (post(server, "openai", {scenario = sc})))
    end)
  end)

  describe("Anthropic", function()
    local function refused(opts, msg)
      local s, e = post(server, "anthropic", opts)
      assert.are.equal(400, s, msg)
      assert.are.same({"invalid_request_error", msg}, {e.error.type, e.error.message})
    end

    it("needs the anthropic-version header and max_tokens", function()
      refused({headers = {["x-api-key"] = "k"}}, "anthropic-version: header is required")
      refused({body = {model = "claude-mock", messages = routes.anthropic.body.messages}},
        "max_tokens: Field required")
    end)

    it("refuses a temperature outside 0..1", function()
      refused({fields = {temperature = 1.5}}, "temperature: Input should be less than or equal to 1")
      refused({fields = {temperature = -0.5}}, "temperature: Input should be greater than or equal to 0")
      assert.are.equal(200, (post(server, "anthropic", {fields = {temperature = 1}})))
    end)

    it("refuses a system role inside messages", function()
      refused({fields = {messages = {{role = "system", content = "be brief"},
        {role = "user", content = "hi"}}}}, 'messages: Unexpected role "system". The Messages API '
        .. 'accepts a top-level `system` parameter, not "system" as an input message role.')
    end)

    it("refuses messages that start with the assistant or do not alternate", function()
      refused({fields = {messages = {{role = "assistant", content = "hi"}}}},
        'messages: first message must use the "user" role')
      refused({fields = {messages = {{role = "user", content = "a"}, {role = "user", content = "b"}}}},
        'messages: roles must alternate between "user" and "assistant", but found multiple "user" '
        .. "roles in a row")
    end)

    it("refuses empty content, except in a final assistant message (a prefill)", function()
      local msg = "messages: all messages must have non-empty content except for the optional "
        .. "final assistant message"
      refused({fields = {messages = {{role = "user", content = ""}}}}, msg)
      refused({fields = {messages = {{role = "user", content = "a"},
        {role = "assistant", content = ""}, {role = "user", content = "b"}}}}, msg)
      assert.are.equal(200, (post(server, "anthropic", {fields = {messages = {
        {role = "user", content = "a"}, {role = "assistant", content = ""}}}})))
    end)
  end)

  describe("OpenAI", function()
    -- body: the whole request body; fields: over the route's own.
    local function refused(opts, param, pattern, code)
      local s, e = post(server, "openai", opts)
      assert.are.equal(400, s, param)
      assert.are.same({"invalid_request_error", param, code or cjson.null},
        {e.error.type, e.error.param, e.error.code})
      assert.matches(pattern, e.error.message)
    end

    it("needs a model and a non-empty list of messages, naming the param", function()
      refused({body = {messages = routes.openai.body.messages}}, "model",
        "you must provide a model parameter")
      refused({raw = '{"model":"gpt-mock","messages":[]}'},
        "messages", "^Invalid 'messages': empty array", "empty_array")
      refused({body = {model = "gpt-mock"}}, "messages", "^Missing required parameter: 'messages'",
        "missing_required_parameter")
    end)

    it("refuses an unknown role, naming the message", function()
      refused({fields = {messages = {{role = "user", content = "a"}, {role = "robot", content = "b"}}}},
        "messages[1].role", "^Invalid value: 'robot'%. Supported values are: 'system'", "invalid_value")
    end)

    it("refuses a temperature outside 0..2 and more than 4 stop sequences", function()
      refused({fields = {temperature = 2.5}}, "temperature", "^Invalid 'temperature': decimal above "
        .. "maximum value%. Expected a value <= 2, but got 2%.5 instead%.$", "decimal_above_max_value")
      refused({fields = {temperature = -1}}, "temperature", "below minimum value%. Expected a value >= 0",
        "decimal_below_min_value")
      refused({fields = {stop = {"a", "b", "c", "d", "e"}}}, "stop", "^Invalid 'stop': array too long%. "
        .. "Expected an array with maximum length 4, but got an array with length 5 instead%.$",
        "array_above_max_length")
      assert.are.equal(200, (post(server, "openai", {fields = {temperature = 2, stop = {"a", "b", "c", "d"}}})))
    end)

    it("refuses max_tokens and a temperature other than 1 for reasoning models", function()
      for _, model in ipairs{"o1", "o3-mini", "gpt-5"} do
        refused({fields = {model = model, max_tokens = 10}}, "max_tokens",
          "^Unsupported parameter: 'max_tokens' is not supported with this model%. Use "
          .. "'max_completion_tokens' instead%.$", "unsupported_parameter")
        refused({fields = {model = model, temperature = 0.7}}, "temperature",
          "^Unsupported value: 'temperature' does not support 0%.7 with this model%. Only the "
          .. "default %(1%) value is supported%.$", "unsupported_value")
        assert.are.equal(200, (post(server, "openai", {fields = {model = model,
          max_completion_tokens = 100, temperature = 1}})))
      end
      assert.are.equal(200, (post(server, "openai", {fields = {model = "gpt-4o", max_tokens = 100,
        temperature = 0.7}})))
    end)

    it("refuses a strict json_schema whose objects allow more or require less", function()
      local function rf(schema, strict)
        return {fields = {response_format = {type = "json_schema",
          json_schema = {name = "answer", strict = strict, schema = schema}}}}
      end
      refused(rf({type = "object", properties = {a = {type = "string"}}, required = {"a"}}, true),
        "response_format", "^Invalid schema for response_format 'answer': In context=%(%), "
        .. "'additionalProperties' is required to be supplied and to be false%.$")
      refused(rf({type = "object", additionalProperties = false, required = {"a"}, properties = {
          a = {type = "object", additionalProperties = false, required = {"x"},
            properties = {x = {type = "string"}, y = {type = "integer"}}}}}, true),
        "response_format", "In context=%('properties', 'a'%), 'required' is required to be supplied "
        .. "and to be an array including every key in properties%. Missing 'y'%.$")
      local ok = {type = "object", additionalProperties = false, required = {"a"},
        properties = {a = {type = "array", items = {["$ref"] = "#/$defs/P"}}},
        ["$defs"] = {P = {type = "object", additionalProperties = false, required = {"n"},
          properties = {n = {type = "number"}}}}}
      assert.are.equal(200, (post(server, "openai", rf(ok, true))))
      ok["$defs"].P.additionalProperties = nil
      refused(rf(ok, true), "response_format", "In context=%('%$defs', 'P'%), 'additionalProperties'")
      assert.are.equal(200, (post(server, "openai", rf(ok, false))))   -- not strict: not checked
    end)

    it("refuses a tool message without the assistant's tool_calls before it", function()
      refused({fields = {messages = {{role = "user", content = "a"},
        {role = "tool", tool_call_id = "call_1", content = "42"}}}}, "messages.[1].role",
        "^Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
        .. "with 'tool_calls'%.$")
      assert.are.equal(200, (post(server, "openai", {fields = {messages = {
        {role = "user", content = "a"},
        {role = "assistant", content = cjson.null, tool_calls = {{id = "call_1", type = "function",
          ["function"] = {name = "f", arguments = "{}"}}}},
        {role = "tool", tool_call_id = "call_1", content = "42"}}}})))
    end)
  end)

  describe("Gemini", function()
    it("refuses empty contents and a role other than user or model", function()
      local s, e = post(server, "gemini", {raw = '{"contents":[]}'})
      assert.are.same({400, "INVALID_ARGUMENT"}, {s, e.error.status})
      assert.matches("contents is not specified", e.error.message)
      s, e = post(server, "gemini", {body = {contents = {{role = "assistant", parts = {{text = "a"}}}}}})
      assert.are.same({400, "INVALID_ARGUMENT", "Please use a valid role: user, model."},
        {s, e.error.status, e.error.message})
      assert.are.equal(200, (post(server, "gemini", {body = {contents = {
        {parts = {{text = "a"}}}, {role = "model", parts = {{text = "b"}}},
        {role = "user", parts = {{text = "c"}}}}}})))
    end)
  end)

  describe("tide's own scripts", function()
    it("send a key: the hello_gather demo gets its six answers from a strict server", function()
      -- no preloaded sanitizer runtime for bash under `make check`: tide and mockllm
      -- are instrumented themselves
      local p = io.popen(string.format("env -u LD_PRELOAD scripts/with_mockllm %s "
        .. "scripts/hello_gather.lua 2>&1; echo exit=$?", os.getenv("TIDE_BIN") or "build/tide"))
      local out = p:read("a")
      p:close()
      assert.matches("exit=0", out)
      local n = 0
      for _ in out:gmatch("\n%d\tMock reply to: Name a ") do n = n + 1 end
      assert.are.equal(6, n, out)
    end)
  end)

  describe("turned off", function()
    it("by lenient=1 for one request, which the log shows answered", function()
      server:reset()
      assert.are.equal(401, (post(server, "openai", {headers = {}})))
      assert.are.equal(200, (post(server, "openai", {headers = {}, scenario = "lenient=1"})))
      assert.are.equal(200, (post(server, "anthropic", {headers = {}, scenario = "lenient=1",
        body = {messages = {{role = "system", content = "x"}}}})))
      local log = server:get_json("/__log").requests
      assert.are.same({401, 200, 200}, {log[1].status, log[2].status, log[3].status})
    end)

    it("by --lenient for a whole server, and back on by lenient=0", function()
      local lax = mockllm.start{lenient = true}
      local ok, err = pcall(function()
        assert.are.equal(200, (post(lax, "openai", {headers = {}})))
        assert.are.equal(200, (post(lax, "gemini", {headers = {},
          body = {contents = {{role = "bot", parts = {{text = "a"}}}}}})))
        assert.are.equal(401, (post(lax, "openai", {headers = {}, scenario = "lenient=0"})))
      end)
      lax:stop()
      assert(ok, err)
    end)
  end)
end)
