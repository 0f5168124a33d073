-- The HTML evaluation report (tide/eval/html.lua): written by tide.Evaluate{report =}
-- and `tide eval --report` from real evaluations against mockllm (a panel of critics,
-- failing rows, a hostile row, a key quoted back by the server), read as text, and
-- rendered in headless Chromium (the screenshot's plot colours, no console errors,
-- the sort script allowed by the page's Content-Security-Policy).
local tide = require "tide"
local html = require "tide.eval.html"
local plot = require "tide.eval.plot"
local repl = require "tide.repl"
local lm_server = require "support.lm_server"
local assert_clean = require "support.clean"
local files = require "support.files"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local CHROMIUM = os.getenv("CHROMIUM_BIN") or "/usr/bin/chromium"
local KEY = "sk-CANARY-report-7f3a91c2"
local HOSTILE = '</script><script>alert(1)</script><img src=x onerror=alert(2)> & "quoted"'

-- Counts the pixels of a PNG (8-bit RGB or RGBA, not interlaced: what Chromium
-- writes) that are exactly each colour asked for, and those that are not the
-- page's background: node script.js FILE.png '#rrggbb,...' → JSON.
local PNG_COUNT = [==[
const fs = require("fs"), zlib = require("zlib");
const buf = fs.readFileSync(process.argv[2]);
let pos = 8, width, height, type, idat = [];
while (pos < buf.length) {
  const len = buf.readUInt32BE(pos), kind = buf.toString("latin1", pos + 4, pos + 8);
  const body = buf.subarray(pos + 8, pos + 8 + len);
  if (kind === "IHDR") {
    width = body.readUInt32BE(0); height = body.readUInt32BE(4); type = body[9];
    if (body[8] !== 8 || (type !== 2 && type !== 6) || body[12] !== 0) throw new Error("unexpected PNG format");
  }
  if (kind === "IDAT") idat.push(body);
  pos += 12 + len;
}
const bpp = type === 6 ? 4 : 3, stride = width * bpp;
const raw = zlib.inflateSync(Buffer.concat(idat));
const px = Buffer.alloc(stride * height);
for (let y = 0; y < height; y++) {
  const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride;
  for (let x = 0; x < stride; x++) {
    const a = x >= bpp ? px[dst + x - bpp] : 0, b = y > 0 ? px[dst - stride + x] : 0;
    const c = x >= bpp && y > 0 ? px[dst - stride + x - bpp] : 0;
    let p = raw[src + x];
    if (f === 1) p += a; else if (f === 2) p += b; else if (f === 3) p += (a + b) >> 1;
    else if (f === 4) { const q = a + b - c, pa = Math.abs(q - a), pb = Math.abs(q - b), pc = Math.abs(q - c);
      p += pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
    px[dst + x] = p & 255;
  }
}
const want = process.argv[3].split(","), counts = {}, rgb = {};
for (const w of want) { counts[w] = 0; rgb[parseInt(w.slice(1), 16)] = w; }
let inked = 0;
for (let i = 0; i < px.length; i += bpp) {
  const v = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
  if (rgb[v] !== undefined) counts[rgb[v]]++;
  if (v !== 0xfafafa && v !== 0xffffff) inked++;
}
console.log(JSON.stringify({width, height, inked, counts}));
]==]

local function count(text, plain)
  local n, pos = 0, 1
  while true do
    local i, j = text:find(plain, pos, true)
    if not i then return n end
    n, pos = n + 1, j + 1
  end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("the HTML evaluation report", function()
  local lm_env, server, dir
  local report_path, result

  setup(function()
    lm_env = lm_server.start()
    server, dir = lm_env.server, lm_env.dir
  end)
  teardown(function() lm_env:stop() end)
  after_each(assert_clean)

  local function lm(scenario)
    return tide.LM("openai/mock", {api_key = KEY, base_url = server.url .. "/v1", num_retries = 0,
      headers = scenario and {["X-Mock-Scenario"] = scenario} or nil})
  end

  --- A panel of the three critics over 24 drafts: rows 5 and 11 fail with a 500, row
  -- 17 with a 401 whose message quotes the key, row 8 is hostile markup.
  local function evaluate_panel(path)
    local lms = {fail = lm("status=500"), leak = lm("echo_key=1")}
    local panel = tide.critics.panel{on_failure = "fail"}
    local rows = {}
    for i = 1, 24 do
      rows[i] = {content = string.format("report draft %d %d", i, math.random(1, 1e9)),
        context = "B2B outreach", requirements = "a date and a price",
        kind = (i == 5 or i == 11) and "fail" or i == 17 and "leak" or "ok", good = i % 3 ~= 0}
    end
    rows[8].content = HOSTILE
    local devset = tide.dataset.from_table(rows, {inputs = {"content", "context", "requirements", "kind"}})
    tide.configure{lm = lm()}
    return tide.Evaluate{
      devset = devset, concurrency = 6, display_progress = false, display_table = false,
      metric = function(ex, p) return p.approved == ex.good end,
      program = function(inputs) return panel(inputs, {lm = lms[inputs.kind]}) end,
      report = {path = path, dataset = "drafts <for> the spec"},
    }
  end

  it("holds every section, built from a real panel evaluation", function()
    report_path = dir .. "/report.html"
    result = evaluate_panel(report_path)
    assert.are.equal(report_path, result.report)
    assert.are.equal(24, result.done)
    assert.are.equal(3, result.errors)
    assert.are.same({server = 2, auth = 1}, result.error_kinds)
    assert.is_true(server:stats().requests >= 21 * 3)   -- three critics a row, answered
    local page = files.read(report_path)
    for _, id in ipairs{"summary", "scores", "critics", "latency", "failures", "rows"} do
      assert.truthy(page:find('<section id="' .. id .. '">', 1, true), "no section " .. id)
    end
    -- the summary: score, errors by kind, tokens, model, dataset (escaped), date
    assert.truthy(page:find(string.format("%.3f", result.score), 1, true))
    assert.truthy(page:find('aria-label="errors by kind"', 1, true))
    local function thousands(n) return (tostring(n):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")) end
    assert.truthy(page:find(string.format("%s in, %s out", thousands(result.usage.input),
      thousands(result.usage.output)), 1, true))
    assert.truthy(page:find("openai/mock", 1, true))
    assert.truthy(page:find("drafts &lt;for&gt; the spec", 1, true))
    assert.truthy(page:find(os.date("!%Y-%m-%d"), 1, true))
    -- the plots: scores, one per critic, the disagreement matrix and spread, latency
    assert.truthy(page:find('aria-label="score distribution"', 1, true))
    for _, name in ipairs{"technical", "style", "completeness"} do
      assert.truthy(page:find('aria-label="scores of critic ' .. name .. '"', 1, true), name)
    end
    assert.truthy(page:find('aria-label="critic disagreement"', 1, true))
    assert.truthy(page:find('aria-label="latency histogram"', 1, true))
    assert.truthy(page:find("Slowest examples", 1, true))
    -- failures grouped by kind, with their rows
    assert.truthy(page:find("server — 2 rows", 1, true))
    assert.truthy(page:find("rows 5, 11", 1, true))
    assert.truthy(page:find("auth — 1 row<", 1, true))
    assert.truthy(page:find("1 × row 17: ", 1, true))
    -- one <details> per row, in pages
    assert.are.equal(24, count(page, '<details class="row"'))
    assert.are.equal(1, count(page, '<details class="page" open>'))
  end)

  it("escapes hostile values, keeps keys out and loads nothing", function()
    local page = files.read(report_path)
    assert.is_nil(page:find("<img", 1, true))
    assert.is_nil(page:find("onerror=alert", 1, true) and page:find("<[^>]*onerror"))
    assert.truthy(page:find("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x " ..
      "onerror=alert(2)&gt; &amp; &quot;quoted&quot;", 1, true))
    assert.are.equal(1, count(page, "<script"))   -- the page's own, at the end
    assert.are.equal(1, count(page, "</script>"))
    -- the 401 quoted the key: redacted wherever the report shows the error
    assert.is_nil(page:find(KEY, 1, true))
    assert.truthy(page:find("[redacted]", 1, true))
    -- no tag loads anything or handles an event, and a policy forbids loading
    local tags = 0
    for tag in page:gmatch("<[^<>]*>") do
      tags = tags + 1
      assert.is_nil(tag:find("%ssrc%s*="), tag)
      assert.is_nil(tag:find("%shref%s*="), tag)
      assert.is_nil(tag:find("%son%a+%s*="), tag)
      for url in tag:gmatch("https?://[^\"'%s>]+") do
        assert.are.equal("http://www.w3.org/2000/svg", url)   -- a namespace, never fetched
      end
    end
    assert.is_true(tags > 500)
    assert.truthy(page:find("default-src 'none'", 1, true))
  end)

  it("renders in headless Chromium with its plots and no console errors #slow", function()
    if not exists(CHROMIUM) then
      pending("chromium is not installed (make deps installs it): the report is not rendered")
      return
    end
    local shot, log = dir .. "/report.png", dir .. "/chromium.log"
    -- not under the sanitizers' preloaded runtime (make check-run): Chromium spins there;
    -- a minute at most, so a browser that hangs fails the spec instead of stalling it
    local browser = "env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS timeout 60 " .. CHROMIUM
    local flags = "--headless=new --no-sandbox --disable-gpu --no-first-run --disable-extensions " ..
      "--user-data-dir=" .. dir .. "/chromium --enable-logging=stderr --v=0"
    os.execute(string.format("%s %s --window-size=1280,3000 --screenshot=%s file://%s 2>%s >/dev/null",
      browser, flags, shot, report_path, log))
    assert.truthy(exists(shot), "no screenshot: " .. (files.read(log) or ""))
    local chromium_log = files.read(log) or ""
    assert.is_nil(chromium_log:find("CONSOLE", 1, true), chromium_log)
    assert.is_nil(chromium_log:find("Content Security Policy", 1, true), chromium_log)
    -- every plot's colour is on the screen, and the page is not blank
    local script = dir .. "/png_count.js"
    files.write(script, PNG_COUNT)
    local colours = {}
    for _, c in pairs(plot.COLOURS) do colours[#colours + 1] = c end
    local out = files.sh(string.format("env -u LD_PRELOAD node %s %s '%s'", script, shot,
      table.concat(colours, ",")))
    local ok, counts = pcall(require("cjson").decode, out)
    assert.truthy(ok, out)
    assert.are.equal(1280, counts.width)
    assert.is_true(counts.inked > 100000, out)
    for name, c in pairs(plot.COLOURS) do
      assert.is_true(counts.counts[c] > 500, name .. " plot not drawn: " .. out)
    end
    -- the sort script ran (the policy admits its hash) and the rows are in the DOM
    local dom = files.sh(string.format("%s %s --dump-dom file://%s 2>/dev/null", browser, flags, report_path))
    assert.truthy(dom:find('data-sortable="yes"', 1, true), "the page's script did not run")
    assert.truthy(dom:find("&lt;img src=x onerror=alert(2)&gt;", 1, true))
  end)

  it("stays readable at 10 000 rows: aggregate plots, the table cut with a note, under 5 MB", function()
    local rows = {}
    for i = 1, 10000 do
      rows[i] = {question = string.format("question %d: %s", i, string.rep("words ", 15)), answer = tostring(i % 7)}
    end
    local devset = tide.dataset.from_table(rows, {inputs = {"question"}})
    local path = dir .. "/big.html"
    local r = tide.Evaluate{devset = devset, display_progress = false, display_table = false,
      concurrency = 32, report = path,
      program = function(inputs)
        local n = tonumber(inputs.question:match("%d+"))
        if n % 250 == 0 then error("no answer for " .. n) end
        return {answer = tostring(n % 5), reasoning = string.rep("because ", 20)}
      end,
      metric = function(ex, p) return ex.answer == p.answer end}
    assert.are.equal(10000, r.done)
    assert.are.equal(40, r.errors)
    local page = files.read(path)
    assert.is_true(#page < 5 * 1024 * 1024, "the report is " .. #page .. " bytes")
    assert.truthy(page:find("The table shows the first 1,000 of 10,000 rows", 1, true))
    assert.are.equal(1000, count(page, '<details class="row"'))
    assert.truthy(page:find("lua — 40 rows", 1, true))
    assert.truthy(page:find("n = 10,000", 1, true))   -- the score plot counts every row
  end)

  it("is written by tide eval --report, for shards and for their merge", function()
    local program = dir .. "/program.lua"
    files.write(program, [[
local tide = require "tide"
local critic = tide.Predict("content -> score: int, approved: bool")
return {program = function(inputs) return critic{content = inputs.content} end,
        metric = function(_, p) return p.score >= 60 end, inputs = {"content"}}
]])
    local data = dir .. "/data.jsonl"
    local lines = {}
    for i = 1, 6 do lines[i] = string.format('{"content": "cli draft %d <b>"}', i) end
    files.write(data, table.concat(lines, "\n") .. "\n")
    local env = string.format("env -u TIDE_MODEL -u MOCKLLM_URL OPENAI_API_KEY=%s OPENAI_BASE_URL=%s/v1 " ..
      "TIDE_CACHE_DIR=%s/cache TERM=dumb", KEY, server.url, dir)
    local function run(args)
      local ok, _, code = os.execute(string.format("cd %s && %s %s eval %s >%s/out.txt 2>&1", dir, env,
        TIDE, args, dir))
      return ok and 0 or code, files.read(dir .. "/out.txt")
    end
    for k = 1, 2 do
      local code, out = run(string.format("program.lua --data data.jsonl --out part%d.jsonl --model openai/mock " ..
        "--shard %d/2 --progress none --report part%d.html", k, k, k))
      assert.are.equal(0, code, out)
      assert.truthy(out:find("report      part" .. k .. ".html", 1, true), out)
      local page = files.read(dir .. "/part" .. k .. ".html")
      assert.truthy(page:find("shard " .. k .. "/2 of 6", 1, true))
      assert.truthy(page:find("data.jsonl", 1, true))
      assert.are.equal(3, count(page, '<details class="row"'))
    end
    local code, out = run("--merge all.jsonl part1.jsonl part2.jsonl --report all.html")
    assert.are.equal(0, code, out)
    local page = files.read(dir .. "/all.html")
    assert.are.equal(6, count(page, '<details class="row"'))
    assert.truthy(page:find("cli draft 6 &lt;b&gt;", 1, true))
    assert.truthy(page:find("the shards part1.jsonl, part2.jsonl", 1, true))
    assert.is_nil(page:find(KEY, 1, true))
    -- a report name that is not HTML is refused before anything runs
    code, out = run("--merge x.jsonl part1.jsonl --report x.jsonl")
    assert.are.equal(2, code)
    assert.truthy(out:find("--report FILE must end in .html, got 'x.jsonl'", 1, true), out)
    assert.is_nil(io.open(dir .. "/x.jsonl"))
  end)

  it("raises misuse at the caller's line and an io error for a path it cannot write", function()
    local devset = tide.dataset.from_table({{q = "a"}}, {inputs = {"q"}})
    local function metric() return 1 end
    local ok, err = pcall(tide.Evaluate, {devset = devset, metric = metric, report = 42})
    assert.is_false(ok)
    assert.truthy(err:find("report_html_spec.lua:%d+: bad argument 'report' to 'Evaluate' %(a file path"), err)
    ok, err = pcall(tide.Evaluate, {devset = devset, metric = metric, report = {path = "r.html", colour = "red"}})
    assert.is_false(ok)
    assert.truthy(err:find("unknown key report.colour", 1, true), err)
    ok, err = pcall(tide.Evaluate, {devset = devset, metric = metric, display_progress = false,
      display_table = false, program = function() return 1 end, report = dir .. "/no/such/dir/r.html"})
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "io"), tostring(err))
    assert.truthy(tostring(err):find("no/such/dir", 1, true))
  end)

  it("is what the REPL's :report names", function()
    local out = {}
    local s = repl.new{write = function(...) for _, v in ipairs{...} do out[#out + 1] = tostring(v) end end}
    html.last = nil
    local _, fn = s:feed(":report")
    fn()
    assert.truthy(table.concat(out):find("no report yet", 1, true))
    html.last = report_path
    out = {}
    _, fn = s:feed(":report")
    fn()
    assert.are.equal(report_path .. "\nfile://" .. report_path .. "\n", table.concat(out))
  end)
end)
