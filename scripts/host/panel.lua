--- The game's Lua side: on frame 1 it starts a panel of three critics on a line of
-- dialogue, without waiting; the host keeps rendering; the verdict arrives through
-- on_done, inside one of the host's tide_poll calls.  Loaded by scripts/host/game.c.
--
-- The LM: TIDE_MODEL (with its provider's key), else the mockllm at MOCKLLM_URL.
-- Against mockllm a probe task asks its /__stats how many requests are in flight,
-- again and again, and counts the frames at which some were: the proof that frames
-- kept coming while the critics' requests were out (the host prints the counts).
local tide = require "tide"

local game = {verdict = nil, failed = nil, frames_in_flight = 0, peak_in_flight = 0}

local mock = os.getenv("MOCKLLM_URL")
local latency = os.getenv("GAME_LATENCY_MS") or "300"
local lm
if os.getenv("TIDE_MODEL") then
  lm = tide.LM(os.getenv("TIDE_MODEL"), {cache = false})
elseif mock then
  lm = tide.LM("openai/mock", {api_key = "mock", base_url = mock .. "/v1", cache = false,
    headers = {["X-Mock-Scenario"] = "latency=" .. latency}})
  game.probing = true   -- only mockllm has /__stats to ask
else
  error("set MOCKLLM_URL (scripts/with_mockllm build/game) or TIDE_MODEL", 0)
end
tide.configure{lm = lm}

local line = "Traveller, the bridge is out. Take the ferry at dawn, and mind the toll."

local function critic(aspect)
  return tide.Predict(tide.Signature("content -> score: int, feedback: str, approved: bool",
    "Rate this line of game dialogue for " .. aspect .. " from 1 to 10."))
end

local critics = {{"clarity", critic("clarity")}, {"tone", critic("tone")},
                 {"lore", critic("consistency with the game's lore")}}

--- The panel: tide.fanout.Panel (the critics in parallel, then a weighted verdict).
local function run_panel()
  local r = tide.fanout.Panel{critics = critics}{content = line}
  return {score = r.overall_score, approved = r.approved}
end

--- The same without the panel library: the three critics gathered by hand.
local function run_gathered()
  local jobs = {}
  for i, c in ipairs(critics) do jobs[i] = function() return c[2]{content = line} end end
  local rs = tide.gather(jobs)
  local sum, approved = 0, true
  for _, r in ipairs(rs) do
    sum = sum + r.score
    approved = approved and r.approved
  end
  return {score = sum / #rs, approved = approved}
end

local function probe(frame_of)
  local seen = {}
  while not game.verdict and not game.failed do
    local r = tide.request{url = mock .. "/__stats"}
    local n = tonumber(r.body:match('"in_flight":(%d+)'))
    if n and n > 0 then
      if n > game.peak_in_flight then game.peak_in_flight = n end
      local f = frame_of()
      if not seen[f] then
        seen[f] = true
        game.frames_in_flight = game.frames_in_flight + 1
      end
    end
  end
end

--- start(frame_of): called by the host on frame 1; returns at once.
function game.start(frame_of)
  local task = tide.spawn(tide.fanout and run_panel or run_gathered)
  task:on_done(function(t)   -- runs inside tide_poll, on the frame the answer landed
    if t:status() == "done" then
      game.verdict = t:result()
      game.verdict_frame = frame_of()
    else
      game.failed = tostring(t:error())
    end
  end)
  if game.probing then tide.spawn(probe, frame_of) end
end

--- update(frame): the game logic of one frame; true once the game can end.
function game.update(frame)
  if game.verdict then
    if frame == game.verdict_frame then
      print(string.format("frame %d: verdict: score %.1f, %s", frame, game.verdict.score,
        game.verdict.approved and "approved" or "needs work"))
    end
    return frame >= game.verdict_frame + 30   -- a half second more, then quit
  end
  if game.failed then
    print(string.format("frame %d: the panel failed: %s", frame, game.failed))
    return true
  end
  if frame % 30 == 0 then print(string.format("frame %d: critics still thinking", frame)) end
  return false
end

return game
