-- Embedding through tide.h: a C host drives tide from its own frame loop.
local mockllm = require "support.mockllm"

local HOST = os.getenv("SPEC_HOST_BIN") or "build/spec_host"

local function run_host(source, mode)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  local p = io.popen(string.format("%s %s %s 2>&1", HOST, path, mode or ""))
  local out = p:read("a")
  local ok, how, code = p:close()
  os.remove(path)
  -- under `make check` a sanitizer finding makes the host exit non-zero
  assert(ok, string.format("host %s with %s:\n%s", how, tostring(code), out))
  return out
end

describe("a host program embedding tide", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)

  local script = [[
    local tide = require "tide.core"
    local url = ...
    local results = {}
    tide.spawn(function()
      local a, b = tide.gather(
        function() tide.sleep(0.05); return "slept" end,
        function() return tide.request{url = "URL/health", headers = {["X-Mock-Scenario"] = "latency=50"}}.status end)
      results[#results + 1] = a .. " " .. b
    end)
    function report() print("results=" .. table.concat(results, ",")) end
  ]]

  for _, mode in ipairs({"host-loop", "own"}) do
    it("keeps its frames running while tasks wait, then closes every handle (" .. mode .. ")", function()
      local out = run_host(script:gsub("URL", server.url), mode == "own" and "--own" or "")
      assert.matches("results=slept 200", out)
      local frames = tonumber(out:match("frames=(%d+)"))
      assert.is_true(frames > 5, out)        -- the host kept rendering while tasks waited
      assert.matches("live=0", out)
      assert.matches("loop_closed=yes", out)  -- tide left no handle on the host's loop
    end)
  end

  it("tide_close cancels tasks still running and leaves nothing behind", function()
    local out = run_host(([[
      local tide = require "tide.core"
      tide.spawn(function() tide.sleep(0.01) end)
      tide.spawn(function()
        local _ <close> = setmetatable({}, {__close = function() io.write("closed on tide_close\n") end})
        tide.request{url = "URL/health", headers = {["X-Mock-Scenario"] = "fault=hang"}}
      end)
    ]]):gsub("URL", server.url), "--frames 50")
    assert.matches("live=1", out)                  -- the hanging request was still live
    assert.matches("closed on tide_close", out)    -- tide_close unwound it
    assert.matches("loop_closed=yes", out)
  end)
end)
