-- mockllm's command line: --help, --version and the usage errors, each run of the
-- binary with stdin from /dev/null.
describe("mockllm's command line", function()
  local BIN = os.getenv("MOCKLLM_BIN") or "build/mockllm"

  --- Runs mockllm with args (stdin from /dev/null, so a server that does start stops
  -- at once) → stdout, stderr, exit status.
  local function run(args, env)
    local err = os.tmpname()
    local p = assert(io.popen(string.format("%s %s --exit-on-stdin-eof %s </dev/null 2>%s",
      env or "", BIN, args, err)))
    local out = p:read("a")
    local _, _, status = p:close()
    local f = assert(io.open(err))
    local errtext = f:read("a")
    f:close()
    os.remove(err)
    return out, errtext, status
  end

  it("--help explains every flag and lists every scenario key of the README", function()
    local out, err, status = run("--help")
    assert.are.same({0, ""}, {status, err})
    for _, flag in ipairs{"--host", "--port", "--latency-ms", "--scenario", "--no-accept",
                          "--exit-on-stdin-eof", "--quiet", "--verbose", "--help", "--version",
                          "MOCKLLM_SCENARIO", "engine/mockllm/README.md"} do
      assert.is_truthy(out:find(flag, 1, true), flag)
    end
    assert.matches("%-%-no%-accept +[^\n]*never accept", out)
    -- every key and fault in the README's X-Mock-Scenario table shows in the help
    local readme = assert(io.open("engine/mockllm/README.md")):read("a")
    local table_text = readme:match("## X%-Mock%-Scenario(.-)\n%- Error bodies")
    local keys = 0
    for cell in table_text:gmatch("\n| `([^`]+)` |") do
      local key, value = cell:match("^%.*;?([%w_]+)=([%w_]*)")
      if key then
        keys = keys + 1
        assert.is_truthy(out:find(key, 1, true), key)
        if key == "fault" or key == "error" then assert.is_truthy(out:find(value, 1, true), value) end
      end
    end
    assert.is_true(keys >= 30, keys .. " keys")
    assert.are.equal(out, (run("-h")))
  end)

  it("--version prints tide's version", function()
    local out, _, status = run("--version")
    local tide_h = assert(io.open("engine/include/tide.h")):read("a")
    local version = tide_h:match('#define TIDE_VERSION "([^"]+)"')
    assert.are.same({0, "mockllm " .. version .. "\n"}, {status, out})
    assert.are.equal(out, (run("-V")))
  end)

  it("usage errors exit 2 with one line that names the problem and points to --help", function()
    local cases = {
      {"--bogus", "unknown option: %-%-bogus"},
      {"extra", "unexpected argument: extra"},
      {"--port", "%-%-port needs a value"},
      {"--port abc", "bad value for %-%-port: 'abc'"},
      {"--port=70000", "bad value for %-%-port: '70000'"},
      {"--latency-ms -5", "bad value for %-%-latency%-ms: '%-5'"},
      {"--host nowhere", "bad value for %-%-host: 'nowhere'"},
      {"--scenario 'fault=nope'", "%-%-scenario: .*unknown fault 'nope'"},
      {"", "MOCKLLM_SCENARIO: .*'bom'", "MOCKLLM_SCENARIO='bom=7'"},
    }
    for _, c in ipairs(cases) do
      local out, err, status = run(c[1], c[3])
      assert.are.equal(2, status, c[1])
      assert.are.equal("", out, c[1])                 -- it never started listening
      assert.matches("^mockllm: " .. c[2] .. ".*%(try 'mockllm %-%-help'%)\n$", err, nil, c[1])
      assert.are.equal(1, select(2, err:gsub("\n", "")), c[1])   -- one line
    end
    -- a good command line starts, and stops at stdin's EOF with status 0
    local out, _, status = run("--port 0 --scenario 'usage=huge;bom=1' --quiet")
    assert.are.equal(0, status)
    assert.matches("^mockllm listening on http://127%.0%.0%.1:%d+\n$", out)
  end)
end)
