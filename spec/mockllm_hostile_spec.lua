-- mockllm's hostile scenarios, checked on the bytes it puts on the wire: an error
-- that quotes the request's key, byte-order marks, odd SSE framing, streams that end
-- too early (cleanly or by a reset), absurd token counts, HTML error pages.
local tide = require "tide"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local wire = require "support.routes"

local BOM = "\xEF\xBB\xBF"
local KEY = "sk-canary-0123456789abcdef"
local routes = wire.routes
-- each provider's way of sending the key, for the scenarios that echo it
local AUTH = {
  openai = {Authorization = "Bearer " .. KEY},
  anthropic = {["x-api-key"] = KEY},
  gemini = {["x-goog-api-key"] = KEY},
}
local NAMES = {"openai", "anthropic", "gemini"}

--- The request body for a route, with "stream": true for OpenAI and Anthropic.
local function body_of(name, stream)
  local body = {}
  for k, v in pairs(routes[name].body) do body[k] = v end
  if stream and name ~= "gemini" then body.stream = true end
  return cjson.encode(body)
end

--- The same answer with the per-request ids and times taken out, for comparisons.
local function normalize(body)
  return (body:gsub("mock%-%d+", "mock-N"):gsub("mock_%d+", "mock_N"):gsub('"created":%d+', '"created":0')
    :gsub('"responseId":"mock%x+"', '"responseId":"mockN"'))
end

--- The message of an error body in any of the three shapes.
local function error_message(body)
  local e = cjson.decode(body).error
  return e.message
end

