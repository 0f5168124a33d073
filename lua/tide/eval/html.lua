--- The evaluation report as one self-contained HTML page: a summary, the score
-- distribution, a panel's per-critic scores and disagreement, latency, failures by
-- kind, and the rows with a detail view for each.
--
--   html.write("report.html", result, {dataset = "drafts.jsonl", model = "openai/gpt-4o-mini"})
--
-- `result` is what tide.Evaluate returns (or one built from merged results files).
-- The page loads nothing: plots are inline SVG, the style is inline CSS, and a
-- Content-Security-Policy lets only its own style and its one script (sorting
-- the rows, an optional enhancement: everything reads without it) run.  Every
-- value from a row is redacted (known keys, `secrets`) and then escaped, so a
-- hostile input or output shows as text.  At 10 000 rows the plots aggregate and
-- the table shows the first rows that fit MAX_ROWS and TABLE_BYTES, saying so.
local cjson = require "cjson"
local core = require "tide.core"
local redact = require "tide.redact"
local base64 = require("tide.media").base64
local html_escape = require "tide.eval.html_escape"
local data = require "tide.eval.html_data"
local plot = require "tide.eval.plot"
local attempts_text = require("tide.eval.report").attempts_text

local escape, cut = html_escape.escape, html_escape.cut

local json = cjson.new()          -- our own settings, not the shared module's
json.encode_sparse_array(true)

local M = {}

