-- predictor:stream: output fields streamed as they arrive.  The splitters are
-- checked against the adapters' own parse at every way of cutting a reply in
-- three, and end to end against mockllm in the three wire formats, where the
-- SSE deltas cut the markers themselves (checked on the raw stream first).
local tide = require "tide"
local field_stream = require "tide.adapters.field_stream"
local coerce = require "tide.adapters.coerce"
local chat = require "tide.adapters.chat"
local json_adapter = require "tide.adapters.json"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local PROVIDERS = require("support.lm_server").PROVIDERS

local SIG = tide.Signature("question -> reasoning, answer, score: int, tags: list[str]")

-- mockllm's scenario values are percent-encoded in the header
local function encode(s)
  return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The fields' text a splitter gives for text cut at `cuts` (and the splitter).
local function split(adapter_name, text, cuts, sig)
  local s, got, order = field_stream.splitter(adapter_name, sig or SIG), {}, {}
  local function emit(field, chunk)
    assert.are_not.equal("", chunk)
    if got[field] == nil then order[#order + 1] = field end
    got[field] = (got[field] or "") .. chunk
  end
  local from = 1
  for _, c in ipairs(cuts) do
    s:feed(text:sub(from, c), emit, false)
    from = c + 1
  end
  s:feed(text:sub(from), emit, true)
  return got, order, s
end

-- Checks a field's chunks against the parse: a str field's make its value (none:
-- the empty text), another field's read as its type give its value.
local function same_as_parse(out, got, where)
  for _, f in ipairs(SIG.outputs) do
    local value = got[f.name]
    if f.type.kind == "str" and value == nil then value = "" end   -- no chunk: empty text
    if f.type.kind ~= "str" and value ~= nil then value = coerce.value(value, f.type) end
    if not require("luassert.util").deepcompare(value, out[f.name], true) then
      error(string.format("%s: %s's chunks make %q, the parse reads %s", where, f.name,
        tostring(got[f.name]), require("tide.adapters.pyjson").dumps(out[f.name])))
    end
  end
end

local CHAT_REPLIES = {
  "[[ ## reasoning ## ]]\nStep one.\nStep two.\n\n[[ ## answer ## ]]\nParis\n\n" ..
    "[[ ## score ## ]]\n7\n\n[[ ## tags ## ]]\n[\"a\", \"b\"]\n\n[[ ## completed ## ]]\n",
  "Sure.\r\n[[ ## reasoning ## ]]  first line  \r\n\r\n  body [x] [[ ## no ## ]] [[ more\n" ..
    "  [[ ## answer ## ]]\nParis, [[ France ]]\n\n[[ ## score ## ]] 7\n[[ ## tags ## ]]\n" ..
    "[\"a\", \"b\"]\n[[ ## answer ## ]]\nignored\n[[ ## completed ## ]]\n[[ ## score ## ]]\n1",
  "[[ ## answer ## ]]\n\n\n   \n[[ ## reasoning ## ]]\t\tr\t\n[[ ## score ## ]]\n\t 7 \t\n" ..
    "[[ ## tags ## ]]\n['x']",
}
local JSON_REPLIES = {
  '{"reasoning": "Think", "answer": "Paris", "score": 7, "tags": ["a", "b"]}',
  '```json\n{"reasoning": "Say \\"hi\\" \\u00e9 \\ud83d\\ude00\\n ok", "other": {"a": "}"},\n' ..
    ' "answer": "x,}y" , "score" : 7 , "tags": ["a", "b,]}\\""]}\n```',
}

describe("field streaming", function()
  after_each(assert_clean)

  describe("splitters", function()
    -- every cut in two, and cuts in three a few bytes apart (all of them is
    -- quadratic in the reply, too slow for the suite)
    -- the chat splitter's sections make the parse's result, which the stream's
    -- prediction is read from
    local function same_sections(out, text, s, where)
      if s.sections and not require("luassert.util").deepcompare(
          chat.read_sections(SIG, text, s:sections()), out, true) then
        error(where .. ": the sections do not read as the parse")
      end
    end
    local function every_cut(adapter, name, text)
      local out = adapter.parse(SIG, text)
      for a = 0, #text do
        local got, _, s = split(name, text, {a})
        same_as_parse(out, got, "cut at " .. a)
        same_sections(out, text, s, "cut at " .. a)
        for b = a + 1, math.min(#text, a + 24) do
          got, _, s = split(name, text, {a, b})
          same_as_parse(out, got, string.format("cuts at %d, %d", a, b))
          same_sections(out, text, s, string.format("cuts at %d, %d", a, b))
        end
      end
    end

    for i, text in ipairs(CHAT_REPLIES) do
      it("chat reply " .. i .. ": at every cut, each field's chunks make the text the parse reads", function()
        every_cut(chat, "chat", text)
      end)
    end
    for i, text in ipairs(JSON_REPLIES) do
      it("JSON reply " .. i .. ": at every cut, each field's chunks make the value's text", function()
        every_cut(json_adapter, "json", text)
      end)
    end

    it("read an optional field's None and take its next section, as the parse does", function()
      local sig = tide.Signature("q -> note: Optional[str], answer")
      local text = "[[ ## note ## ]]\nNone\n\n[[ ## answer ## ]]\nA\n\n[[ ## note ## ]]\nlater\n"
      local got, _, s = split("chat", text, {20}, sig)
      assert.are.same(chat.parse(sig, text), chat.read_sections(sig, text, s:sections()))
      assert.are.equal("later", chat.parse(sig, text).note)
      assert.are.equal("None", got.note)     -- the stream shows the first section's text
    end)

    it("give the fields in the reply's order and nothing after [[ ## completed ## ]]", function()
      local got, order = split("chat", CHAT_REPLIES[2], {})
      assert.are.same({"reasoning", "answer", "score", "tags"}, order)
      assert.are.equal("Paris, [[ France ]]", got.answer)       -- the first section wins
      assert.are.equal("7", got.score)
    end)
  end)

  describe("against mockllm", function()
    local server
    setup(function() server = mockllm.start() end)
    teardown(function() server:stop() end)

    local function lm_for(p, scenario)
      return tide.LM(p.model, {api_key = "sk-spec", base_url = p.base(server), cache = false,
        num_retries = 0, headers = scenario and {["X-Mock-Scenario"] = scenario} or nil})
    end

    -- The events of one stream, checked: chunks never empty, the prediction last.
    local function collect(pr, inputs, opts)
      local fields, order, pred = {}, {}, nil
      for ev in pr:stream(inputs, opts) do
        assert.is_nil(pred, "an event after the prediction")
        if ev.prediction then
          pred = ev.prediction
        else
          assert.is_string(ev.field)
          assert.are_not.equal("", ev.chunk)
          if not fields[ev.field] then order[#order + 1] = ev.field end
          fields[ev.field] = (fields[ev.field] or "") .. ev.chunk
        end
      end
      return fields, order, pred
    end

    local REPLY = "Sure.\n[[ ## reasoning ## ]]\n  Let me think about it.\nStep two.  \n\n" ..
      "[[ ## answer ## ]] Paris is  the capital\n\n[[ ## score ## ]]\n7\n\n[[ ## tags ## ]]\n" ..
      "[\"a\", \"b\"]\n\n[[ ## completed ## ]]\ntrailing"

    for _, p in ipairs(PROVIDERS) do
      describe(p.name, function()
        it("streams each section's text; markers split across SSE events never leak", function()
          local lm = lm_for(p, "reply=" .. encode(REPLY))
          -- the raw stream cuts inside markers: a delta ends with "[[ ## " or a name
          local raw = {}
          for piece in lm:stream{messages = {{role = "user", content = "q"}}} do raw[#raw + 1] = piece end
          assert.are.equal(REPLY, table.concat(raw))
          local split_marker = false
          for i = 1, #raw - 1 do
            if raw[i]:match("%[%[ ##[^%]]*$") then split_marker = true end
          end
          assert.is_true(split_marker, "no delta ends inside a marker")
          local fields, order, pred = collect(tide.Predict(SIG, {lm = lm}), {question = "q"})
          assert.are.same({"reasoning", "answer", "score", "tags"}, order)
          assert.are.equal("Let me think about it.\nStep two.", fields.reasoning)
          assert.are.equal(pred.reasoning, fields.reasoning)
          assert.are.equal(pred.answer, fields.answer)
          assert.are.equal("Paris is  the capital", fields.answer)
          assert.are.equal("7", fields.score)
          assert.are.equal(7, pred.score)
          assert.are.same({"a", "b"}, pred.tags)
          for _, text in pairs(fields) do
            assert.is_nil(text:find("##", 1, true))
            assert.is_nil(text:find("completed", 1, true))
          end
          assert.are.equal(2, lm.usage.calls)
        end)

        it("streams the JSON adapter's values as the server answers its structured output", function()
          local lm = lm_for(p)
          local pr = tide.Predict("question -> answer, note, score: int", {lm = lm, adapter = json_adapter})
          local fields, order, pred = collect(pr, {question = "What is the capital of France?"})
          table.sort(order)   -- the order of the server's object (Anthropic's forced tool: its own)
          assert.are.same({"answer", "note", "score"}, order)
          assert.are.equal(pred.answer, fields.answer)
          assert.are.equal(pred.note, fields.note)
          assert.matches("^Mock answer", fields.answer)
          assert.are.equal(tostring(pred.score), fields.score)
        end)
      end)
    end

    it("leaving the loop early closes the stream and records the call as cancelled", function()
      local lm = lm_for(PROVIDERS[1], "reply=" .. encode(REPLY) .. ";stream_interval=20")
      local pr = tide.Predict(SIG, {lm = lm})
      local seen = {}
      for ev in pr:stream({question = "q"}) do
        seen[#seen + 1] = ev
        if ev.field == "answer" then break end
      end
      assert.are.equal("reasoning", seen[1].field)
      assert.is_nil(seen[#seen].prediction)
      assert.are.equal("cancelled", lm.history[1].error.kind)
      -- after_each: no transfer, task or timer left
    end)

    it("raises the parse error after the chunks when the reply has no fields and fallback is off", function()
      local lm = lm_for(PROVIDERS[1], "reply=" .. encode("just prose"))
      local pr = tide.Predict(SIG, {lm = lm, fallback = false})
      local events = 0
      local ok, err = pcall(function()
        for _ in pr:stream({question = "q"}) do events = events + 1 end
      end)
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "parse"))
      assert.are.equal(0, events)
    end)

    it("refuses what cannot stream, at the caller's line", function()
      local lm = lm_for(PROVIDERS[1])
      local pr = tide.Predict("question -> answer", {lm = lm})
      local ok, msg = pcall(pr.stream, pr, {question = "q"}, {config = {n = 2}})
      assert.is_false(ok)
      assert.matches("one reply streams at a time", msg, 1, true)
      ok, msg = pcall(pr.stream, pr, {question = "q"}, {adapter = {call = function() end}})
      assert.is_false(ok)
      assert.matches("needs tide.adapters.chat or tide.adapters.json", msg, 1, true)
      ok, msg = pcall(pr.stream, pr, {})
      assert.is_false(ok)
      assert.matches("missing input 'question'", msg, 1, true)
    end)
  end)
end)
