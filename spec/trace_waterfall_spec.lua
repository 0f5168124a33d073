-- scripts/trace_waterfall.lua, run by the tide binary on an OTLP export written by the
-- core's encoder: one trace's spans as rows in tree order, names escaped.
local files = require "support.files"
local otlp = require "tide.trace.otlp"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"

local function span(id, parent, name, start, finish, attrs)
  local s = {"4bf92f3577b34da6a3ce929d0e0e4736", id, parent or false, name, 1, start, finish, false, false}
  for k, v in pairs(attrs or {}) do s[k] = v end
  return s
end

describe("scripts/trace_waterfall.lua", function()
  it("draws each trace's spans under their parents, on one time line, every name escaped", function()
    local dir = files.tmpdir()
    local t = 1764806400
    local body = otlp.body({
      otlp.span(span("0000000000000003", "0000000000000002", "chat mock", t + 0.02, t + 0.12,
        {["gen_ai.operation.name"] = "chat", ["gen_ai.usage.input_tokens"] = 385,
         ["gen_ai.usage.output_tokens"] = 43})),
      otlp.span(span("0000000000000001", nil, "evaluate", t, t + 0.2)),
      otlp.span(span("0000000000000002", "0000000000000001", "<img src=x onerror=alert(1)>", t + 0.01, t + 0.15)),
    }, {["service.name"] = "critics"})
    files.write(dir .. "/exports.json", '[{"body": ' .. body .. '}]')
    local ok, html = files.run(string.format("%s scripts/trace_waterfall.lua %s/exports.json", TIDE, dir))
    os.execute("rm -rf " .. dir)
    assert.is_true(ok, html)
    assert.matches("trace 4bf92f3577b34da6a3ce929d0e0e4736 · 3 spans", html, 1, true)
    assert.is_nil(html:find("<img", 1, true))                    -- a span name is text, never markup
    local evaluate = html:find(">evaluate<", 1, true)
    local module = html:find("&lt;img src=x onerror=alert(1)&gt;", 1, true)
    local chat = html:find("chat mock · 385 in / 43 out", 1, true)
    assert.is_true(evaluate < module and module < chat)           -- parents first, children after
    assert.matches(">100 ms<", html, 1, true)                     -- the chat span's own length
    assert.matches(">0.200 s<", html, 1, true)                    -- the trace's time line
  end)
end)
