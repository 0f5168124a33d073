-- tide.Evaluate over mockllm: scores, failures, max_errors, cancellation, the cache,
-- resuming, shards, progress lines.
local tide = require "tide"
local lm_mod = require "tide.lm"
local results = require "tide.eval.results"
local csv = require "tide.eval.csv"
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local lm_server = require "support.lm_server"

local SIG = "content -> score: int, approved: bool"

local files = require "support.files"
local read_file, count_lines = files.read, files.count_lines

--- A writer that keeps what it is given, for the output of a run.
local function capture()
  local parts = {}
  return {write = function(_, s) parts[#parts + 1] = s end,
          text = function() return table.concat(parts) end}
end

local function indices(rows)
  local list = {}
  for i, row in ipairs(rows) do list[i] = row.index end
  return list
end

--- The indices of a results file's rows, sorted: a file holds rows in the order
-- they finished, which concurrent rows do not fix.
local function file_indices(path)
  local list = indices(results.read(path))
  table.sort(list)
  return list
end

describe("tide.Evaluate", function()
  local env, server, dir
  local tag_n = 0

  setup(function()
    env = lm_server.start()
    server, dir = env.server, env.dir
  end)
  teardown(function() env:stop() end)
  before_each(function() server:reset() end)
  after_each(assert_clean)

  -- every spec's drafts are its own, so one spec's cache never answers another's
  local function tag()
    tag_n = tag_n + 1
    return string.format("spec%d-%d", tag_n, math.random(1, 1e9))
  end

  local function lm(scenario)
    return tide.LM("openai/mock", {api_key = "sk-test-key", base_url = server.url .. "/v1",
      num_retries = 0, headers = scenario and {["X-Mock-Scenario"] = scenario} or nil})
  end

  --- An LM whose server has stopped → the LM, the url it was at.
  local function dead_lm()
    local gone = mockllm.start()
    gone:stop()
    return tide.LM("openai/mock", {api_key = "sk-test-key", base_url = gone.url .. "/v1",
      num_retries = 0, cache = false}), gone.url
  end

  --- n drafts; kinds[i] picks the LM example i goes to ("ok", "fail", "hang", "flaky").
  local function devset(n, kinds, t)
    local rows = {}
    for i = 1, n do
      rows[i] = {content = string.format("%s draft %d", t, i), kind = kinds[i] or "ok", good = true}
    end
    return tide.dataset.from_table(rows, {inputs = {"content", "kind"}})
  end

  local function program(lms)
    local critic = tide.Predict(SIG)
    return function(inputs)
      local which = lms[inputs.kind]
      if type(which) == "function" then which = which(inputs) end
      return critic{content = inputs.content, lm = which}
    end
  end

  -- mockllm scores 60..95, so every answered draft scores 1
  local function metric(example, prediction)
    return example.good and prediction.score >= 60
  end

  local function standard_lms()
    return {ok = lm(), fail = lm("status=500"), hang = lm("fault=hang")}
  end

  it("scores every example, records failures with the failure score, and writes each row once", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local out = capture()
    local r = tide.Evaluate{
      devset = devset(10, {[2] = "fail", [5] = "fail", [9] = "fail"}, t),
      metric = metric, program = program(standard_lms()),
      concurrency = 4, failure_score = -1, save_as = path, output = out,
      display_progress = false, display_table = 3,
    }
    assert.are.equal(10, r.done)
    assert.are.equal(3, r.errors)
    assert.are.equal((7 - 3) / 10, r.score)
    assert.is_true(r.complete)
    assert.is_nil(r.stopped)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, indices(r.rows))
    for _, row in ipairs(r.rows) do
      if row.index == 2 or row.index == 5 or row.index == 9 then
        assert.are.equal("server", row.error.kind)
        assert.are.equal(-1, row.score)
        assert.is_nil(row.outputs)
      else
        assert.is_nil(row.error)
        assert.are.equal(1, row.score)
        assert.are.equal("integer", math.type(row.outputs.score))
        assert.are.equal(1, row.usage.calls)
        assert.is_true(row.usage.input > 0 and row.usage.output > 0)
        assert.is_false(row.cached)
      end
      assert.are.equal(string.format("%s draft %d", t, row.index), row.inputs.content)
      assert.is_number(row.latency)
    end
    assert.are.equal(10, server:stats().requests)
    assert.are.equal(7, r.usage.calls)   -- the calls that were answered
    assert.is_true(r.usage.total > 0)
    assert.are.same({server = 3}, r.error_kinds)
    -- the file: the same rows, one line each, nothing lost
    local rows = results.read(path)
    table.sort(rows, function(a, b) return a.index < b.index end)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, indices(rows))
    assert.are.equal("server", rows[5].error.kind)
    assert.are.equal(r.rows[4].outputs.score, rows[4].outputs.score)
    assert.is_nil(read_file(path):find("sk-test-key", 1, true))
    -- the summary table
    local text = out.text()
    assert.matches("done%s+10", text)
    assert.matches("errors%s+3 %(server 3%)", text)
    assert.matches("mean score%s+0%.400", text)
    assert.matches("%(7 more rows in ", text)
  end)

  it("stops at max_errors, keeping every finished row in the result and the file", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".csv"
    local kinds = {}
    for i = 3, 20, 2 do kinds[i] = "fail" end
    local r = tide.Evaluate{
      devset = devset(20, kinds, t), metric = metric, program = program(standard_lms()),
      concurrency = 1, max_errors = 2, save_as = path, display_progress = false,
      display_table = false,
    }
    assert.are.equal("max_errors", r.stopped)
    assert.is_false(r.complete)
    assert.are.same({1, 2, 3, 4, 5}, indices(r.rows))
    assert.are.equal(2, r.errors)
    assert.are.same({1, 2, 3, 4, 5}, file_indices(path))
    assert.are.equal(5, server:stats().requests)
  end)

  it("with many running at once, max_errors still loses no finished row", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local kinds = {}
    for i = 1, 40, 3 do kinds[i] = "fail" end
    local r = tide.Evaluate{
      devset = devset(40, kinds, t), metric = metric, program = program(standard_lms()),
      concurrency = 8, max_errors = 3, save_as = path, display_progress = false,
      display_table = false,
    }
    assert.are.equal("max_errors", r.stopped)
    assert.is_true(r.errors >= 3)
    local rows = results.read(path)
    assert.are.equal(#r.rows, #rows)
    local seen = {}
    for _, row in ipairs(rows) do
      assert.is_nil(seen[row.index])
      seen[row.index] = true
    end
  end)

  it("when its task is cancelled, stops, keeps the finished rows, prints the summary and raises cancelled", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local out = capture()
    local lms = standard_lms()
    local run = tide.spawn(tide.Evaluate, {
      devset = devset(8, {[5] = "hang", [6] = "hang", [7] = "hang", [8] = "hang"}, t),
      metric = metric, program = program(lms), concurrency = 8, save_as = path,
      output = out, display_progress = false,
    })
    for _ = 1, 500 do
      if count_lines(path) >= 4 and server:stats().in_flight >= 4 then break end
      tide.sleep(0.01)
    end
    assert.are.equal(4, count_lines(path))
    run:cancel()
    local ok, err = pcall(run.wait, run)
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "cancelled"))
    assert.are.equal("cancelled", run:status())
    assert.are.equal("cancelled", err.result.stopped)
    assert.are.same({1, 2, 3, 4}, indices(err.result.rows))
    assert.are.same({1, 2, 3, 4}, file_indices(path))
    assert.matches("stopped%s+cancelled", out.text())
    assert.matches("done%s+4", out.text())
    -- the hanging requests were aborted, not left behind
    local s = server:wait_for(function(st) return st.aborted >= 4 end)
    assert.are.equal(4, s.aborted)
  end)

  it("a rerun is answered from the cache: mockllm sees no request", function()
    local t = tag()
    local set = devset(6, {}, t)
    local prog = program(standard_lms())
    local first = tide.Evaluate{devset = set, metric = metric, program = prog,
      save_as = dir .. "/" .. t .. "-1.jsonl", display_progress = false, display_table = false}
    assert.are.equal(6, server:stats().requests)
    server:reset()
    lm_mod.default_cache():clear_memory()   -- as a new process would: from the disk cache
    local second = tide.Evaluate{devset = set, metric = metric, program = prog,
      save_as = dir .. "/" .. t .. "-2.jsonl", display_progress = false, display_table = false}
    assert.are.equal(0, server:stats().requests)
    assert.are.equal(first.score, second.score)
    for i, row in ipairs(second.rows) do
      assert.is_true(row.cached)
      assert.are.equal(0, row.usage.input)
      assert.are.same(first.rows[i].outputs, row.outputs)
    end
    assert.are.equal(6, second.usage.cache_hits)
  end)

  it("resumes: keeps the finished rows, reruns failed and cut-short ones, each example once", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    -- a flaky example fails its first request (mockllm's fail_first, keyed per example)
    local flaky = function(inputs)
      return lm("fail_first=1;status=503;key=" .. inputs.content:gsub("%W", "_"))
    end
    local lms = {ok = lm(), flaky = flaky}
    local set = devset(8, {[2] = "flaky", [7] = "flaky"}, t)
    local opts = {devset = set, metric = metric, program = program(lms), save_as = path,
      resume = true, display_progress = false, display_table = false}
    local first = tide.Evaluate(opts)
    assert.are.equal(2, first.errors)
    -- the run died while writing a row: half a line at the end of the file
    local f = assert(io.open(path, "a"))
    f:write('{"index":9,"id":"abc","sco')
    f:close()
    local before = server:stats().requests   -- (a reset would forget fail_first's counts)
    local second = tide.Evaluate(opts)
    assert.are.equal(6, second.resumed)
    assert.are.equal(0, second.errors)
    assert.are.equal(8, second.done)
    assert.are.equal(1, second.score)
    assert.are.equal(before + 2, server:stats().requests)   -- only the two that had failed
    local rows = results.read(path)
    table.sort(rows, function(a, b) return a.index < b.index end)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, indices(rows))
    for _, row in ipairs(rows) do assert.is_nil(row.error) end
    -- a third run has nothing left to do
    server:reset()
    local third = tide.Evaluate(opts)
    assert.are.equal(8, third.resumed)
    assert.are.equal(0, server:stats().requests)
  end)

  it("will not resume into results of another dataset", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local lms = standard_lms()
    tide.Evaluate{devset = devset(3, {}, t), metric = metric, program = program(lms),
      save_as = path, display_progress = false, display_table = false}
    local ok, err = pcall(tide.Evaluate, {devset = devset(3, {}, t .. "-other"), metric = metric,
      program = program(lms), save_as = path, resume = true, display_progress = false,
      display_table = false})
    assert.is_false(ok)
    assert.matches("holds a different example at row 1", tostring(err))
  end)

  it("shards and their merge equal the whole run", function()
    local t = tag()
    local set = devset(10, {[4] = "fail"}, t)
    local lms = standard_lms()
    local function run(shard, path)
      return tide.Evaluate{devset = set, metric = metric, program = program(lms), shard = shard,
        save_as = path, display_progress = false, display_table = false}
    end
    local whole = run(nil, dir .. "/" .. t .. "-whole.jsonl")
    local paths, sizes = {}, {}
    for k = 1, 3 do
      paths[k] = dir .. "/" .. t .. "-part" .. k .. (k == 2 and ".csv" or ".jsonl")
      local part = run(k .. "/3", paths[k])
      sizes[k] = part.total
      assert.are.same({k, 3}, part.shard)
    end
    assert.are.same({3, 3, 4}, sizes)
    local merged, size, missing = results.merge(paths)
    assert.are.equal(10, size)
    assert.are.same({}, missing)
    assert.are.equal(#whole.rows, #merged)
    for i, row in ipairs(whole.rows) do
      local m = merged[i]
      assert.are.equal(row.index, m.index)
      assert.are.equal(row.id, m.id)
      assert.are.equal(row.score, m.score)
      assert.are.same(row.inputs, m.inputs)
      assert.are.same(row.outputs, m.outputs)
      assert.are.equal(row.error and row.error.kind, m.error and m.error.kind)
    end
    local _, _, gaps = results.merge({paths[1], paths[3]})
    assert.are.same({4, 5, 6}, gaps)
  end)

  it("prints plain progress lines when not on a terminal", function()
    local t = tag()
    local out = capture()
    tide.Evaluate{devset = devset(5, {[3] = "fail"}, t), metric = metric,
      program = program(standard_lms()), concurrency = 1, display_progress = "lines",
      progress_interval = 0, display_table = false, output = out}
    local lines = {}
    for line in out.text():gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(5, #lines)
    assert.matches("^eval 1/5%s+20%%%s+mean 1%.000%s+errors 0%s+%-/s%s+ETA %?", lines[1])   -- one item: no rate
    assert.matches("^eval 3/5%s+60%%%s+mean 0%.667%s+errors 1", lines[3])
    assert.matches("^eval 5/5%s+100%%%s+mean 0%.800%s+errors 1%s+[%d.%-]+/s%s+in %d+:%d%d$", lines[5])
  end)

  it("redacts secrets from the rows it writes", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local secret = "sk-CANARY-5e1f0a"
    local r = tide.Evaluate{devset = devset(2, {}, t), metric = metric,
      program = function() error("the key " .. secret .. " was refused") end,
      save_as = path, secrets = {secret}, display_progress = false, display_table = false}
    assert.are.equal(2, r.errors)
    assert.are.equal("lua", r.rows[1].error.kind)
    assert.matches("%[redacted%] was refused", r.rows[1].error.message)
    assert.is_nil(read_file(path):find(secret, 1, true))
  end)

  it("counts a metric that fails or answers nonsense as a failed example", function()
    local t = tag()
    local r = tide.Evaluate{devset = devset(2, {}, t), program = program(standard_lms()),
      metric = function(ex) if ex.content:match("1$") then error("boom") end return "yes" end,
      display_progress = false, display_table = false}
    assert.are.equal(2, r.errors)
    assert.are.same({metric = 2}, r.error_kinds)
  end)

  it("makes an evaluator to call with several programs", function()
    local t = tag()
    local evaluate = tide.Evaluate{devset = devset(3, {}, t), metric = metric,
      display_progress = false, display_table = false}
    local a = evaluate(program(standard_lms()))
    local b = evaluate(function() return {score = 10} end)
    assert.are.equal(1, a.score)
    assert.are.equal(0, b.score)
  end)

  it("makes a program that returns nil or nothing a row error, never a score", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local scored = 0
    local r = tide.Evaluate{devset = devset(3, {}, t), save_as = path,
      program = function(inputs)
        if inputs.content:match("1$") then return nil end
        if inputs.content:match("2$") then return end
        return cjson.null
      end,
      metric = function() scored = scored + 1 return true end,
      display_progress = false, display_table = false}
    assert.are.equal(0, scored)
    assert.are.equal(3, r.errors)
    assert.are.equal(0, r.score)
    assert.are.same({program = 3}, r.error_kinds)
    for _, row in ipairs(r.rows) do
      assert.matches("^program returned nil", row.error.message)
      assert.is_nil(row.outputs)
    end
    assert.is_nil(read_file(path):find("userdata", 1, true))
  end)

  it("never lets JSON's null into outputs: a null field is absent, a null in a list stays null", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local out = capture()
    local r = tide.Evaluate{devset = devset(1, {}, t), save_as = path, output = out,
      program = function() return cjson.decode('{"answer": null, "score": 70, "tags": ["a", null, "b"]}') end,
      metric = function(_, p) return p.score == 70 end,
      display_progress = false, display_table = 1}
    assert.are.equal(1, r.score)
    local outputs = r.rows[1].outputs
    assert.is_nil(outputs.answer)
    assert.are.equal(70, outputs.score)
    assert.are.equal(cjson.null, outputs.tags[2])
    assert.are.same({score = 70, tags = {"a", nil, "b"}}, results.read(path)[1].outputs)
    assert.is_nil(read_file(path):find("userdata", 1, true))
    assert.is_nil(out.text():find("userdata", 1, true))
  end)

  it("keeps each example's labels beside its inputs and outputs, in JSONL and CSV alike", function()
    local t = tag()
    local rows = {}
    for i = 1, 3 do
      rows[i] = {content = string.format("%s draft %d", t, i), expected = i * 10,
        note = i == 2 and "85" or "plain, with a comma", tags = {"x", "y"}}
    end
    local set = tide.dataset.from_table(rows, {inputs = {"content"}})
    local critic = tide.Predict(SIG)
    local prog = function(inputs) return critic{content = inputs.content, lm = lm()} end
    local function run(path)
      return tide.Evaluate{devset = set, metric = function(_, p) return p.score >= 60 end,
        program = prog, save_as = path, display_progress = false, display_table = false}
    end
    local jsonl, csv_path = dir .. "/" .. t .. ".jsonl", dir .. "/" .. t .. ".csv"
    local r = run(jsonl)
    assert.are.equal(1, run(csv_path).score)
    assert.are.same({expected = 20, note = "85", tags = {"x", "y"}}, r.rows[2].labels)
    -- one column per field, a nested value as JSON
    local header = read_file(csv_path):match("^[^\n]*")
    assert.are.equal("index,id,score,error_kind,error,input.content,output.approved,output.score," ..
      "label.expected,label.note,label.tags,latency,cached,calls,input_tokens,output_tokens,cost," ..
      "dataset_size", header)
    assert.matches(',"%[""x"",""y""%]",', read_file(csv_path))
    local a, b = results.read(jsonl), results.read(csv_path)
    table.sort(a, function(x, y) return x.index < y.index end)
    table.sort(b, function(x, y) return x.index < y.index end)
    for i = 1, 3 do
      assert.are.same(r.rows[i].labels, a[i].labels)
      assert.are.same(a[i].inputs, b[i].inputs)
      assert.are.same(a[i].outputs, b[i].outputs)
      assert.are.equal("integer", math.type(b[i].outputs.score))
    end
    assert.are.same(a[1].labels, b[1].labels)
    -- CSV has no types: JSONL keeps the string "85", CSV reads it back as JSON
    assert.are.equal("85", a[2].labels.note)
    assert.are.equal(85, b[2].labels.note)
  end)

  it("widens a CSV file's header when a later row brings a new output field", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".csv"
    local r = tide.Evaluate{devset = devset(3, {}, t), save_as = path, concurrency = 1,
      program = function(inputs)
        if inputs.content:match("1$") then return {answer = "yes"} end
        return {answer = "no", reason = "too short"}
      end,
      metric = function(_, p) return p.answer == "yes" end,
      display_progress = false, display_table = false}
    assert.are.equal(3, r.done)
    local text = read_file(path)
    assert.matches("^index,id,score,error_kind,error,input.content,input.kind,output.answer,output.reason,label.good,", text)
    assert.are.equal(4, count_lines(path))
    local rows = results.read(path)
    assert.are.same({answer = "yes"}, rows[1].outputs)
    assert.are.same({answer = "no", reason = "too short"}, rows[3].outputs)
  end)

  it("resumes into a CSV results file of the older layout (inputs and outputs as JSON)", function()
    local t = tag()
    local set = devset(4, {}, t)
    local prog = program(standard_lms())
    local first = tide.Evaluate{devset = set, metric = metric, program = prog,
      display_progress = false, display_table = false}
    -- rows 1-3 as the older writer laid them out
    local old = {"index,id,score,error_kind,error,latency,cached,calls,input_tokens,output_tokens," ..
      "cost,inputs,outputs,dataset_size\n"}
    for i = 1, 3 do
      local row = first.rows[i]
      old[#old + 1] = csv.encode_row{row.index, row.id, row.score, "", "", "0.010", "false", 1, 5, 5,
        0, cjson.encode(row.inputs), cjson.encode(row.outputs), 4}
    end
    local path = dir .. "/" .. t .. ".csv"
    files.write(path, table.concat(old))
    local rows = results.read(path)
    assert.are.same(first.rows[2].outputs, rows[2].outputs)
    assert.are.same(first.rows[2].inputs, rows[2].inputs)
    local second = tide.Evaluate{devset = set, metric = metric, program = prog, save_as = path,
      resume = true, display_progress = false, display_table = false}
    assert.are.equal(3, second.resumed)
    assert.are.equal(1, second.ran)
    rows = results.read(path)
    assert.are.same({1, 2, 3, 4}, indices(rows))
    assert.matches("^index,id,score,error_kind,error,input%.content,input%.kind,", read_file(path))
    for i = 1, 4 do
      assert.are.same(first.rows[i].inputs, rows[i].inputs)
      assert.are.same(first.rows[i].outputs, rows[i].outputs)
    end
    assert.are.same({good = true}, rows[4].labels)
  end)

  it("stops at a server that stays away, writing no row for the examples it cut short", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local dead, gone_url = dead_lm()
    local out = capture()
    local ok, err = pcall(tide.Evaluate, {devset = devset(4, {[3] = "dead"}, t), metric = metric,
      program = program{ok = lm(), dead = dead}, concurrency = 1, save_as = path,
      wait_for_server = 0.2, display_progress = "lines", progress_interval = 0, output = out})
    assert.is_false(ok)
    assert.are.equal("server_down", err.kind)
    assert.are.equal("server_down", err.result.stopped)
    assert.are.same({1, 2}, file_indices(path))   -- row 3 cut short, row 4 never ran
    assert.matches("waiting for server at " .. gone_url:gsub("%p", "%%%0") .. " %(up to 0%.2 s%)", out.text())
    assert.matches("stopped%s+the server went away", out.text())
  end)

  it("keeps no row a panel judged without its server: the run stops at server_down", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local dead = dead_lm()
    local panel = tide.fanout.Panel{critics = {   -- on_failure = "drop": a failed critic is left out
      {"live", tide.Predict(SIG, {lm = lm()})},
      {"dead", tide.Predict(SIG, {lm = dead})},
    }}
    local ok, err = pcall(tide.Evaluate, {devset = devset(3, {}, t), save_as = path, concurrency = 1,
      metric = function() return 1 end,
      program = function(inputs) return panel{content = inputs.content} end,
      wait_for_server = 0.1, display_progress = false, display_table = false})
    assert.is_false(ok)
    assert.are.equal("server_down", err.kind)
    assert.are.equal(0, count_lines(path))   -- the dropped critic's row is not a finished one
  end)

  it("keeps each attempt of a failed example in its row, and says them in the summary", function()
    local t = tag()
    local path = dir .. "/" .. t .. ".jsonl"
    local retried = tide.LM("openai/mock", {api_key = "sk-test-key", base_url = server.url .. "/v1",
      num_retries = 2, cache = false, headers = {["X-Mock-Scenario"] = "status=503;retry_after=0"}})
    local out = capture()
    local r = tide.Evaluate{devset = devset(2, {[2] = "retried"}, t), metric = metric,
      program = program{ok = lm(), retried = retried}, save_as = path, display_progress = false,
      output = out}
    local e = r.rows[2].error
    assert.are.equal("server", e.kind)
    assert.are.equal(3, e.attempts)
    assert.are.equal(3, #e.tried)
    for i, a in ipairs(e.tried) do
      assert.are.equal(503, a.status)
      if i < 3 then assert.is_number(a.delay) end
    end
    assert.are.same(e.tried, results.read(path)[2].error.tried)   -- in the file as well
    assert.matches("%(tries: 503 ×3%)", out.text())
    assert.are.equal("timeout, then refused ×3, then server down", require("tide.eval.report").attempts_text{
      {kind = "timeout", cause = "timeout"}, {kind = "transport", cause = "connect"},
      {kind = "transport", cause = "connect"}, {kind = "transport", cause = "connect"},
      {kind = "server_down"}})
  end)

  it("quotes the first distinct errors in full in the summary", function()
    local t = tag()
    local out = capture()
    local tail = "the useful words at the end of a long message"
    local long = string.rep("context ", 20) .. tail
    local r = tide.Evaluate{devset = devset(5, {[2] = "fail"}, t), output = out,
      program = function(inputs)
        if inputs.kind == "fail" then return program(standard_lms())(inputs) end
        if inputs.content:match("[13]$") then error(long, 0) end
        return {score = 70}
      end,
      metric = metric, display_progress = false, display_table = 5}
    assert.are.equal(3, r.errors)
    local text = out.text()
    assert.matches("errors%s+3 %(lua 2, server 1%)\n", text)
    assert.truthy(text:find("    [2 rows] lua: " .. long .. "\n", 1, true))
    assert.matches("\n    server: [^\n]*500", text)
  end)

  it("raises at once on misuse, naming the argument", function()
    local set = devset(1, {}, "x")
    local function msg(opts)
      local ok, err = pcall(tide.Evaluate, opts)
      assert.is_false(ok)
      return tostring(err)
    end
    assert.matches("bad argument #1 to 'Evaluate' %(table expected, got string%)", msg("x"))
    assert.matches("bad argument 'devset' to 'Evaluate' %(a list of examples expected", msg{metric = metric})
    assert.matches("bad argument 'metric' to 'Evaluate' %(a function%(example, prediction%) expected, got nil%)",
      msg{devset = set})
    assert.matches("bad argument 'concurrency' to 'Evaluate' %(an integer >= 1 expected, got 0%)",
      msg{devset = set, metric = metric, concurrency = 0})
    assert.matches("bad argument 'max_errors' to 'Evaluate' %(an integer >= 1 expected, got 1%.5%)",
      msg{devset = set, metric = metric, max_errors = 1.5})
    assert.matches("'save_as' to 'Evaluate' %(a file path ending in %.jsonl or %.csv expected, got number",
      msg{devset = set, metric = metric, save_as = 3})
    assert.matches("resume needs save_as", msg{devset = set, metric = metric, resume = true})
    assert.matches("shard must be 'K/N'", msg{devset = set, metric = metric, shard = "0/3"})
    assert.matches("'display_progress' to 'Evaluate'", msg{devset = set, metric = metric, display_progress = "fancy"})
    assert.matches("devset%[1%] has no declared inputs",
      msg{devset = {tide.Example{a = 1}}, metric = metric})
  end)

  it("blames the caller's line for misuse, however deep the check", function()
    local set = devset(1, {}, "x")
    local line
    local ok, err = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local e = tide.Evaluate{devset = set, metric = 5}
      return e
    end)
    assert.is_false(ok)
    assert.are.equal("spec/evaluate_spec.lua:" .. line .. ": bad argument 'metric' to 'Evaluate' " ..
      "(a function(example, prediction) expected, got number)", err)
    local evaluate = tide.Evaluate{devset = set, metric = metric, display_progress = false,
      display_table = false}
    ok, err = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local r = evaluate("not a program")
      return r
    end)
    assert.is_false(ok)
    assert.matches("^spec/evaluate_spec%.lua:" .. line .. ": bad argument #1 to 'Evaluate'", err)
  end)

  it("refuses an empty devset and a results file that is neither .jsonl nor .csv", function()
    local ok, err = pcall(tide.Evaluate, {devset = {}, metric = metric, program = function() end})
    assert.is_false(ok)
    assert.matches("the devset is empty", err)
    local path = dir .. "/results.txt"
    ok, err = pcall(tide.Evaluate, {devset = devset(1, {}, "x"), metric = metric, save_as = path})
    assert.is_false(ok)
    assert.matches("'save_as' to 'Evaluate' %(a file path ending in %.jsonl or %.csv expected, got \"[^\"]*results%.txt\"%)", err)
    assert.is_nil(io.open(path))
  end)
end)

describe("progress", function()
  local progress = require "tide.eval.progress"

  local function fake(mode, interval, columns)
    local t, out = 100, {}
    local p = progress.new{total = 10, mode = mode, interval = interval,
      write = function(s) out[#out + 1] = s end, now = function() return t end,
      columns = columns or function() return 200 end}
    return p, out, function(dt) t = t + dt end
  end

  it("redraws a bar in place with done/total, mean, errors, rate and ETA", function()
    local p, out, advance = fake("bar")
    advance(2)
    p:update{done = 4, errors = 1, mean = 0.75}
    assert.are.equal("\reval [##########..............] 4/10   40%  mean 0.750  errors 1  2.0/s  ETA 0:03\27[K",
      out[1])
    advance(0.05)
    p:update{done = 5, errors = 1, mean = 0.8}   -- within 0.1 s of the last draw: not drawn
    assert.are.equal(1, #out)
    advance(3)
    p:finish{done = 10, errors = 1, mean = 0.9}
    assert.matches("^\reval %[#+%] 10/10  100%%  mean 0%.900  errors 1  [%d.]+/s  in 0:05\27%[K\n$", out[2])
  end)

  it("fits the bar to the terminal's width, read again at every redraw", function()
    local width = 68
    local p, out, advance = fake("bar", nil, function() return width end)
    local function visible(i) return (out[i]:gsub("^\r", ""):gsub("\27%[K\n?$", "")) end
    advance(2)
    p:update{done = 4, errors = 1, mean = 0.75}
    assert.are.equal("eval [####......] 4/10   40%  mean 0.750  errors 1  2.0/s  ETA 0:03", visible(1))
    assert.is_true(#visible(1) <= width - 1)
    width = 45                         -- the window shrank: no bar, the rate goes first
    advance(1)
    p:update{done = 5, errors = 1, mean = 0.8}
    assert.are.equal("eval 5/10  mean 0.800  errors 1  ETA 0:03", visible(2))
    width = 20
    advance(1)
    p:update{done = 6, errors = 1, mean = 0.8}
    assert.are.equal("eval 6/10  errors 1", visible(3))
    width = 8
    advance(1)
    p:finish{done = 10, errors = 1, mean = 0.9}
    assert.are.equal("eval 10", visible(4))
    assert.matches("\n$", out[4])
    width = 200                        -- wide again: the bar is back, at its full width
    local q, out2 = fake("bar", nil, function() return width end)
    q:update{done = 5, errors = 0, mean = 1}
    assert.matches("^\reval %[############............%] 5/10", out2[1])
  end)

  it("writes a plain line at most every interval, and one at the end", function()
    local p, out, advance = fake("lines", 10)
    advance(1)
    p:update{done = 1, errors = 0, mean = 1}
    advance(4)
    p:update{done = 2, errors = 0, mean = 1}
    advance(6)
    p:update{done = 3, errors = 0, mean = 1}
    p:finish()
    assert.are.same({
      "eval 1/10   10%  mean 1.000  errors 0  -/s  ETA ?\n",
      "eval 3/10   30%  mean 1.000  errors 0  0.3/s  ETA 0:26\n",
    }, out)
  end)

  it("shows no rate until two items took a second between them", function()
    local p, out, advance = fake("lines", 0)
    advance(0.02)
    p:update{done = 1, errors = 0, mean = 1}     -- the first of many running at once
    advance(0.02)
    p:update{done = 2, errors = 0, mean = 1}     -- two, but in 40 ms
    advance(1)
    p:update{done = 3, errors = 0, mean = 1}
    assert.matches("errors 0  %-/s  ETA %?\n$", out[1])
    assert.matches("errors 0  %-/s  ETA %?\n$", out[2])
    assert.matches("errors 0  2%.9/s  ETA 0:02\n$", out[3])
  end)

  it("shows a note after the status at once, until it is cleared", function()
    local p, out, advance = fake("lines", 10)
    advance(1)
    p:update{done = 2, errors = 0, mean = 1}
    p:set_note("waiting for server at http://h:1 (up to 30 s)")
    assert.are.equal(2, #out)   -- drawn now, though the interval has not passed
    assert.matches("^eval 2/10 .-  waiting for server at http://h:1 %(up to 30 s%)\n$", out[2])
    p:set_note(nil)
    assert.is_nil(out[3]:find("waiting", 1, true))
    local bar, bar_out = fake("bar", nil, function() return 40 end)
    bar:update{done = 2, errors = 0, mean = 1}
    bar:set_note("waiting for server at http://h:1 (up to 30 s)")
    assert.is_true(#bar_out[2]:gsub("^\r", ""):gsub("\27%[K$", "") <= 39)   -- it fits the width
  end)

  it("counts only this run's items in the rate (a resumed run skips the rest)", function()
    local t = 0
    local out = {}
    local p = progress.new{total = 100, mode = "lines", start_done = 90,
      write = function(s) out[#out + 1] = s end, now = function() return t end}
    t = 5
    p:update{done = 95, errors = 0, mean = 1}
    assert.matches("95/100.-1%.0/s  ETA 0:05", out[1])
  end)
end)
