--- fanout.lua: the tide side of the raw fan-out benchmark.
--
--   tide   scripts/bench/fanout.lua URL N [--concurrency C] [--latency-ms L] [--client NAME] [--lm]
--   lua5.4 scripts/bench/fanout.lua ...   (with LUA_PATH/LUA_CPATH pointing at lua/ and build/lib/)
--
-- The same N POSTs curl_floor.c sends, gathered at once with tide.map (at most C at a
-- time with --concurrency; a bare third argument is taken as C too).  Prints one JSON
-- line in curl_floor's shape.  CPU and peak RSS are the whole process's, read from
-- /proc (no getrusage in stock Lua), at the point where curl_floor calls getrusage:
-- the batch over, its connections still open.

local tide = require "tide"

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

-- utime and stime in /proc/self/stat are in clock ticks; ask once, before timing.
local clk_tck = 100
do
  local p = io.popen("getconf CLK_TCK 2>/dev/null")
  if p then
    clk_tck = tonumber(p:read("l")) or 100
    p:close()
  end
end

local function read_file(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

--- user and system CPU seconds of this process so far.
-- /proc/self/stat has them in whole ticks (10 ms), too coarse for small runs.  The
-- kernel's own total, in ns, is in /proc/self/schedstat (per thread; tide runs on
-- one), so the tick counts only split that total, which is how getrusage reports it.
local function cpu_times()
  -- the command name (field 2) may hold spaces: count fields after its ')'
  local rest = read_file("/proc/self/stat"):match("%) (.*)$")
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  -- rest starts at field 3, so utime (14) and stime (15) are its 12th and 13th
  local user, sys = tonumber(fields[12]) / clk_tck, tonumber(fields[13]) / clk_tck
  local threads = tonumber(read_file("/proc/self/status"):match("Threads:%s*(%d+)"))
  local ns = tonumber(read_file("/proc/self/schedstat"):match("^(%d+)"))
  if threads ~= 1 or not ns then
    return user, sys
  end
  local total = ns / 1e9
  if user + sys == 0 then
    return total, 0   -- no tick sampled yet: the kernel would call it all user time
  end
  return total * user / (user + sys), total * sys / (user + sys)
end

local function peak_rss_kb()
  return tonumber(read_file("/proc/self/status"):match("VmHWM:%s*(%d+)"))
end

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
    history_limit = 100,
  })
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

local ok, wall = tide.run(batch)
-- The engine's connections close when the process ends; collect now so the
-- responses' memory is freed inside the measurement, as curl_floor frees its own.
collectgarbage()
local user, sys = cpu_times()
io.write(string.format('{"client":"%s","n":%d,"ok":%d,"wall_s":%.6f,"cpu_user_s":%.6f,' ..
                       '"cpu_sys_s":%.6f,"maxrss_kb":%d}\n',
                       client, n, ok, wall, user, sys, peak_rss_kb()))
if ok ~= n then os.exit(1) end
