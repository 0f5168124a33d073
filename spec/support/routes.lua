--- One request per provider to mockllm, the same prompt for all three, for the specs
-- that check the bytes mockllm answers (mockllm_stream_spec, mockllm_replies_spec, mockllm_params_spec,
-- mockllm_fields_spec, mockllm_hostile_spec).
local tide = require "tide"
local cjson = require "cjson"

local M = {}

M.PROMPT = "tell me a story about a small robot who learns to paint"
-- Each route carries the headers the real API requires (a key, Anthropic's
-- version), so mockllm's strict checks let the request through.
M.routes = {
  openai = {path = "/v1/chat/completions", headers = {Authorization = "Bearer sk-mock"},
    body = {model = "gpt-mock", messages = {{role = "user", content = M.PROMPT}}}},
  anthropic = {path = "/v1/messages",
    headers = {["x-api-key"] = "sk-ant-mock", ["anthropic-version"] = "2023-06-01"},
    body = {model = "claude-mock", max_tokens = 64, messages = {{role = "user", content = M.PROMPT}}}},
  gemini = {path = "/v1beta/models/gemini-mock:generateContent",
    headers = {["x-goog-api-key"] = "AIza-mock"},
    stream_path = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse",
    array_path = "/v1beta/models/gemini-mock:streamGenerateContent",   -- a JSON array, no SSE
    body = {contents = {{role = "user", parts = {{text = M.PROMPT}}}}}},
}

--- A copy of a route's headers (name: "openai", "anthropic", "gemini"), with extra
-- on top; without a name, every provider's, for a spec that posts to any route.
function M.headers(name, extra)
  local h = {}
  for _, n in ipairs(name and {name} or {"openai", "anthropic", "gemini"}) do
    for k, v in pairs(M.routes[n].headers) do h[k] = v end
  end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

--- Posts a provider's request to server.  opts: fields (added to the body),
-- scenario (X-Mock-Scenario), headers (over the route's own), stream_path (Gemini's ?alt=sse path), timeout.
function M.post(server, name, opts)
  opts = opts or {}
  local route = M.routes[name]
  local body = {}
  for k, v in pairs(route.body) do body[k] = v end
  for k, v in pairs(opts.fields or {}) do body[k] = v end
  local headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = opts.scenario}
  for k, v in pairs(route.headers) do headers[k] = v end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  return tide.request{url = server.url .. (opts.stream_path and route.stream_path or route.path),
    body = cjson.encode(body), headers = headers, timeout = opts.timeout or 10}
end

--- mockllm's token count of a text: 4 bytes a token, at least one.
function M.tokens(text) return math.max(1, math.ceil(#text / 4)) end

--- The text of a request (opts as M.post's) answered without a stream, its output
-- token count, its finish, and the decoded body; a status other than 200 is an error.
function M.plain_text(server, name, opts)
  local res = M.post(server, name, opts)
  assert(res.status == 200, res.body)
  local r = cjson.decode(res.body)
  if name == "openai" then
    return r.choices[1].message.content, r.usage.completion_tokens, r.choices[1].finish_reason, r
  elseif name == "anthropic" then
    return r.content[1].text, r.usage.output_tokens, r.stop_reason, r
  end
  local c = r.candidates[1]
  return c.content.parts[1].text, r.usageMetadata.candidatesTokenCount, c.finishReason, r
end

--- The events of an SSE body, each {event = name or nil, data = text}; CRLF and LF alike.
function M.sse_events(body)
  local list = {}
  for block in (body:gsub("\r\n", "\n")):gmatch("(.-)\n\n") do
    local ev = {}
    for line in block:gmatch("[^\n]+") do
      local k, v = line:match("^(%a+): ?(.*)$")
      if k == "event" then ev.event = v elseif k == "data" then ev.data = v end
    end
    list[#list + 1] = ev
  end
  return list
end

return M
