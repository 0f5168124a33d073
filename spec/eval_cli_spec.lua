-- `tide eval` end to end: the binary, a program file, a dataset, mockllm.
local tide = require "tide"
local results = require "tide.eval.results"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local PTY = os.getenv("SPEC_PTY_BIN") or "build/spec_pty"
local CANARY = "sk-CANARY-eval-3d9b27"

local PROGRAM = [[
local tide = require "tide"
local cli = ...
assert(cli.lm, "the CLI configures the LM from --model")
-- a circuit that opens at the second refused connection, not after the retries
if os.getenv("SPEC_CIRCUIT") then cli.lm.circuit = {failures = 2} end
local base = os.getenv("OPENAI_BASE_URL")
local function lm(scenario)
  return tide.LM("openai/mock", {base_url = base, num_retries = 0,
    headers = {["X-Mock-Scenario"] = scenario}})
end
local hang, fail = lm("fault=hang"), lm("status=500")
local critic = tide.Predict("content -> score: int, approved: bool")
local function program(inputs)
  local which
  if inputs.kind == "hang" and os.getenv("SPEC_HANG") then which = hang end
  if inputs.kind == "fail" then which = fail end
  if inputs.kind == "leak" then error("refused key " .. os.getenv("OPENAI_API_KEY")) end
  return critic{content = inputs.content, lm = which}
end
return {program = program, metric = function(ex, p) return p.score >= 60 end,
        inputs = {"content", "kind"}}
]]

local files = require "support.files"
local eventually = require "support.eventually"
local write, read, count_lines, sh_quote = files.write, files.read, files.count_lines, files.quote

local function indices(rows)
  local list = {}
  for i, row in ipairs(rows) do list[i] = row.index end
  table.sort(list)
  return list
end