--- The path of the last report written by this process (the REPL's :report).
M.last = nil

-- The table of rows: pages of PAGE rows, at most MAX_ROWS rows and about
-- TABLE_BYTES of HTML (the page stays a few MB); a value in a row's detail view is
-- cut at VALUE_BYTES, in its one-line summary at CELL_CHARS.
local PAGE = 100
local MAX_ROWS = 1000
local TABLE_BYTES = 3000000
local VALUE_BYTES = 2000
local CELL_CHARS = 90
local MAX_FIELDS = 40       -- fields shown in one detail view (a row may hold thousands)
local SLOWEST = 10
local DISAGREE = 10
local MESSAGES_PER_KIND = 4

local STYLE = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:18px;margin:30px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.sub{color:#666;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:12px;color:#666;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.card span{font-size:17px;word-break:break-word}
.card.big span{font-size:28px;font-weight:600}
.plot{background:#fff;border:1px solid #e2e2e2;border-radius:6px;margin:4px 12px 8px 0;font-family:inherit}
.plots{display:flex;flex-wrap:wrap;align-items:flex-start}
.small figure{margin:0 8px 8px 0}figure{margin:0}figcaption{font-size:13px;color:#444}
table.list{border-collapse:collapse;background:#fff;margin:6px 0}
table.list td,table.list th{border:1px solid #e2e2e2;padding:3px 8px;text-align:left;vertical-align:top}
table.list th{background:#f0f0f0;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff8e1;border:1px solid #f0d98a;border-radius:6px;padding:6px 10px}
.err{color:#b3261e}
pre{white-space:pre-wrap;word-break:break-word;margin:2px 0 6px;background:#f6f6f6;padding:4px 6px;
border-radius:4px;font-size:12.5px}
.kind{margin-bottom:14px}.kind ul{margin:4px 0;padding-left:20px}
details.page{margin:6px 0;background:#fff;border:1px solid #e2e2e2;border-radius:6px}
details.page>summary{padding:6px 10px;cursor:pointer;font-weight:600}
.head,details.row>summary{display:grid;grid-template-columns:4.5em 5em 5.5em 1fr 1fr 1fr;gap:10px;padding:3px 10px}
.head{font-weight:600;background:#f0f0f0;border-top:1px solid #e2e2e2}
.head span.sortable{cursor:pointer;text-decoration:underline dotted}
details.row>summary{cursor:pointer;list-style:none;border-top:1px solid #eee}
details.row>summary::-webkit-details-marker{display:none}
details.row>summary span{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
details.row[open]>summary{background:#eef3fa}
details.row>div{padding:4px 14px 10px}
dl{margin:0}dt{font-weight:600;margin-top:6px}dd{margin:0}
dl dl{padding-left:12px;border-left:2px solid #e2e2e2}dl dl dt{font-weight:500;color:#444;margin-top:3px}
]]

-- Sorting the rows by a column: an enhancement, the page reads without it.  The
-- rows of every page are sorted together and dealt back into the pages.
local SCRIPT = [[
(function(){
  var heads = document.querySelectorAll(".head span[data-key]");
  var lists = Array.prototype.slice.call(document.querySelectorAll(".rowlist"));
  if (!lists.length) return;
  var order = {};
  function sortBy(key){
    var rows = [];
    lists.forEach(function(l){ rows = rows.concat(Array.prototype.slice.call(l.children)); });
    var down = order[key] = !order[key];
    rows.sort(function(a, b){
      var x = parseFloat(a.getAttribute("data-" + key)), y = parseFloat(b.getAttribute("data-" + key));
      if (isNaN(x)) x = -Infinity; if (isNaN(y)) y = -Infinity;
      return down ? y - x : x - y;
    });
    var i = 0;
    lists.forEach(function(l){
      var n = l.children.length, part = rows.slice(i, i + n);
      i += n;
      part.forEach(function(r){ l.appendChild(r); });
      var s = l.parentNode.querySelector("summary .pos");
      if (s) s.textContent = "sorted by " + key + (down ? " (largest first)" : " (smallest first)");
    });
  }
  Array.prototype.forEach.call(heads, function(h){
    h.className = "sortable";
    h.title = "sort by " + h.getAttribute("data-key");
    h.addEventListener("click", function(){ sortBy(h.getAttribute("data-key")); });
  });
  document.body.setAttribute("data-sortable", "yes");
})();
]]

-- ---- text ------------------------------------------------------------------------

--- A value as text: a string as it is, anything else as JSON (with "/" as it is:
-- cjson writes "\/", which only a script element needs, and none is made of it).
local function value_text(v)
  if type(v) == "string" then return v end
  if v == nil then return "" end
  local ok, s = pcall(json.encode, v)
  if not ok then return tostring(v) end
  return (s:gsub("\\/", "/"))
end

--- Field names in the order a reader scans them: scores first, then by name.
local function by_score_first(a, b)
  local sa, sb = a:find("score", 1, true) ~= nil, b:find("score", 1, true) ~= nil
  if sa ~= sb then return sa end
  return a < b
end

--- A value as one short line: named fields as "name: value; ...", scores first.
local function line_text(v)
  local s
  if type(v) == "table" and next(v) ~= nil and rawlen(v) == 0 then
    local names = {}
    for k in pairs(v) do names[#names + 1] = tostring(k) end
    table.sort(names, by_score_first)
    local parts = {}
    for i, k in ipairs(names) do parts[i] = k .. ": " .. value_text(v[k]) end
    s = table.concat(parts, "; ")
  else
    s = value_text(v)
  end
  return (cut((s:gsub("%s+", " ")), CELL_CHARS))
end

local function score_text(v)
  if type(v) ~= "number" then return "–" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.3f", v)
end

local function seconds(v)
  if type(v) ~= "number" then return "–" end
  if v < 1 then return string.format("%.0f ms", v * 1000) end
  return string.format("%.2f s", v)
end

--- 1234567 → "1,234,567".
local function count_text(n)
  local s = tostring(math.tointeger(n) or n)
  local int, rest = s:match("^(-?%d+)(.*)$")
  if not int then return s end
  int = int:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(-?),", "%1")
  return int .. rest
end

local function percent(part, whole)
  if not whole or whole == 0 then return "" end
  return string.format("%.1f%%", part / whole * 100)
end

--- A CSP hash source for text: the base64 of its SHA-256 digest's bytes.
local function csp_hash(text)
  local digest = core.sha256(text):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  return "'sha256-" .. base64(digest) .. "'"
end

-- ---- the page's parts --------------------------------------------------------------

--- A page builder: the parts of the page, and the redaction every row value goes
-- through before it is escaped.
local function builder(secrets)
  local self = {parts = {}}
  local usable = redact.usable(secrets)
  --- s redacted (raw text, for a plot's label, which the plot escapes)
  function self.clean(s)
    s = tostring(s)
    if #usable == 0 then return s end
    return redact.text(s, usable)
  end
  --- s redacted and escaped
  function self.text(s) return escape(self.clean(s)) end
  function self.add(s) self.parts[#self.parts + 1] = s end
  return self
end

local function card(label, value, class)
  return string.format('<div class="card%s"><b>%s</b><span>%s</span></div>',
    class and " " .. class or "", escape(label), value)
end

local function summary(b, result, info)
  local u = result.usage or {}
  b.add('<section id="summary"><h2>Summary</h2><div class="cards">')
  b.add(card("mean score", escape(score_text(result.score)), "big"))
  local of = count_text(result.total or result.done or 0)
  if result.shard then
    of = string.format("%s (shard %d/%d of %s)", of, result.shard[1], result.shard[2],
      count_text(result.dataset_size or 0))
  end
  b.add(card("examples", escape(count_text(result.done or 0) .. " done of " .. of)))
  b.add(card("errors", escape(count_text(result.errors or 0) .. " " ..
    (result.done and result.done > 0 and "(" .. percent(result.errors or 0, result.done) .. ")" or ""))))
  b.add(card("tokens", escape(string.format("%s in, %s out", count_text(u.input or 0),
    count_text(u.output or 0)))))
  b.add(card("LM calls", escape(string.format("%s (%s from the cache)", count_text(u.calls or 0),
    count_text(u.cache_hits or 0)))))
  b.add(card("cost", escape(result.cost and result.cost > 0 and string.format("$%.4f", result.cost)
    or "$0 (no priced calls)")))
  local wall = "–"
  if type(result.wall_time) == "number" then
    wall = seconds(result.wall_time)
    if result.ran and result.wall_time > 0 then
      wall = wall .. string.format(" (%.1f examples/s)", result.ran / result.wall_time)
    end
  end
  b.add(card("wall time", escape(wall)))
  b.add(card("model", b.text(info.model or "not recorded")))
  b.add(card("dataset", b.text(info.dataset or "not named")))
  b.add(card("date", escape(info.date)))
  if result.stopped then b.add(card("stopped", escape(result.stopped), "err")) end
  if result.save_as then b.add(card("results file", b.text(result.save_as))) end
  b.add("</div>")
  local kinds = {}
  for kind, n in pairs(result.error_kinds or {}) do
    kinds[#kinds + 1] = {label = b.clean(kind), value = n, text = count_text(n)}
  end
  if #kinds > 0 then
    table.sort(kinds, function(x, y)
      if x.value ~= y.value then return x.value > y.value end
      return x.label < y.label
    end)
    b.add("<h3>Errors by kind</h3>")
    b.add(plot.hbars(kinds, {colour = plot.COLOURS.error, label = "errors by kind"}))
  end
  b.add("</section>")
end

local function stats_line(s, fmt)
  if s.n == 0 then return "" end
  return string.format('<p class="sub">n = %s · mean %s · min %s · median %s · p90 %s · max %s</p>',
    count_text(s.n), fmt(s.mean), fmt(s.min), fmt(s.median), fmt(s.p90), fmt(s.max))
end

local function scores_section(b, scores)
  b.add('<section id="scores"><h2>Score distribution</h2>')
  if #scores == 0 then
    b.add('<p class="sub">No scored rows.</p></section>')
    return
  end
  b.add(stats_line(data.stats(scores), score_text))
  b.add(plot.histogram(data.histogram(scores), {colour = plot.COLOURS.score, width = 720,
    label = "score distribution", xlabel = "score"}))
  b.add("</section>")
end

local function critics_section(b, rows, critics)
  b.add('<section id="critics"><h2>Critics</h2>')
  b.add('<p class="sub">Each critic\'s scores across the rows its panel judged.</p><div class="plots small">')
  for _, name in ipairs(critics.names) do
    local c = critics.each[name]
    local caption = string.format("%s — %s scored", b.text(name), count_text(#c.scores))
    if c.judged > 0 then
      caption = caption .. string.format(", approved %s", percent(c.approved, c.judged))
    end
    if c.failed > 0 then caption = caption .. string.format(', <span class="err">%d failed</span>', c.failed) end
    b.add("<figure>")
    b.add(plot.histogram(data.histogram(c.scores, {bins = 10}), {colour = plot.COLOURS.critic,
      width = 340, height = 160, label = "scores of critic " .. b.clean(name)}))
    b.add("<figcaption>" .. caption .. "</figcaption></figure>")
  end
  b.add("</div>")
  if #critics.names < 2 then
    b.add("</section>")
    return
  end
  local d = data.disagreement(rows, critics, DISAGREE)
  local names = {}
  for i, name in ipairs(critics.names) do names[i] = b.clean(name) end
  b.add("<h3>Where the critics disagree</h3>")
  b.add('<p class="sub">Mean absolute difference of two critics\' scores on the rows both ' ..
    'scored (darker: they disagree more), and the spread (highest minus lowest critic score) per row.</p>')
  b.add('<div class="plots">')
  b.add(plot.matrix(names, function(i, j)
    local v = d.pairs[i][j]
    if v == nil then return nil end
    return v, string.format("%.1f", v)
  end, {colour = plot.COLOURS.spread, label = "critic disagreement"}))
  if #d.spread > 0 then
    b.add(plot.histogram(data.histogram(d.spread, {bins = 10}), {colour = plot.COLOURS.spread,
      width = 420, height = 180, label = "score spread per row", xlabel = "spread (max - min)"}))
  end
  b.add("</div>")
  if #d.top > 0 then
    b.add('<h3>Rows of the widest spread</h3><table class="list"><tr><th class="num">#</th>' ..
      '<th class="num">spread</th>')
    for _, name in ipairs(critics.names) do b.add('<th class="num">' .. b.text(name) .. "</th>") end
    b.add("<th>inputs</th></tr>")
    for _, t in ipairs(d.top) do
      b.add(string.format('<tr><td class="num">%d</td><td class="num">%s</td>', t.row.index,
        escape(data.number_text(t.spread))))
      for _, name in ipairs(critics.names) do
        b.add('<td class="num">' .. escape(t.scores[name] and data.number_text(t.scores[name]) or "–") .. "</td>")
      end
      b.add("<td>" .. b.text(line_text(t.row.inputs)) .. "</td></tr>")
    end
    b.add("</table>")
  end
  b.add("</section>")
end

local function latency_section(b, rows, latencies)
  b.add('<section id="latency"><h2>Latency</h2>')
  if #latencies == 0 then
    b.add('<p class="sub">No timed rows.</p></section>')
    return
  end
  local s = data.stats(latencies)
  b.add(stats_line(s, seconds))
  -- a few very slow rows would squeeze the rest into one bar: cut at p99
  local cap = s.max > 3 * s.p99 and s.p99 or nil
  b.add(plot.histogram(data.histogram(latencies, {bins = 24, cap = cap, unit = " s"}),
    {colour = plot.COLOURS.latency, width = 720, label = "latency histogram", xlabel = "seconds per example"}))
  b.add('<h3>Slowest examples</h3><table class="list"><tr><th class="num">#</th>' ..
    '<th class="num">latency</th><th class="num">LM calls</th><th>inputs</th><th>outcome</th></tr>')
  for _, row in ipairs(data.slowest(rows, SLOWEST)) do
    local outcome = row.error and ('<span class="err">' .. b.text(row.error.kind) .. "</span>")
      or ("score " .. escape(score_text(row.score)))
    b.add(string.format('<tr><td class="num">%d</td><td class="num">%s</td><td class="num">%s</td>' ..
      "<td>%s</td><td>%s</td></tr>", row.index, escape(seconds(row.latency)),
      escape(tostring(row.usage and row.usage.calls or "–")),
      b.text(line_text(row.inputs)), outcome))
  end
  b.add("</table></section>")
end

--- A text in a <pre>, cut at VALUE_BYTES with a note of what was cut.
local function pre(b, text)
  local shown, more = cut(text, VALUE_BYTES)
  return "<pre>" .. b.text(shown) .. (more > 0 and escape(string.format("… (%d more bytes)", more)) or "") ..
    "</pre>"
end

local function failures_section(b, rows)
  local kinds = data.failures(rows, MESSAGES_PER_KIND)
  if #kinds == 0 then return end
  b.add('<section id="failures"><h2>Failures by kind</h2>')
  for _, k in ipairs(kinds) do
    b.add(string.format('<div class="kind"><h3 class="err">%s — %s %s</h3><ul>', b.text(k.kind),
      count_text(k.count), k.count == 1 and "row" or "rows"))
    for _, m in ipairs(k.messages) do
      local shown = {}
      for i, index in ipairs(m.rows) do shown[i] = tostring(index) end
      local where = string.format("%s %s%s", #m.rows == 1 and "row" or "rows", table.concat(shown, ", "),
        m.count > #m.rows and ", …" or "")
      b.add("<li>" .. escape(count_text(m.count) .. " × " .. where) .. ": " .. pre(b, m.message))
      local tried = attempts_text(m.tried)
      if tried then b.add('<span class="sub">tries: ' .. b.text(tried) .. "</span>") end
      b.add("</li>")
    end
    if k.other then
      b.add(string.format('<li class="sub">%s more rows with other messages</li>', count_text(k.other)))
    end
    b.add("</ul></div>")
  end
  b.add("</section>")
end

--- A value's one-line text for a row's summary line.
local function cell(b, v)
  return b.text(line_text(v))
end

--- A table of fields (or any value) as a definition list for the detail view.
local function fields_block(b, title, v)
  if v == nil then return "" end
  local out = {"<dt>" .. escape(title) .. "</dt><dd>"}
  if type(v) == "table" and next(v) ~= nil and rawlen(v) == 0 then
    local names = {}
    for k in pairs(v) do names[#names + 1] = tostring(k) end
    table.sort(names)
    out[#out + 1] = "<dl>"
    for i = 1, math.min(#names, MAX_FIELDS) do
      local k = names[i]
      out[#out + 1] = "<dt>" .. b.text(k) .. "</dt><dd>" .. pre(b, value_text(v[k])) .. "</dd>"
    end
    if #names > MAX_FIELDS then
      out[#out + 1] = string.format('<dt class="sub">… %d more fields</dt>', #names - MAX_FIELDS)
    end
    out[#out + 1] = "</dl>"
  else
    out[#out + 1] = pre(b, value_text(v))
  end
  out[#out + 1] = "</dd>"
  return table.concat(out)
end

--- One row: a <details> whose summary line is the row and whose body is all of it.
local function row_html(b, row)
  local e = row.error
  local outcome = e and ('<span class="err">' .. b.text(e.kind) .. ": " ..
    b.text(cut((tostring(e.message or "")):gsub("%s+", " "), CELL_CHARS)) .. "</span>") or cell(b, row.outputs)
  local u = row.usage or {}
  local result = fields_block(b, "outputs", row.outputs)
  if e then
    result = fields_block(b, "error", {kind = e.kind, message = e.message, tries = attempts_text(e.tried)})
  end
  local detail = {
    fields_block(b, "inputs", row.inputs),
    result,
    fields_block(b, "labels", row.labels),
    string.format("<dt>usage</dt><dd>%s LM calls, %s tokens in, %s out%s%s</dd>", count_text(u.calls or 0),
      count_text(u.input or 0), count_text(u.output or 0), row.cached and ", all from the cache" or "",
      row.cost and row.cost > 0 and string.format(", $%.5f", row.cost) or ""),
  }
  return string.format('<details class="row" data-index="%d" data-score="%s" data-latency="%s">' ..
    '<summary><span>%d</span><span>%s</span><span>%s</span><span>%s</span><span>%s</span>' ..
    "<span>%s</span></summary><div><dl>%s</dl></div></details>",
    row.index, type(row.score) == "number" and string.format("%.17g", row.score) or "",
    type(row.latency) == "number" and string.format("%.6f", row.latency) or "",
    row.index, escape(score_text(row.score)), escape(seconds(row.latency)), cell(b, row.inputs), outcome,
    cell(b, row.labels), table.concat(detail))
end

local HEAD = '<div class="head"><span data-key="index">#</span><span data-key="score">score</span>' ..
  '<span data-key="latency">latency</span><span>inputs</span><span>outputs / error</span>' ..
  "<span>labels</span></div>"

local function rows_section(b, result)
  local rows = result.rows
  b.add('<section id="rows"><h2>Rows</h2>')
  local html, bytes = {}, 0
  for i = 1, math.min(#rows, MAX_ROWS) do
    local h = row_html(b, rows[i])
    bytes = bytes + #h
    html[i] = h
    if bytes > TABLE_BYTES then break end
  end
  if #html < #rows then
    b.add(string.format('<p class="note">The table shows the first %s of %s rows; the plots above ' ..
      "cover them all%s.</p>", count_text(#html), count_text(#rows),
      result.save_as and ", and every row is in " .. b.text(result.save_as) or ""))
  end
  b.add('<p class="sub">Open a row for its inputs, outputs, labels and usage.</p>')
  for first = 1, #html, PAGE do
    local last = math.min(first + PAGE - 1, #html)
    b.add(string.format('<details class="page"%s><summary>page %d · <span class="pos">rows %d–%d ' ..
      "(#%d–#%d)</span></summary>%s<div class=\"rowlist\">", first == 1 and " open" or "",
      (first - 1) // PAGE + 1, first, last, rows[first].index, rows[last].index, HEAD))
    b.add(table.concat(html, "", first, last))
    b.add("</div></details>")
  end
  b.add("</section>")
end

--- render(result, {dataset, model, date, title, secrets}) → the page's HTML text.
function M.render(result, info)
  info = info or {}
  local secrets = redact.known_keys()
  for _, s in ipairs(info.secrets or {}) do secrets[#secrets + 1] = s end
  local b = builder(secrets)
  local date = info.date or os.date("!%Y-%m-%d %H:%M UTC")
  local rows = result.rows or {}
  local title = info.title or ("Evaluation" .. (info.dataset and " of " .. info.dataset or ""))
  local scores, latencies = data.columns(rows)
  local critics = data.critics(rows)
  local csp = "default-src 'none'; style-src " .. csp_hash(STYLE) .. "; script-src " .. csp_hash(SCRIPT) ..
    "; img-src data:; base-uri 'none'; form-action 'none'"
  b.add('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
  b.add('<meta http-equiv="Content-Security-Policy" content="' .. csp .. '">')
  b.add('<meta name="viewport" content="width=device-width, initial-scale=1">')
  b.add("<title>" .. b.text(title) .. "</title><style>" .. STYLE .. "</style></head><body><main>")
  b.add("<h1>" .. b.text(title) .. "</h1>")
  b.add(string.format('<p class="sub">%s · %s · tide %s</p>', b.text(info.model or "model not recorded"),
    escape(date), escape(core.version)))
  summary(b, {score = result.score, usage = result.usage, total = result.total, done = result.done,
    errors = result.errors, cost = result.cost, wall_time = result.wall_time, ran = result.ran,
    shard = result.shard, dataset_size = result.dataset_size, stopped = result.stopped,
    save_as = result.save_as, error_kinds = result.error_kinds}, {model = info.model,
    dataset = info.dataset, date = date})
  scores_section(b, scores)
  if critics then critics_section(b, rows, critics) end
  latency_section(b, rows, latencies)
  failures_section(b, rows)
  rows_section(b, result)
  b.add("</main><script>" .. SCRIPT .. "</script></body></html>\n")
  return table.concat(b.parts)
end

--- write(path, result, info) → path: the page written atomically (the old report
-- or the new one, never half of one); a file that cannot be written raises the
-- `io` error naming it.
function M.write(path, result, info)
  core.write_atomic(path, M.render(result, info))
  M.last = path
  return path
end

-- ---- tide.Evaluate's report option ---------------------------------------------------

local INFO_KEYS = {path = true, dataset = true, model = true, title = true}

--- Checks tide.Evaluate's `report` option: a path, or {path, dataset, model, title}
-- (texts); fail(option, message) raises the misuse at the caller's line.
function M.check_option(v, fail)
  if type(v) == "string" then
    if v == "" then fail("report", "a file path expected, got an empty string") end
    return
  end
  if type(v) ~= "table" then
    fail("report", "a file path or {path =, dataset =, model =, title =} expected, got " .. type(v))
  end
  if type(v.path) ~= "string" or v.path == "" then
    fail("report", "report.path must be a file path, got " .. type(v.path))
  end
  for k, x in pairs(v) do
    if not INFO_KEYS[k] then fail("report", "unknown key report." .. tostring(k)) end
    if type(x) ~= "string" then fail("report", "report." .. k .. " must be a string, got " .. type(x)) end
  end
end

--- The report of an evaluation's result, for tide.Evaluate's `report` option (as
-- checked above); the model is the option's, else the default LM's.  → the path,
-- or nil and the error (an `io` error) when the file could not be written.
function M.for_evaluation(option, result, secrets, lm)
  local info = type(option) == "table" and option or {path = option}
  local ok, err = pcall(M.write, info.path, result, {dataset = info.dataset, title = info.title,
    model = info.model or (lm and lm.model), secrets = secrets})
  if not ok then return nil, err end
  return info.path
end

return M
