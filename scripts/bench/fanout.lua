--- fanout.lua: the tide side of the raw fan-out benchmark.
--
--   tide   scripts/bench/fanout.lua URL N [--concurrency C] [--latency-ms L] [--client NAME] [--lm]
--   lua5.4 scripts/bench/fanout.lua ...   (with LUA_PATH/LUA_CPATH pointing at lua/ and build/lib/)
--
-- The same N POSTs curl_floor.c sends, gathered at once with tide.map (at most C at a
-- time with --concurrency; a bare third argument is taken as C too).  Prints one JSON
-- line in curl_floor's shape: CPU over the batch, read where curl_floor reads it (the
-- batch over, its connections still open), and the process's peak RSS.
--
-- --lm: through tide.LM instead of raw tide.request; the cap is then the LM's own
-- max_parallel_requests gate, as a user would set it.

local tide = require "tide"
-- measure.lua sits beside this script
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"

local PROMPT_CHARS = 900   -- curl_floor.c's PROMPT_CHARS: the body comes to ~1 KB

local function usage()
  io.stderr:write("usage: fanout.lua URL N [--concurrency C] [--latency-ms L] [--client NAME]\n")
  os.exit(2)
end

local function count(s, min)
  local v = math.tointeger(tonumber(s))
  if v == nil or v < min then usage() end
  return v
end

local url, n = arg[1], arg[2] and count(arg[2], 1)
if not url or not n then usage() end
local concurrency, latency_ms, client, through_lm = 0, nil, nil, false
do
  local i = 3
  while arg[i] do
    local a = arg[i]
    if a == "--concurrency" then concurrency = count(arg[i + 1], 0); i = i + 2
    elseif a == "--latency-ms" then latency_ms = count(arg[i + 1], 0); i = i + 2
    elseif a == "--client" and arg[i + 1] then client = arg[i + 1]; i = i + 2
    elseif a == "--lm" then through_lm = true; i = i + 1
    elseif i == 3 and tonumber(a) then concurrency = count(a, 0); i = i + 1
    else usage() end
  end
end
-- The tide binary runs this chunk as a task; stock lua5.4 runs it on the main flow.
client = client or (tide.current() and "tide" or "tide-lua5.4")

local body = string.format('{"model":"mock","messages":[{"role":"user","content":"%s"}]}',
                           string.rep("x", PROMPT_CHARS))
local headers = { ["content-type"] = "application/json" }
if latency_ms then headers["x-mock-scenario"] = "latency=" .. latency_ms end

local slots = {}
for i = 1, n do slots[i] = i end

local function post()
  return tide.request{ url = url, method = "POST", body = body, headers = headers }
end

-- --lm: the same calls through tide.LM and its OpenAI provider (request building,
-- response parsing, usage, history), with retries and the cache off so every call
-- is one request.
if through_lm then
  local lm = tide.LM("openai/mock", {
    base_url = url:gsub("/chat/completions$", ""), api_key = "bench-key", cache = false,
    num_retries = 0, headers = latency_ms and {["x-mock-scenario"] = "latency=" .. latency_ms} or nil,
    history_limit = 100, max_parallel_requests = concurrency > 0 and concurrency or nil,
  })
  concurrency = 0
  local messages = {{role = "user", content = string.rep("x", PROMPT_CHARS)}}
  post = function()
    local r = lm:call{messages = messages}
    return {status = r.text and 200 or 0}
  end
end

local function batch()
  local opts = concurrency > 0 and { limit = concurrency } or nil
  local t0 = tide.now()
  local responses = tide.map(slots, post, opts)
  local wall = tide.now() - t0
  local ok = 0
  for i = 1, n do
    if responses[i].status == 200 then ok = ok + 1 end
  end
  return ok, wall
end

local meter = measure.start()
local ok, wall = tide.run(batch)
-- The engine's connections close when the process ends; collect now so the
-- responses' memory is freed inside the measurement, as curl_floor frees its own.
collectgarbage()
io.write(meter:line(client, n, ok, wall))
if ok ~= n then os.exit(1) end
