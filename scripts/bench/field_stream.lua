--- field_stream.lua: predictor:stream (field events) against plain streaming of the
-- same reply.
--
--   tide scripts/bench/field_stream.lua MOCKLLM_URL [CALLS] [ADAPTER]
--
-- Issue 18's goal: field streaming adds at most 10 % CPU over plain streaming of
-- the same reply.  Every call streams one ~2 KB ChatAdapter reply of four fields
-- (mockllm's reply=, cut into its SSE deltas); "plain" formats the predictor's
-- request, streams it with lm:stream and parses the text at the end (what a caller
-- does to get a Prediction from a stream, the Prediction made), "fields" is predictor:stream,
-- which also splits the fields as they come.  The sides take turns, CALLS each,
-- without the cache; prints CPU ms per call for each and the overhead.
local tide = require "tide"
local chat = require "tide.adapters.chat"
local common = require "tide.adapters.common"
local prediction = require "tide.prediction"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local measure = require "measure"

local url = arg[1] or os.getenv("MOCKLLM_URL")
if not url then
  io.stderr:write("usage: field_stream.lua MOCKLLM_URL [CALLS]\n")
  os.exit(2)
end
local calls = math.tointeger(tonumber(arg[2] or "300"))

local function paragraph(word, n)
  local out = {}
  for i = 1, n do out[i] = word .. " " .. i end
  return table.concat(out, " ")
end
local REPLY = "[[ ## reasoning ## ]]\n" .. paragraph("step", 120) .. "\n\n[[ ## answer ## ]]\n" ..
  paragraph("word", 80) .. "\n\n[[ ## score ## ]]\n7\n\n[[ ## note ## ]]\n" ..
  paragraph("note", 40) .. "\n\n[[ ## completed ## ]]\n"
local scenario = "reply=" .. REPLY:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end)

local lm = tide.LM("openai/gpt-4o-mini", {api_key = "sk-bench", base_url = url .. "/v1",
  cache = false, headers = {["X-Mock-Scenario"] = scenario}})
local pr = tide.Predict("question -> reasoning, answer, score: int, note", {lm = lm})

local function plain()
  local pieces = {}
  local request = common.request(chat, pr.signature, chat.format(pr.signature, {question = "q"}), {})
  for piece in lm:stream(request) do pieces[#pieces + 1] = piece end
  local outputs = chat.parse(pr.signature, table.concat(pieces))
  return prediction.prediction(outputs, {outputs})
end

local function fields()
  local chunks, pred = 0, nil
  for ev in pr:stream({question = "q"}) do
    if ev.prediction then pred = ev.prediction else chunks = chunks + 1 end
  end
  assert(chunks >= 4 and pred.score == 7)
  return pred
end

-- Warm both paths (connections, the system message cache), then alternate in
-- blocks so that drift in the machine's load falls on both sides alike.
plain()
fields()
local cpu = {plain = 0, fields = 0}
local block = 10
for _ = 1, math.ceil(calls / block) do
  for _, side in ipairs{"plain", "fields"} do
    local m = measure.start()
    for _ = 1, block do
      if side == "plain" then plain() else fields() end
    end
    cpu[side] = cpu[side] + m:cpu()
  end
end
local n = math.ceil(calls / block) * block
local p, f = cpu.plain * 1000 / n, cpu.fields * 1000 / n
print(string.format("field-stream  %d calls of a %d-byte reply  plain %.3f ms/call  fields %.3f ms/call  " ..
  "overhead %+.1f %%", n, #REPLY, p, f, (f - p) / p * 100))
