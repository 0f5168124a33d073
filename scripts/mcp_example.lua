-- The tools of an MCP server inside an agent: the reference filesystem server
-- (@modelcontextprotocol/server-filesystem) over a scratch directory, its tools
-- given to tide.Predict and tide.ReAct.
--   scripts/with_mockllm build/tide scripts/mcp_example.lua              (local mock server)
--   TIDE_MODEL=openai/gpt-4o-mini build/tide scripts/mcp_example.lua     (a real provider)
-- The server is the one make deps installs for the specs (spec/support/mcp), else
-- npx fetches it.  Against the mock server the model's turns are scripted
-- (mockllm's tool_turns= and react= scenario keys).
local tide = require "tide"
local script = require "tide.script"

local _, _, lm = script.setup(arg, "scripts/mcp_example.lua")
local mock = os.getenv("MOCKLLM_URL")

--- The LM, or against the mock server one whose replies follow this script.
local function scripted(key, value)
  if lm.model ~= "openai/mock" or not mock then return lm end
  local encoded = value:gsub("[^%w_()]", function(c) return string.format("%%%02X", c:byte()) end)
  return tide.LM("openai/mock", {api_key = "mock", base_url = mock .. "/v1",
    headers = {["X-Mock-Scenario"] = key .. "=" .. encoded}})
end

-- a scratch directory with two notes: the server may read only there (a fixed
-- path, so that a rerun's cached replies name the same files)
local dir = (os.getenv("TMPDIR") or "/tmp") .. "/tide-mcp-example"
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function note(name, text)
  local f = assert(io.open(dir .. "/" .. name, "w"))
  f:write(text)
  f:close()
end
note("launch.txt", "The launch moved to Thursday 09:30; the venue is the old harbour hall.\n")
note("budget.txt", "Catering: 1200 EUR. Venue: 800 EUR.\n")

local local_bin = "spec/support/mcp/node_modules/.bin/mcp-server-filesystem"
local installed = io.open(local_bin)
local command = installed and {local_bin, dir} or
  {"npx", "-y", "@modelcontextprotocol/server-filesystem@2026.8.31", dir}
if installed then installed:close() end

local fs <close> = tide.mcp.connect{command = command}
print(string.format("-- connected to %s %s (MCP %s)", fs.server_info.name, fs.server_info.version,
  fs.protocol_version))
local tools = fs:tools()
local listed = {}
for _, t in ipairs(tools) do listed[#listed + 1] = t.name end
print("  tools: " .. table.concat(listed, ", "))
print("  list_directory: " .. fs:call("list_directory", {path = dir}).text:gsub("\n", "; "))

local question = "When and where is the launch?"
local path = dir .. "/launch.txt"

print("-- tide.Predict with the server's tools")
local agent = tide.Predict("question -> answer", {tools = tools, max_iters = 4})
local r = agent({question = question},
  {lm = scripted("tool_turns", string.format('read_text_file({"path":"%s"})', path))})
for _, c in ipairs(r.tool_calls) do
  print(string.format("  turn %d  %s %s -> %s", c.turn, c.name, (tide.json.encode(c.args):gsub("\\/", "/")),
    (c.result or ""):gsub("\n$", "")))
end
print("  answer: " .. r.answer)

print("-- tide.ReAct with the server's tools")
local react = tide.ReAct("question -> answer", {tools = tools, max_iters = 5})
local p = react({question = question}, {lm = scripted("react",
  string.format('list_directory({"path":"%s"})|read_text_file({"path":"%s"})|finish({})', dir, path))})
local i = 0
while p.trajectory["tool_name_" .. i] do
  print(string.format("  step %d  %s -> %s", i, p.trajectory["tool_name_" .. i],
    tostring(p.trajectory["observation_" .. i]):gsub("\n", "; ")))
  i = i + 1
end
print("  answer: " .. p.answer)

os.execute("rm -rf '" .. dir .. "'")