--- SSE events split on any line ending (CR LF, LF or CR alone, as the SSE spec
-- allows); each {event = name or nil, data = text or nil}.  Blank lines end events.
local function sse_events(body)
  local list, ev = {}, {}
  local text = body:gsub("^\xEF\xBB\xBF", ""):gsub("\r\n", "\n"):gsub("\r", "\n")
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
  -- array (Gemini's streamed JSON array), headers (instead of the route's key
  -- and version headers), path (a different target).
  local function post(name, opts)
    opts = opts or {}
    local route = routes[name]
    local path = opts.path or (opts.array and route.array_path)
      or (opts.stream and name == "gemini" and route.stream_path) or route.path
    local headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = opts.scenario}
    for k, v in pairs(opts.headers or route.headers) do headers[k] = v end
    return tide.request{url = server.url .. path, body = body_of(name, opts.stream), headers = headers,
      timeout = 10, max_body = opts.max_body}
  end

  describe("echo_key", function()
    local function message_for(key, pad)
      return "Incorrect API key provided: " .. ("."):rep(pad or 0) .. key ..
        ". You can find your API key at https://platform.openai.com/account/api-keys."
    end

    it("answers 401 quoting the credential of each header, in each provider's error shape", function()
      for _, name in ipairs(NAMES) do
        local r = post(name, {scenario = "echo_key=1", headers = AUTH[name]})
        assert.are.equal(401, r.status, name)
        assert.are.equal(name == "gemini" and "application/json; charset=UTF-8" or "application/json",
          r.headers["content-type"])
        assert.are.equal(message_for(KEY), error_message(r.body), name)
      end
      local oa = cjson.decode(post("openai", {scenario = "echo_key=1", headers = AUTH.openai}).body)
      assert.are.same({"invalid_request_error", "invalid_api_key"}, {oa.error.type, oa.error.code})
      local an = cjson.decode(post("anthropic", {scenario = "echo_key=1", headers = AUTH.anthropic}).body)
      assert.are.equal("authentication_error", an.error.type)
      local ge = cjson.decode(post("gemini", {scenario = "echo_key=1", headers = AUTH.gemini}).body)
      assert.are.equal("UNAUTHENTICATED", ge.error.status)
      -- Azure's api-key header, and a Gemini key in the query string (URL-decoded)
      local az = post("openai", {scenario = "echo_key=1", headers = {["api-key"] = "azure-" .. KEY}})
      assert.are.equal(message_for("azure-" .. KEY), error_message(az.body))
      local q = post("gemini", {scenario = "echo_key=1", headers = {},
        path = routes.gemini.path .. "?key=AIza%2DCANARY%2Fq"})
      assert.are.equal(message_for("AIza-CANARY/q"), error_message(q.body))
    end)

    it("honours status=, and says so when the request carried no key", function()
      local r = post("anthropic", {scenario = "echo_key=1;status=403", headers = AUTH.anthropic})
      assert.are.equal(403, r.status)
      assert.are.equal("permission_error", cjson.decode(r.body).error.type)
      assert.are.equal(message_for(KEY), error_message(r.body))
      local none = post("openai", {scenario = "echo_key=1", headers = {}})
      assert.are.equal(401, none.status)
      assert.matches("^You didn't provide an API key", error_message(none.body))
      -- an empty header is no credential: the next one is quoted
      local next_one = post("openai", {scenario = "echo_key=1",
        headers = {Authorization = "", ["x-api-key"] = KEY}})
      assert.are.equal(message_for(KEY), error_message(next_one.body))
    end)

    it("echo_pad puts N filler bytes before the key, at a known offset of the body", function()
      for _, pad in ipairs{0, 150, 1975} do
        local r = post("openai", {scenario = "echo_key=1;echo_pad=" .. pad, headers = AUTH.openai})
        assert.are.equal(message_for(KEY, pad), error_message(r.body))
        assert.are.equal(50 + pad, (r.body:find(KEY, 1, true)))        -- byte 49 + N, from 0
        assert.are.equal(29 + pad, (error_message(r.body):find(KEY, 1, true)))
      end
      -- so a key can straddle a 200-byte cut of the message: its first 10 bytes in
      local r = post("openai", {scenario = "echo_key=1;echo_pad=162", headers = AUTH.openai})
      local cut = error_message(r.body):sub(1, 200)
      assert.are.equal("sk-canary-", cut:sub(-10))
      assert.is_nil(cut:find(KEY, 1, true))
    end)

    it("echo_key=escaped writes each character of the key \\u00XX-escaped", function()
      local r = post("openai", {scenario = "echo_key=escaped", headers = AUTH.openai})
      assert.are.equal(401, r.status)
      assert.is_nil(r.body:find(KEY, 1, true))           -- not in the raw bytes
      local escaped = KEY:gsub(".", function(c) return string.format("\\u%04x", c:byte()) end)
      assert.is_truthy(r.body:find(escaped, 1, true))
      assert.are.equal(message_for(KEY), error_message(r.body))   -- but the JSON means it
      local g = post("gemini", {scenario = "echo_key=escaped;echo_pad=3", headers = AUTH.gemini})
      assert.is_truthy(g.body:find("provided: ..." .. escaped, 1, true))
    end)

    it("ends with fail_first, never reaches the log, and refuses bad values", function()
      local sc = "echo_key=1;fail_first=1;key=echo"
      assert.are.equal(401, post("openai", {scenario = sc, headers = AUTH.openai}).status)
      assert.are.equal(200, post("openai", {scenario = sc, headers = AUTH.openai}).status)
      local log = tide.request{url = server.url .. "/__log"}.body
      assert.is_nil(log:find("canary", 1, true))
      assert.are.same({"authorization", "authorization"},
        {cjson.decode(log).requests[1].auth, cjson.decode(log).requests[2].auth})
      -- without echo_key no answer holds the key, whatever else goes wrong
      for _, s in ipairs{"status=401", "status=500", "fault=error_body", "error=context_window"} do
        local r = post("openai", {scenario = s, headers = AUTH.openai})
        assert.is_nil(r.body:find("canary", 1, true), s)
      end
      for _, bad in ipairs{"echo_key=2", "echo_key=yes", "echo_pad=x", "echo_pad=2m"} do
        local r = post("openai", {scenario = bad})
        assert.are.equal(400, r.status, bad)
        assert.matches("'echo_", error_message(r.body), bad)
      end
    end)
  end)

  describe("bom, sse_eol and sse_filler", function()
    it("bom=1 starts every JSON body with EF BB BF, counted in its Content-Length", function()
      for _, name in ipairs(NAMES) do
        local r = post(name, {scenario = "bom=1"})
        assert.are.equal(200, r.status)
        assert.are.equal(BOM, r.body:sub(1, 3), name)
        assert.are.equal(tostring(#r.body), r.headers["content-length"])
        assert.are.equal(normalize(post(name).body), normalize(r.body:sub(4)), name)   -- then the usual body
        local e = post(name, {scenario = "bom=1;status=503"})
        assert.are.same({503, BOM}, {e.status, e.body:sub(1, 3)})
        assert.is_string(error_message(e.body:sub(4)))
      end
      assert.are.equal(BOM .. "{", post("openai", {scenario = "bom=1;fault=error_body"}).body:sub(1, 4))
      -- without bom no body starts with one, and an empty body stays empty
      assert.are.equal("{", post("openai").body:sub(1, 1))
      assert.are.equal("", post("openai", {scenario = "bom=1;fault=empty"}).body)
    end)

    it("bom=1 starts a stream with EF BB BF before its first event, in every format", function()
      for _, name in ipairs(NAMES) do
        local r = post(name, {stream = true, scenario = "bom=1"})
        assert.matches("^text/event%-stream", r.headers["content-type"])
        local plain = post(name, {stream = true}).body
        assert.are.equal(BOM, r.body:sub(1, 3), name)
        assert.are.equal(normalize(plain), normalize(r.body:sub(4)), name)
        assert.is_nil(r.body:find(BOM, 4, true))   -- once, at the start only
      end
      local arr = post("gemini", {array = true, scenario = "bom=1"})
      assert.are.equal(BOM .. "[{", arr.body:sub(1, 5))
      local list = cjson.decode(arr.body:sub(4))
      assert.are.equal("STOP", list[#list].candidates[1].finishReason)
    end)

    it("sse_eol=cr frames every line with CR alone; lf and crlf as asked", function()
      for _, name in ipairs(NAMES) do
        local plain = post(name, {stream = true}).body
        local cr = post(name, {stream = true, scenario = "sse_eol=cr"}).body
        assert.is_nil(cr:find("\n", 1, true), name)
        assert.is_truthy(cr:find("\r\r", 1, true), name)
        assert.are.equal(normalize(plain):gsub("\r\n", "\n"):gsub("\n", "\r"), normalize(cr), name)
        local lf = post(name, {stream = true, scenario = "sse_eol=lf"}).body
        assert.is_nil(lf:find("\r", 1, true), name)
        local crlf = post(name, {stream = true, scenario = "sse_eol=crlf"}).body
        assert.is_nil(crlf:gsub("\r\n", ""):find("[\r\n]"), name)   -- every ending is CR LF
        -- the same events, whichever the endings
        assert.are.same(sse_events(normalize(plain)), sse_events(normalize(cr)), name)
        assert.are.same(sse_events(normalize(plain)), sse_events(normalize(crlf)), name)
        assert.is_true(#sse_events(cr) >= 4)
      end
      -- the JSON array has no SSE framing to change
      assert.are.equal(normalize(post("gemini", {array = true}).body),
        normalize(post("gemini", {array = true, scenario = "sse_eol=cr"}).body))
    end)

    it("sse_filler=N sends N empty events first, after the BOM, in the stream's endings", function()
      local r = post("openai", {stream = true, scenario = "sse_filler=3"})
      assert.are.equal(("data:\n\n"):rep(3) .. "data: {", r.body:sub(1, 28))
      local g = post("gemini", {stream = true, scenario = "sse_filler=2"})
      assert.are.equal(("data:\r\n\r\n"):rep(2) .. "data: {", g.body:sub(1, 25))
      local a = post("anthropic", {stream = true, scenario = "bom=1;sse_filler=2;sse_eol=cr"})
      assert.are.equal(BOM .. ("data:\r\r"):rep(2) .. "event: message_start\r", a.body:sub(1, 38))
      local evs = sse_events(a.body)
      assert.are.same({{data = ""}, {data = ""}}, {evs[1], evs[2]})
      assert.are.equal("message_start", evs[3].event)
      -- many: written a piece at a time, all of them there
      local n = 200000
      local big = post("openai", {stream = true, scenario = "sse_filler=" .. n, max_body = 4000000})
      local plain = post("openai", {stream = true}).body
      assert.are.equal(#plain + 7 * n, #big.body)
      assert.are.equal(("data:\n\n"):rep(n), big.body:sub(1, 7 * n))
      assert.are.equal("[DONE]", sse_events(big.body)[n + 1 + #sse_events(plain) - 1].data)
      -- none for Gemini's JSON array
      assert.are.equal("[", post("gemini", {array = true, scenario = "sse_filler=5"}).body:sub(1, 1))
    end)

    it("refuses bad values, naming the key", function()
      for _, bad in ipairs{"bom=2", "bom=yes", "sse_eol=crcr", "sse_eol=", "sse_filler=-1",
                           "sse_filler=many", "usage=big", "usage=", "fault=stream_cutt"} do
        local r = post("openai", {scenario = bad})
        assert.are.equal(400, r.status, bad)
        local key = bad:match("^([%w_]+)=")
        local msg = error_message(r.body)
        assert.is_truthy(msg:find("'" .. key .. "'", 1, true) or msg:find("unknown fault", 1, true), msg)
      end
    end)
  end)

  describe("streams that end too early", function()
    it("stream_cut: one text delta, then a clean end of the chunked body, in every format", function()
      local oa = post("openai", {stream = true, scenario = "fault=stream_cut"})
      assert.are.equal(200, oa.status)              -- no transfer error: the body ended cleanly
      local evs = sse_events(oa.body)
      assert.are.equal(2, #evs)                     -- the role chunk and one delta
      for _, ev in ipairs(evs) do
        assert.are.equal(cjson.null, cjson.decode(ev.data).choices[1].finish_reason)
      end
      assert.is_string(cjson.decode(evs[2].data).choices[1].delta.content)
      assert.is_nil(oa.body:find("[DONE]", 1, true))

      local an = sse_events(post("anthropic", {stream = true, scenario = "fault=stream_cut"}).body)
      local names = {}
      for i, ev in ipairs(an) do names[i] = ev.event end
      assert.are.same({"message_start", "content_block_start", "ping", "content_block_delta"}, names)

      local ge = sse_events(post("gemini", {stream = true, scenario = "fault=stream_cut"}).body)
      assert.are.equal(1, #ge)
      assert.is_nil(cjson.decode(ge[1].data).candidates[1].finishReason)
      assert.is_string(cjson.decode(ge[1].data).candidates[1].content.parts[1].text)
      -- the JSON array is closed: it looks complete
      local arr = cjson.decode(post("gemini", {array = true, scenario = "fault=stream_cut"}).body)
      assert.are.equal(1, #arr)
      assert.is_nil(arr[1].candidates[1].finishReason)
      -- a plain request ignores it
      assert.are.equal("stop", cjson.decode(post("openai", {scenario = "fault=stream_cut"}).body)
        .choices[1].finish_reason)
    end)

    it("stream_cut keeps the connection: the next request goes over the same one", function()
      for _, name in ipairs(NAMES) do
        server:reset()
        local s <close> = tide.stream{url = server.url .. (name == "gemini" and routes.gemini.stream_path
          or routes[name].path), body = body_of(name, true),
          headers = wire.headers(name, {["X-Mock-Scenario"] = "fault=stream_cut"})}
        assert.are.equal(200, s.status)
        local got = {}
        for chunk in s:chunks() do got[#got + 1] = chunk end   -- ends without an error
        local evs = sse_events(table.concat(got))
        assert.is_truthy(evs[#evs].data:find('"[ct]%a+":"[^"]'), name)   -- a text delta, last
        assert.are.equal(200, post(name).status)
        local st = server:stats()
        -- reset's connection carried the cut stream and the next request: none opened
        assert.are.same({0, 2, 2}, {st.connections_total, st.requests, st.completed}, name)
      end
    end)

    it("stream_reset: two text deltas, then RST (not FIN), in every format", function()
      for _, name in ipairs(NAMES) do
        local ok, err = pcall(post, name, {stream = true, scenario = "fault=stream_reset"})
        assert.is_false(ok, name)
        assert.is_true(tide.is_error(err))
        assert.are_not.equal(18, err.curl_code, name)   -- 18: closed early by FIN (stream_drop)
        local ok2, drop = pcall(post, name, {stream = true, scenario = "fault=stream_drop"})
        assert.is_false(ok2)
        assert.are.equal(18, drop.curl_code, name)
      end
      -- the deltas came before the reset
      local pieces = {}
      local ok, err = pcall(function()
        local s <close> = tide.stream{url = server.url .. routes.openai.path,
          body = body_of("openai", true),
          headers = wire.headers("openai", {["X-Mock-Scenario"] = "fault=stream_reset"})}
        for chunk in s:chunks() do pieces[#pieces + 1] = chunk end
      end)
      assert.is_false(ok)
      local evs = sse_events(table.concat(pieces))
      assert.are.equal(3, #evs, tostring(err))    -- role chunk, two deltas
      local st = server:wait_for(function(x) return x.connections_open <= 1 end)
      assert.are.equal(st.requests, st.completed + st.in_flight)   -- the scripted resets count as done
    end)
  end)

  describe("usage=", function()
    local LIT = {huge = "1e999", negative = "-1e20", float = "12.5", string = '"12"'}

    -- every count field of each format, plain and streamed, as raw JSON text
    local function counts(body)
      local found = {}
      for k, v in body:gmatch('"([%w_]*[Tt]okens?%a*)":([^,}]+)') do found[#found + 1] = k .. "=" .. v end
      return found
    end

    it("writes every token count as the absurd value, plain and streamed", function()
      for mode, lit in pairs(LIT) do
        local sc = "usage=" .. mode
        local oa = post("openai", {scenario = sc}).body
        assert.is_truthy(oa:find('"usage":{"prompt_tokens":' .. lit .. ',"completion_tokens":' .. lit ..
          ',"total_tokens":' .. lit .. ',"prompt_tokens_details":{"cached_tokens":' .. lit, 1, true), mode)
        local an = post("anthropic", {scenario = sc}).body
        assert.is_truthy(an:find('"usage":{"input_tokens":' .. lit .. ',"cache_creation_input_tokens":' .. lit
          .. ',"cache_read_input_tokens":' .. lit, 1, true), mode)
        assert.is_truthy(an:find(',"output_tokens":' .. lit .. ',"service_tier":"standard"}', 1, true), mode)
        local ge = post("gemini", {scenario = sc}).body
        assert.is_truthy(ge:find('"usageMetadata":{"promptTokenCount":' .. lit .. ',"candidatesTokenCount":'
          .. lit .. ',"totalTokenCount":' .. lit .. ',"promptTokensDetails"', 1, true), mode)
        -- streamed: OpenAI's usage chunk, Anthropic's message_start and message_delta, Gemini's every event
        local so = post("openai", {stream = true, scenario = sc}).body
        assert.is_nil(so:find('"prompt_tokens"', 1, true))   -- no include_usage, no usage chunk
        local body = {}
        for k, v in pairs(routes.openai.body) do body[k] = v end
        body.stream, body.stream_options = true, {include_usage = true}
        so = tide.request{url = server.url .. routes.openai.path, body = cjson.encode(body),
          headers = wire.headers("openai", {["X-Mock-Scenario"] = sc})}.body
        assert.is_truthy(so:find('"prompt_tokens":' .. lit .. ',"completion_tokens":' .. lit, 1, true), mode)
        local sa = post("anthropic", {stream = true, scenario = sc}).body
        assert.is_truthy(sa:find('"input_tokens":' .. lit .. ',"cache_creation_input_tokens":' .. lit, 1, true),
          mode)
        assert.is_truthy(sa:find(',"output_tokens":' .. lit .. '}}', 1, true), mode)   -- message_delta's
        local sg = post("gemini", {stream = true, scenario = sc}).body
        for _, ev in ipairs(sse_events(sg)) do
          assert.is_truthy(ev.data:find('"promptTokenCount":' .. lit, 1, true), mode)
        end
        -- and no count is left as a plain number
        for _, text in ipairs{oa, an, ge, so, sa, sg} do
          for _, kv in ipairs(counts(text)) do
            assert.is_nil(kv:match("=%d+$"), mode .. ": " .. kv)
          end
        end
      end
    end)

    it("parses as JSON, with the values a client then has to face", function()
      local oa = cjson.decode(post("openai", {scenario = "usage=huge"}).body).usage
      assert.are.equal(math.huge, oa.prompt_tokens)
      local an = cjson.decode(post("anthropic", {scenario = "usage=negative"}).body).usage
      assert.are.equal(-1e20, an.input_tokens)
      local ge = cjson.decode(post("gemini", {scenario = "usage=float"}).body).usageMetadata
      assert.are.equal(12.5, ge.totalTokenCount)
      assert.are.equal("12", cjson.decode(post("openai", {scenario = "usage=string"}).body)
        .usage.completion_tokens)
      -- usage=real is the default
      assert.is_number(math.tointeger(cjson.decode(post("openai", {scenario = "usage=real"}).body)
        .usage.total_tokens))
    end)
  end)

  describe("fault=html", function()
    it("honours status=: a web server's 404 page for a wrong base_url", function()
      local r = post("openai", {scenario = "status=404;fault=html"})
      assert.are.equal(404, r.status)
      assert.are.equal("text/html; charset=utf-8", r.headers["content-type"])
      assert.matches("<title>404 Not Found</title>", r.body, 1, true)
      assert.are.equal(tostring(#r.body), r.headers["content-length"])
      local s = post("anthropic", {scenario = "status=503;fault=html;retry_after=3"})
      assert.are.same({503, "3"}, {s.status, s.headers["retry-after"]})
      assert.matches("503 Service Unavailable", s.body, 1, true)
      -- without status= it is still a 200 carrying a 502 page
      local d = post("gemini", {scenario = "fault=html"})
      assert.are.equal(200, d.status)
      assert.matches("<title>502 Bad Gateway</title>", d.body, 1, true)
      -- the log records the status sent
      local log = server:get_json("/__log").requests
      assert.are.same({404, 503, 200}, {log[1].status, log[2].status, log[3].status})
      -- no BOM on HTML: it is not JSON
      assert.are.equal("<!DOCTYPE", post("openai", {scenario = "status=404;fault=html;bom=1"}).body:sub(1, 9))
    end)
  end)
end)
