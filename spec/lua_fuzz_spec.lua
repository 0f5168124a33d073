-- A short, seeded run of the Lua fuzz harness (fuzz/lua/): the reply parsers
-- (chat and JSON adapters, coerce.first_object, coerce.literal, tide.sse) on
-- hostile inputs and round trips.  The seed is fixed, so a failure here repeats;
-- `make fuzz` runs the same harness for minutes with a fresh seed.
local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local harness = dofile(root .. "/fuzz/lua/harness.lua")

describe("the reply parsers under a seeded fuzz run", function()
  it("raise only typed errors, never hang, and round-trip valid replies", function()
    local report = harness.run{seed = 20261201, cases = 1000, max_size = 1024, budget = 5}
    local lines = {}
    for _, f in ipairs(report.findings) do
      if #lines < 5 then
        lines[#lines + 1] = string.format("%s case %d: %s", f.target, f.case, f.error:sub(1, 300))
      end
    end
    assert.are.equal("", table.concat(lines, "\n"))
    for _, name in ipairs{"chat", "json_adapter", "first_object", "literal", "sse"} do
      assert.are.equal(1000, report.targets[name].cases)
    end
  end)
end)
