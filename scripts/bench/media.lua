--- media.lua: a 1 MB image sent by many calls at once.
--
--   tide scripts/bench/media.lua MOCKLLM_URL [CALLS] [LATENCY_MS]
--
-- Issue 18's goals: an image input is encoded once per call, not per retry (here:
-- once for the whole batch, the base64 kept on the value), and memory per call in
-- flight with a 1 MB image stays at most 1.5 MB.  CALLS predictor calls with the
-- same tide.Image (1 MB of bytes) are gathered while mockllm holds each answer
-- LATENCY_MS, the first try of each failing (a 500) so that every call is retried;
-- the resident memory is sampled while they are in flight (its peak), against the
-- same process before the batch with the image already encoded.  Prints the
-- encodings made, the memory per call in flight and the wall time.
local tide = require "tide"
local media = require "tide.media"

local url = arg[1] or os.getenv("MOCKLLM_URL")
if not url then
  io.stderr:write("usage: media.lua MOCKLLM_URL [CALLS] [LATENCY_MS]\n")
  os.exit(2)
end
local calls = math.tointeger(tonumber(arg[2] or "20"))
local latency = math.tointeger(tonumber(arg[3] or "500"))

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local kb = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kb
end

-- 1 MB of bytes that do not compress to nothing
local function megabyte()
  local parts = {}
  for i = 1, 1024 do parts[i] = string.rep(string.char(i % 251), 1024) end
  return table.concat(parts)
end
local image = tide.Image{bytes = megabyte(), mime = "image/png"}

local encodings = 0
local base64 = media.base64
media.base64 = function(s)   -- counts the encodings the calls make
  encodings = encodings + 1
  return base64(s)
end

local function lm_for(scenario)
  return tide.LM("openai/gpt-4o-mini", {api_key = "sk-bench", base_url = url .. "/v1",
    cache = false, num_retries = 2, headers = {["X-Mock-Scenario"] = scenario}})
end
local look = tide.Predict("photo: image, question -> answer")

-- one call first: the connection pool and the encoding are made before measuring
look({photo = image, question = "warm up"}, {lm = lm_for("latency=0")})
collectgarbage("collect")
collectgarbage("collect")
local before = rss_kb()

local during, left = 0, calls
local t0 = tide.now()
local tasks = {}
for i = 1, calls do
  -- an LM per call: mockllm's fail_first counts per key, and each call's first try fails
  local lm = lm_for(string.format("latency=%d;fail_first=1;status=500;key=bench-media-%d-%f",
    latency, i, t0))
  tasks[i] = function()
    local r = look({photo = image, question = "q" .. i}, {lm = lm})
    left = left - 1
    return r
  end
end
tasks[#tasks + 1] = function()          -- the most memory while the calls are in flight
  while left > 0 do
    during = math.max(during, rss_kb())
    tide.sleep(0.02)
  end
end
local results = {tide.gather(table.unpack(tasks))}
local wall = tide.now() - t0
assert(results[1].answer:find("1048576 bytes", 1, true), results[1].answer)
print(string.format("media  %d calls, a 1 MB image, retried once each  encodings %d  " ..
  "memory in flight %.2f MB per call  wall %.2f s", calls, encodings,
  (during - before) / 1024 / calls, wall))
