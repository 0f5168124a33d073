-- The fault catalogue (spec/support/faults.lua): every fault mockllm injects, on
-- each wire format, through each layer; each beside a healthy sibling call.
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local faults = require "support.faults"

describe("fault catalogue", function()
  local env, by_fault = nil, {}

  setup(function()
    env = faults.start(mockllm)
    for _, cell in ipairs(faults.run_all(env, faults.cells())) do
      local list = by_fault[cell.fault.name] or {}
      list[#list + 1] = cell
      by_fault[cell.fault.name] = list
    end
  end)

  teardown(function()
    if env then env:stop() end
  end)

  for _, fault in ipairs(faults.FAULTS) do
    it(fault.name .. ": typed outcome on every layer and format, siblings intact", function()
      local cells = by_fault[fault.name]
      assert.is_true(#cells >= 3)
      for _, cell in ipairs(cells) do
        local ok, why = faults.check(cell)
        assert(ok, string.format("%s / %s / %s%s: %s", fault.name, cell.layer, cell.format.name,
          cell.transient and " (transient)" or "", tostring(why)))
      end
    end)
  end

  for _, format in ipairs(faults.FORMATS) do
    it("server restart during a run: every call answered (" .. format.name .. ")", function()
      local r = faults.restart(mockllm, format)
      assert.are.equal("recovered", r.outcome)
      assert.are.equal(r.calls, r.answered)
      assert.is_true(r.second_server_requests >= 1)   -- retried against the new server
    end)
  end

  it("leaves no task, transfer, timer or reference behind", function()
    env:stop()
    env = nil
    assert_clean()
  end)
end)