describe("tide eval", function()
  local server, dir, program_path
  local n = 0

  setup(function()
    server = mockllm.start()
    dir = files.tmpdir()
    program_path = dir .. "/program.lua"
    write(program_path, PROGRAM)
  end)
  teardown(function()
    server:stop()
    os.execute("rm -rf " .. dir)
  end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  -- TIDE_MODEL and MOCKLLM_URL unset: the LM is the one each command names (or none)
  local function env(extra)
    return string.format("env -u TIDE_MODEL -u MOCKLLM_URL OPENAI_API_KEY=%s OPENAI_BASE_URL=%s/v1 TIDE_CACHE_DIR=%s/cache TERM=dumb %s",
      CANARY, server.url, dir, extra or "")
  end

  --- Runs `tide eval ARGS` to the end (in directory cwd when given) → exit code,
  -- output (stdout and stderr).
  local function run(args, extra_env, cwd)
    local out = dir .. "/output.txt"
    local cmd = string.format("%s %s eval %s >%s 2>&1", env(extra_env), TIDE, args, out)
    if cwd then cmd = string.format("cd %s && PWD=%s %s", sh_quote(cwd), sh_quote(cwd), cmd) end
    local ok, _, code = os.execute(cmd)
    return ok and 0 or code, read(out)
  end

  --- Starts `tide eval ARGS` in the background → a handle with pid, :done(), :output().
  local function start(args, extra_env)
    n = n + 1
    local base = string.format("%s/bg%d", dir, n)
    local script = string.format("%s %s eval %s >%s.out 2>&1 & echo $! >%s.pid; wait $!; echo $? >%s.rc",
      env(extra_env), TIDE, args, base, base, base)
    os.execute("sh -c " .. sh_quote(script) .. " >/dev/null 2>&1 &")
    local pid
    for _ = 1, 500 do
      pid = tonumber(read(base .. ".pid") or "")
      if pid then break end
      tide.sleep(0.01)
    end
    assert(pid, "tide eval did not start")
    return {
      pid = pid,
      rc = function() return tonumber(read(base .. ".rc") or "") end,
      output = function() return read(base .. ".out") end,
    }
  end

  local function wait_until(pred) return eventually(pred, 10) end

  --- The arguments of `tide eval` running the spec's program on openai/mock over data
  -- into out, then flags.
  local function eval_args(data, out, flags)
    return string.format("%s --model openai/mock --data %s --out %s %s", program_path, data, out, flags or "")
  end

  --- A CSV dataset of `count` drafts; kinds[i] is row i's kind.
  local function dataset(name, count, kinds)
    local lines = {"content,kind"}
    for i = 1, count do
      lines[#lines + 1] = string.format('"%s draft %d, with a comma",%s', name, i, kinds[i] or "ok")
    end
    local path = dir .. "/" .. name .. ".csv"
    write(path, table.concat(lines, "\n") .. "\n")
    return path
  end

  it("prints its usage with --help: --data and --out required, every flag, the LM and exit statuses", function()
    local code, out = run("--help")
    assert.are.equal(0, code)
    assert.matches("tide eval PROGRAM%.lua %-%-data FILE %-%-out FILE", out)
    assert.matches("Required:\n  %-%-data FILE [^\n]*\n  %-%-out FILE ", out)
    for _, flag in ipairs{"--format F", "--inputs A,B", "--concurrency N", "--model M", "--shard K/N",
        "--max-errors N", "--failure-score X", "--overwrite", "--progress MODE", "--interval S",
        "--rows N", "--wait-for-server S", "--merge OUT IN...", "-h, --help"} do
      assert.truthy(out:find("\n  " .. flag .. " ", 1, true), flag)
    end
    assert.matches("TIDE_MODEL", out)
    assert.matches("MOCKLLM_URL", out)
    assert.matches("2 a usage error", out)
  end)

  it("says what is wrong with its arguments, with status 2", function()
    local code, out = run(program_path .. " --out x.jsonl --model openai/mock")
    assert.are.equal(2, code)
    assert.matches("%-%-data FILE is required", out)
    code, out = run(program_path .. " --data x.csv --out x.jsonl --shard 5/4")
    assert.are.equal(2, code)
    assert.matches("shard must be 'K/N'", out)
    code, out = run(program_path .. " --data x.csv --out x.jsonl --frobnicate")
    assert.are.equal(2, code)
    assert.matches("unknown option '%-%-frobnicate'", out)
    code, out = run("--merge " .. dir .. "/only-out.jsonl")
    assert.are.equal(2, code)
    assert.matches("%-%-merge needs OUT and at least one IN", out)
  end)

  it("refuses --out that is neither .jsonl nor .csv, before running anything", function()
    local data = dataset("txt", 2, {})
    local code, out = run(eval_args(data, dir .. "/o.txt"))
    assert.are.equal(2, code)
    assert.matches("%-%-out FILE must end in %.jsonl or %.csv, got '[^']*o%.txt'", out)
    assert.is_nil(read(dir .. "/o.txt"))
    assert.are.equal(0, server:stats().requests)
  end)

  it("reads a dataset whose name does not say its format with --format, and asks for it otherwise", function()
    local data = dir .. "/drafts.data"
    write(data, '{"content": "fmt draft 1", "kind": "ok"}\n{"content": "fmt draft 2", "kind": "ok"}\n')
    local code, out = run(eval_args(data, dir .. "/fmt.jsonl", "--progress none"))
    assert.are.equal(2, code)
    assert.matches("cannot tell the format of [^\n]*drafts%.data from its name: pass %-%-format jsonl or %-%-format csv", out)
    code, out = run(eval_args(data, dir .. "/fmt.jsonl", "--format jsonl --progress none"))
    assert.are.equal(0, code, out)
    assert.are.equal(2, #results.read(dir .. "/fmt.jsonl"))
    code, out = run(eval_args(data, dir .. "/fmt.jsonl", "--format xml"))
    assert.are.equal(2, code)
    assert.matches("%-%-format must be jsonl or csv, got 'xml'", out)
  end)

  it("names a dataset it cannot open once, and fails on an empty one", function()
    local missing = dir .. "/missing.jsonl"
    local code, out = run(eval_args(missing, dir .. "/m.jsonl"))
    assert.are.equal(1, code)
    assert.are.equal("tide eval: cannot open " .. missing .. ": No such file or directory\n", out)
    local empty = dir .. "/empty.jsonl"
    write(empty, "\n\n")
    code, out = run(eval_args(empty, dir .. "/e.jsonl"))
    assert.are.equal(1, code)
    assert.matches("empty%.jsonl holds no examples: nothing to evaluate", out)
    assert.is_nil(read(dir .. "/e.jsonl"))
    write(dir .. "/empty.csv", "content,kind\n")
    code, out = run(eval_args(dir .. "/empty.csv", dir .. "/e.jsonl"))
    assert.are.equal(1, code)
    assert.matches("empty%.csv holds no examples", out)
  end)

  it("refuses to start without an LM, saying how to give one", function()
    local bare = dir .. "/bare.lua"
    write(bare, [[
local tide = require "tide"
local qa = tide.Predict("content -> score: int")
return qa, function(ex, p) return p.score > 0 end
]])
    local data = dataset("nolm", 2, {})
    local out_path = dir .. "/nolm.jsonl"
    local code, out = run(string.format("%s --data %s --out %s", bare, data, out_path))
    assert.are.equal(2, code)
    assert.matches("no LM: ", out)
    assert.matches("%-%-model provider/model", out)
    assert.matches("tide%.configure{lm = tide%.LM%(", out)
    assert.matches("scripts/with_mockllm build/tide eval ", out)
    assert.is_nil(read(out_path))

    -- a program that configures its own LM, or makes one, needs none from the command line
    for i, line in ipairs{
      "tide.configure{lm = tide.LM('openai/mock', {base_url = os.getenv('OPENAI_BASE_URL')})}",
      "local mine = tide.LM('openai/mock', {base_url = os.getenv('OPENAI_BASE_URL')})\n" ..
        "local inner = qa; qa = function(inputs) return inner{content = inputs.content, lm = mine} end",
    } do
      local own = string.format("%s/own%d.lua", dir, i)
      write(own, "local tide = require 'tide'\nlocal qa = tide.Predict('content -> score: int')\n" ..
        line .. "\nreturn qa, function(ex, p) return p.score > 0 end\n")
      server:reset()
      code, out = run(string.format("%s --data %s --out %s/own%d.jsonl --progress none --overwrite",
        own, data, dir, i))
      assert.are.equal(0, code, out)
      assert.matches("mean score%s+1", out)
    end
  end)

  it("exits 1 when every example failed, quoting the first errors in full", function()
    local long = dir .. "/long.lua"
    write(long, [[
local tide = require "tide"
local fail = tide.LM("openai/mock", {base_url = os.getenv("OPENAI_BASE_URL"), num_retries = 0,
  headers = {["X-Mock-Scenario"] = "status=500"}})
local critic = tide.Predict("content -> score: int")
return function(inputs)
  if inputs.kind == "fail" then return critic{content = inputs.content, lm = fail} end
  error(string.rep("context ", 15) .. "the useful words at the end, key " .. os.getenv("OPENAI_API_KEY"), 0)
end, function(ex, p) return true end
]])
    local data = dataset("allfail", 3, {[2] = "fail"})
    local code, out = run(string.format("%s --model openai/mock --data %s --out %s/allfail.jsonl --progress none",
      long, data, dir))
    assert.are.equal(1, code)
    assert.matches("errors%s+3 %(lua 2, server 1%)", out)
    assert.truthy(out:find("\n    [2 rows] lua: " .. string.rep("context ", 15) ..
      "the useful words at the end, key [redacted]\n", 1, true), out)
    assert.matches("\n    server: [^\n]*500", out)
    assert.matches("tide eval: every example failed; the first error: lua: context .- the useful words at the end", out)
    assert.is_nil(out:find(CANARY, 1, true))
    -- one example that works is a result, not a failure of the run
    data = dataset("onefine", 3, {[2] = "fail", [3] = "ok"})
    code, out = run(eval_args(data, dir .. "/onefine.jsonl", "--progress none"))
    assert.are.equal(0, code, out)
    assert.matches("errors%s+1 %(server 1%)", out)
  end)

  it("writes CSV results with a column per input, output and label field", function()
    local data = dir .. "/labelled.csv"
    write(data, 'content,kind,expected\n"csv draft 1, with a comma",ok,approve\ncsv draft 2,ok,"85"\n')
    local out_path = dir .. "/labelled-results.csv"
    local code, out = run(eval_args(data, out_path, "--progress none"))
    assert.are.equal(0, code, out)
    local text = read(out_path)
    assert.are.equal("index,id,score,error_kind,error,input.content,input.kind,output.approved," ..
      "output.score,label.expected,latency,cached,calls,input_tokens,output_tokens,cost,dataset_size",
      text:match("^[^\n]*"))
    assert.matches('\n1,%x+,1,,,"csv draft 1, with a comma",ok,%a+,%d+,approve,', text)
    assert.matches('\n2,%x+,1,,,csv draft 2,ok,%a+,%d+,85,', text)
    local rows = results.read(out_path)
    assert.are.same({expected = "approve"}, rows[1].labels)
    assert.are.equal("integer", math.type(rows[1].outputs.score))
  end)

  it("fits its progress bar to the terminal, following a resize at the next redraw", function()
    local resizing = dir .. "/resizing.lua"
    -- the second example narrows the window (stty on the terminal tide runs on)
    write(resizing, [[
local draft = 0
return function(inputs)
  draft = draft + 1
  if draft == 2 then assert(os.execute("stty cols 30")) end
  return {score = 70}
end, function() return true end
]])
    local data = dataset("resize", 3, {})
    local script = dir .. "/pty-script"
    write(script, "wait\n")
    local cmd = string.format("stty cols 60; exec %s %s eval %s --model openai/mock --data %s " ..
      "--out %s/resize.jsonl --progress bar --concurrency 1", env("TERM=xterm"), TIDE, resizing, data, dir)
    local p = io.popen(string.format("%s %s sh -c %s 2>&1", PTY, script, sh_quote(cmd)))
    local out = p:read("a")
    p:close()
    assert.matches("exit=0", out)
    local bars = {}
    for line in out:gmatch("\r(eval[^\r\27]*)\27%[K") do bars[#bars + 1] = line end
    assert.is_true(#bars >= 2, out)
    assert.is_true(#bars[1] <= 59 and #bars[1] > 29, bars[1])   -- drawn at 60 columns
    assert.matches("^eval .*1/3 ", bars[1])
    assert.is_true(#bars[#bars] <= 29, bars[#bars])               -- and at 30 after the resize
    assert.matches("^eval 3/3", bars[#bars])
  end)

  it("--merge refuses to write over one of its inputs, however the path is spelt", function()
    local data = dataset("mergeself", 2, {})
    local part = dir .. "/mergeself.jsonl"
    local code, out = run(eval_args(data, part, "--progress none"))
    assert.are.equal(0, code, out)
    local before = read(part)
    local sub = dir .. "/sub"
    os.execute("mkdir -p " .. sub)
    for _, spelling in ipairs{part, dir .. "/./mergeself.jsonl", sub .. "/../mergeself.jsonl"} do
      code, out = run(string.format("--merge %s %s/other.jsonl %s", spelling, dir, part))
      assert.are.equal(2, code, spelling)
      assert.matches("%-%-merge would overwrite its input [^\n]*mergeself%.jsonl: write OUT to a new file", out)
      assert.are.equal(before, read(part))
    end
    -- a symlink and a hard link to an input are that input too
    os.execute(string.format("ln -sf %s %s/link.jsonl && ln -f %s %s/hard.jsonl", part, dir, part, dir))
    for _, other in ipairs{dir .. "/link.jsonl", dir .. "/hard.jsonl"} do
      code, out = run(string.format("--merge %s %s", other, part))
      assert.are.equal(2, code, other)
      assert.matches("%-%-merge would overwrite its input", out)
      assert.are.equal(before, read(part))
    end
    -- a relative OUT against an absolute IN: the same file seen from the working directory
    code, out = run(string.format("--merge mergeself.jsonl %s", part), nil, dir)
    assert.are.equal(2, code, out)
    code, out = run(string.format("--merge %s/merged.txt %s", dir, part))
    assert.are.equal(2, code)
    assert.matches("%-%-merge OUT must end in %.jsonl or %.csv", out)
  end)

  it("names the file and line of a malformed dataset", function()
    local data = dir .. "/bad.csv"
    write(data, 'content,kind\nfine,ok\n"never closed,ok\n')
    local code, out = run(eval_args(data, dir .. "/bad.jsonl"))
    assert.are_not.equal(0, code)
    assert.matches("bad%.csv:3: a quoted field opened here is never closed", out)
  end)

  it("runs a program over a CSV dataset, writes the rows, never shows the key, and reruns from the cache", function()
    local data = dataset("e2e", 8, {})
    local out_path = dir .. "/e2e.jsonl"
    local code, out = run(eval_args(data, out_path, "--progress lines --interval 0 --concurrency 3"))
    assert.are.equal(0, code, out)
    assert.matches("eval 8/8%s+100%%%s+mean 1%.000%s+errors 0", out)
    assert.matches("done%s+8", out)
    assert.matches("mean score%s+1", out)
    local rows = results.read(out_path)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, indices(rows))
    for _, row in ipairs(rows) do
      assert.are.equal(string.format("e2e draft %d, with a comma", row.index), row.inputs.content)
      assert.are.equal(1, row.score)
    end
    assert.are.equal(8, server:stats().requests)
    assert.is_nil(out:find(CANARY, 1, true))
    assert.is_nil(read(out_path):find(CANARY, 1, true))

    -- the same evaluation again, started over: every call answered from the disk cache
    server:reset()
    code, out = run(eval_args(data, out_path, "--overwrite --progress none"))
    assert.are.equal(0, code, out)
    assert.are.equal(0, server:stats().requests)
    assert.matches("8 calls, 8 from the cache", out)
    assert.are.equal(8, count_lines(out_path))

    -- and once more without --overwrite: the results file already holds every row
    code, out = run(eval_args(data, out_path, "--progress none"))
    assert.are.equal(0, code, out)
    assert.matches("8 %(8 from the results file%)", out)
    assert.are.equal(0, server:stats().requests)
  end)

  it("keeps secrets out of the results even when an error quotes them", function()
    local data = dataset("leak", 2, {"leak"})
    local out_path = dir .. "/leak-results.csv"
    local code, out = run(eval_args(data, out_path, "--progress none --rows 2"))
    assert.are.equal(0, code, out)
    assert.matches("refused key %[redacted%]", read(out_path))
    assert.is_nil(read(out_path):find(CANARY, 1, true))
    assert.is_nil(out:find(CANARY, 1, true))
  end)

  it("stops at --max-errors with a non-zero status, keeping the finished rows", function()
    local data = dataset("maxerr", 6, {[3] = "fail", [4] = "fail"})
    local out_path = dir .. "/maxerr-results.csv"
    local code, out = run(eval_args(data, out_path, "--progress none --concurrency 1 --max-errors 1"))
    assert.are_not.equal(0, code)
    assert.matches("stopped after 1 failed examples", out, 1, false, read(out_path))
    assert.are.same({1, 2, 3}, indices(results.read(out_path)))
  end)

  it("resumes a run that was killed: every example present once", function()
    local data = dataset("killed", 8, {[5] = "hang", [6] = "hang", [7] = "hang", [8] = "hang"})
    local out_path = dir .. "/killed.jsonl"
    local args = eval_args(data, out_path, "--progress none --concurrency 2")
    local job = start(args, "SPEC_HANG=1")
    assert.is_true(wait_until(function()
      return count_lines(out_path) >= 4 and server:stats().in_flight >= 2
    end), "the run did not get to the hanging examples")
    os.execute("kill -KILL " .. job.pid)
    assert.is_true(wait_until(function() return job.rc() ~= nil end))
    assert.are.same({1, 2, 3, 4}, indices(results.read(out_path)))
    server:reset()
    local code, out = run(args)
    assert.are.equal(0, code, out)
    assert.matches("8 %(4 from the results file%)", out)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, indices(results.read(out_path)))
    assert.are.equal(4, server:stats().requests)
  end)

  it("runs shards that --merge combines into the unsharded result", function()
    local data = dataset("shards", 7, {[6] = "fail"})
    local whole = dir .. "/shards-whole.jsonl"
    local code, out = run(eval_args(data, whole, "--progress none"))
    assert.are.equal(0, code, out)
    local parts = {dir .. "/shard1.jsonl", dir .. "/shard2.csv", dir .. "/shard3.jsonl"}
    for k, part in ipairs(parts) do
      code, out = run(eval_args(data, part, string.format("--progress none --shard %d/3", k)))
      assert.are.equal(0, code, out)
      assert.matches("shard " .. k .. "/3 of 7", out)
    end
    local merged = dir .. "/merged.csv"
    code, out = run(string.format("--merge %s %s", merged, table.concat(parts, " ")))
    assert.are.equal(0, code, out)
    assert.matches("done%s+7", out)
    assert.matches("errors%s+1 %(server 1%)", out)
    local a, b = results.read(whole), results.read(merged)
    table.sort(a, function(x, y) return x.index < y.index end)
    assert.are.equal(#a, #b)
    for i = 1, #a do
      assert.are.equal(a[i].index, b[i].index)
      assert.are.equal(a[i].id, b[i].id)
      assert.are.equal(a[i].score, b[i].score)
      assert.are.same(a[i].outputs, b[i].outputs)
    end
    code, out = run(string.format("--merge %s/partial.jsonl %s %s", dir, parts[1], parts[3]))
    assert.are_not.equal(0, code)
    assert.matches("2 of 7 rows are missing %(3, 4%)", out)
  end)

  describe("when the server goes away", function()
    -- a server of their own, on a port it can be restarted on
    local own

    --- Stops `own` and waits until its port refuses connections.
    local function stop_own()
      own:stop()
      assert.is_true(wait_until(function()
        local ok, err = pcall(tide.request, {url = own.url .. "/", timeout = 1})
        return not ok and err.kind == "connect"
      end))
    end

    local function own_env(extra)
      return string.format("OPENAI_BASE_URL=%s/v1 %s", own.url, extra or "")
    end

    before_each(function() own = mockllm.start{latency_ms = 50} end)
    after_each(function() own:stop() end)

    it("stops within --wait-for-server with status 1, keeping every finished row, and resumes after", function()
      local data = dataset("gone", 12, {})
      local out_path = dir .. "/gone.jsonl"
      local args = eval_args(data, out_path, "--progress lines --interval 0 --concurrency 2 --wait-for-server 1")
      local job = start(args, own_env())
      assert.is_true(wait_until(function() return count_lines(out_path) >= 3 end))
      stop_own()
      assert.is_true(wait_until(function() return job.rc() ~= nil end))
      assert.are.equal(1, job.rc())
      local out = job.output()
      local host = own.url:gsub("%p", "%%%0")
      assert.matches("waiting for server at " .. host .. " %(up to 1 s%)", out)
      assert.matches("tide eval: the server at " .. host .. " refused %d+ connections in a row and " ..
        "did not come back within 1 s; %d+ finished rows are kept in .-; run the same command to resume", out)
      local kept = results.read(out_path)
      assert.is_true(#kept >= 3 and #kept < 12)
      for _, row in ipairs(kept) do assert.is_nil(row.error) end   -- no row failed for it
      -- the server is back: the same command finishes the rest, each row once
      own = mockllm.start{port = own.port}
      local code, rerun = run(args:gsub("%-%-progress lines", "--progress none"), own_env())
      assert.are.equal(0, code, rerun)
      local rows = results.read(out_path)
      assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, indices(rows))
      for _, row in ipairs(rows) do assert.is_nil(row.error) end
      assert.are.equal(12 - #kept, own:stats().by_route.openai)
    end)

    it("rides out a restart shorter than the wait: no row lost", function()
      local data = dataset("restart", 12, {})
      local out_path = dir .. "/restart.jsonl"
      local job = start(eval_args(data, out_path, "--progress lines --interval 0 --concurrency 2 " ..
        "--wait-for-server 30"), own_env("SPEC_CIRCUIT=1"))
      assert.is_true(wait_until(function() return count_lines(out_path) >= 3 end))
      stop_own()
      -- held, not failed: the server sees no call until it is back
      assert.is_true(wait_until(function() return (job.output() or ""):find("waiting for server at ", 1, true) end))
      own = mockllm.start{port = own.port, latency_ms = 50}
      assert.is_true(wait_until(function() return job.rc() ~= nil end))
      local out = job.output()
      assert.are.equal(0, job.rc(), out)
      assert.matches("waiting for server at ", out)
      local rows = results.read(out_path)
      assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, indices(rows))
      for _, row in ipairs(rows) do assert.is_nil(row.error) end
    end)
  end)

  it("says a rerun of a finished run had nothing to do, with no rate from no work", function()
    local data = dataset("done-already", 3, {})
    local out_path = dir .. "/done-already.jsonl"
    local args = eval_args(data, out_path, "--progress none")
    assert.are.equal(0, (run(args)))
    local code, out = run(args)
    assert.are.equal(0, code)
    assert.matches("nothing to do: all 3 rows were already in " .. out_path:gsub("%p", "%%%0"), out)
    assert.is_nil(out:find("examples/s", 1, true))
  end)

  it("stops cleanly on SIGINT, writing what finished and printing the summary", function()
    local data = dataset("sigint", 6, {[4] = "hang", [5] = "hang", [6] = "hang"})
    local out_path = dir .. "/sigint.jsonl"
    local job = start(eval_args(data, out_path, "--progress none --concurrency 3"), "SPEC_HANG=1")
    assert.is_true(wait_until(function()
      return count_lines(out_path) >= 3 and server:stats().in_flight >= 3
    end))
    os.execute("kill -INT " .. job.pid)
    assert.is_true(wait_until(function() return job.rc() ~= nil end))
    assert.are_not.equal(0, job.rc())
    local out = job.output()
    assert.matches("stopped%s+cancelled", out)
    assert.matches("3 finished rows are in .-run the same command again to resume", out)
    assert.are.same({1, 2, 3}, indices(results.read(out_path)))
  end)
end)
