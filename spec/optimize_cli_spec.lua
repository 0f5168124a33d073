-- `tide optimize` end to end: the binary, a program file, datasets, mockllm's
-- prompt-dependent model; then `tide eval --load` on what it wrote.
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local files = require "support.files"
local task = require "support.optimize_task"
local results = require "tide.eval.results"
local assert_clean = require "support.clean"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"

local PROGRAM = [[
local tide = require "tide"
return tide.ChainOfThought("word -> answer"), function(ex, p) return ex.answer == p.answer end
]]

local function jsonl(examples)
  local lines = {}
  for i, ex in ipairs(examples) do lines[i] = cjson.encode({word = ex.word, answer = ex.answer}) end
  return table.concat(lines, "\n") .. "\n"
end

local function mean(rows)
  local sum = 0
  for _, row in ipairs(rows) do sum = sum + row.score end
  return sum / #rows
end

describe("tide optimize", function()
  local server, dir

  setup(function()
    server = mockllm.start()
    dir = files.tmpdir()
    files.write(dir .. "/program.lua", PROGRAM)
    files.write(dir .. "/train.jsonl", jsonl(task.examples(1, 8)))
    files.write(dir .. "/val.jsonl", jsonl(task.examples(9, 16)))
    files.write(dir .. "/dev.jsonl", jsonl(task.examples(17, 24)))
  end)
  teardown(function()
    server:stop()
    os.execute("rm -rf " .. dir)
  end)
  after_each(assert_clean)

  local function tide_cmd(args)
    local cmd = string.format("cd %s && env -u TIDE_MODEL -u MOCKLLM_URL OPENAI_API_KEY=sk-test " ..
      "OPENAI_BASE_URL=%s/v1 TIDE_CACHE_DIR=%s/cache TERM=dumb %s %s >%s/stdout 2>%s/stderr",
      dir, server.url, dir, TIDE, args, dir, dir)
    local ok, _, status = os.execute(cmd)
    return ok and 0 or status, files.read(dir .. "/stderr")
  end

  it("compiles with --optimizer bootstrap, saves DSPy JSON, and tide eval --load scores it", function()
    local status, err = tide_cmd("optimize program.lua --optimizer bootstrap --train train.jsonl " ..
      "--val val.jsonl --out compiled.json --log log.json --model openai/mock-task --progress none")
    assert.are.equal(0, status, err)
    local saved = cjson.decode(files.read(dir .. "/compiled.json"))
    assert.is_true(saved.predict.demos[1].augmented)
    assert.matches("reversed read", saved.predict.demos[1].reasoning)
    local log = cjson.decode(files.read(dir .. "/log.json"))
    assert.are.equal("BootstrapFewShot", log.optimizer)

    status, err = tide_cmd("eval program.lua --data dev.jsonl --out zero.jsonl --model openai/mock-task " ..
      "--inputs word --progress none")
    assert.are.equal(0, status, err)
    assert.are.equal(0, mean(results.read(dir .. "/zero.jsonl")))
    status, err = tide_cmd("eval program.lua --load compiled.json --data dev.jsonl --out tuned.jsonl " ..
      "--model openai/mock-task --inputs word --progress none")
    assert.are.equal(0, status, err)
    assert.is_true(mean(results.read(dir .. "/tuned.jsonl")) >= 0.9)
  end)

  it("refuses bad usage with status 2, naming the fix", function()
    local status, err = tide_cmd("optimize program.lua --train train.jsonl --out c.json --model openai/mock-task")
    assert.are.equal(2, status)
    assert.matches("%-%-optimizer NAME is required %(bootstrap|gepa|labeled|mipro|random", err)
    status, err = tide_cmd("optimize program.lua --optimizer nope --train train.jsonl --out c.json")
    assert.are.equal(2, status)
    assert.matches("%-%-optimizer must be one of .* got 'nope'", err)
    status, err = tide_cmd("optimize program.lua --optimizer random --train train.jsonl --out c.txt")
    assert.are.equal(2, status)
    assert.matches("%-%-out must end in %.json", err)
    status, err = tide_cmd("eval program.lua --load missing.json --data dev.jsonl --out x.jsonl " ..
      "--model openai/mock-task --inputs word --progress none")
    assert.are.equal(1, status)
    assert.matches("%-%-load missing%.json: .*cannot open", err)
  end)
end)
