-- Three things at once: two sleeps and a request to the local LM server.
-- Run with a mockllm started for you:   scripts/with_mockllm build/tide scripts/hello_gather.lua
-- or against one you started yourself:  MOCKLLM_URL=http://127.0.0.1:PORT build/tide scripts/hello_gather.lua
local tide = require "tide"
local cjson = require "cjson"

local base = os.getenv("MOCKLLM_URL") or error("set MOCKLLM_URL (scripts/with_mockllm does it for you)")

local t0 = tide.now()
local a, b, c = tide.gather(
  function() tide.sleep(0.2); return "a" end,
  function() tide.sleep(0.2); return "b" end,
  function() return tide.request{url = base .. "/health"}.status end)
print(a, b, c, string.format("%.3f s (the sleeps overlapped: not 0.4 s)", tide.now() - t0))

-- Fan out: one chat-completion request per prompt, at most 4 in flight at once.
local prompts = {"Name a colour.", "Name a fruit.", "Name a planet.", "Name a river.",
                 "Name a metal.", "Name a tree."}
t0 = tide.now()
local replies = tide.map(prompts, function(prompt)
  local r = tide.request{
    url = base .. "/v1/chat/completions",
    -- a key, as the real API needs one (mockllm refuses a request without)
    headers = {["Content-Type"] = "application/json", ["X-Mock-Scenario"] = "latency=100",
               Authorization = "Bearer mock"},
    body = cjson.encode{model = "mock", messages = {{role = "user", content = prompt}}},
  }
  return cjson.decode(r.body).choices[1].message.content
end, {limit = 4})
for i, reply in ipairs(replies) do print(i, reply) end
print(string.format("%d calls, 4 at a time, 100 ms each: %.3f s", #prompts, tide.now() - t0))
