--- lua5.4 fuzz/lua/run.lua SECONDS [SEED [MAX_SIZE]]
-- The long run for `make fuzz`: each target for SECONDS, with line coverage; the
-- inputs of findings go to build-fuzz/artifacts/lua/.  Prints one line per target
-- (the figures fuzz/run tabulates) and exits 1 when anything broke.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local harness = dofile(here .. "/harness.lua")

local seconds = tonumber(arg[1]) or 60
local seed = math.tointeger(tonumber(arg[2])) or os.time()
local max = math.tointeger(tonumber(arg[3])) or 65536
local dir = os.getenv("FUZZ_ARTIFACTS") or "build-fuzz/artifacts/lua"
os.execute("mkdir -p '" .. dir .. "'")

local per = {}
local report = harness.run{seed = seed, seconds = seconds, max_size = max, coverage = true,
  on_finding = function(f)
    per[f.target] = (per[f.target] or 0) + 1
    if per[f.target] <= 20 then   -- the first few of each are enough to reproduce
      local path = string.format("%s/%s-%d.txt", dir, f.target, f.case)
      local fh = io.open(path, "wb")
      if fh then
        fh:write("-- ", f.error:gsub("\n", " "), "\n", harness.input_text(f))
        fh:close()
      end
      io.stderr:write(string.format("finding: %s case %d: %s\n", f.target, f.case,
        f.error:sub(1, 200)))
    end
  end}

print(string.format("lua seed %d, max input %d bytes, parser lines covered %d", seed, max, report.lines))
local failed = 0
for _, name in ipairs(harness.names) do
  local s = report.targets[name]
  print(string.format("lua_%s cases=%d per_sec=%d findings=%d", name, s.cases,
    math.floor(s.cases / math.max(s.seconds, 1e-9)), s.failures))
  failed = failed + s.failures
end
os.exit(failed == 0 and 0 or 1)
