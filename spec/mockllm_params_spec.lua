-- The request parameters mockllm honours as the real APIs do: the token limit cuts
-- the reply (finish length / max_tokens / MAX_TOKENS), stop sequences cut before
-- them (Anthropic names the one it met), n and candidateCount give that many
-- different choices, and a JSON schema or a forced tool gets a reply valid against it.
local cjson = require "cjson"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local wire = require "support.routes"

local tokens = wire.tokens

describe("mockllm honours", function()
  local server
  setup(function() server = mockllm.start() end)
  teardown(function() server:stop() end)
  after_each(assert_clean)

  local function post(name, opts)
    local r = wire.post(server, name, opts)
    assert.are.equal(200, r.status, r.body)
    return cjson.decode(r.body), r
  end
  -- The reply text, its finish, its output token count and the body, in any format.
  local function answer(name, opts)
    local text, count, fin, b = wire.plain_text(server, name, opts)
    return text, fin, count, b
  end

  describe("the token limit", function()
    local FULL = "Mock reply to: " .. wire.PROMPT     -- 72 bytes, 18 tokens

    it("cuts the reply to that many tokens, finished by length, in every format", function()
      local cases = {
        {"openai", {max_tokens = 5}, "length"},
        {"openai", {max_completion_tokens = 5}, "length"},
        {"anthropic", {max_tokens = 5}, "max_tokens"},
        {"gemini", {generationConfig = {maxOutputTokens = 5}}, "MAX_TOKENS"},
      }
      for _, c in ipairs(cases) do
        local text, fin, count = answer(c[1], {fields = c[2]})
        assert.are.equal(FULL:sub(1, 20), text, c[1])
        assert.are.same({c[3], 5}, {fin, count}, c[1])
      end
    end)

    it("leaves a reply within it whole", function()
      local text, fin = answer("anthropic", {fields = {max_tokens = 18}})
      assert.are.same({FULL, "end_turn"}, {text, fin})
      text, fin = answer("openai", {fields = {max_tokens = 100}})
      assert.are.same({FULL, "stop"}, {text, fin})
    end)

    it("never cuts inside a UTF-8 character, and cuts a stream the same way", function()
      local text = answer("openai", {fields = {max_tokens = 2}, scenario = "reply=abcdefg%C3%A9xyz"})
      assert.are.equal("abcdefg", text)    -- 8 bytes would end inside the é
      local r = wire.post(server, "anthropic", {fields = {max_tokens = 5, stream = true}})
      local got, stop = {}, nil
      for _, ev in ipairs(wire.sse_events(r.body)) do
        local d = ev.data and cjson.decode(ev.data)
        if ev.event == "content_block_delta" then got[#got + 1] = d.delta.text end
        if ev.event == "message_delta" then stop = d.delta.stop_reason end
      end
      assert.are.same({FULL:sub(1, 20), "max_tokens"}, {table.concat(got), stop})
    end)
  end)

  describe("stop sequences", function()
    it("cut the reply before the first one met: OpenAI stop, Gemini STOP", function()
      local text, fin = answer("openai", {fields = {stop = {"robot", "story"}}})
      assert.are.same({"Mock reply to: tell me a ", "stop"}, {text, fin})
      text, fin = answer("openai", {fields = {stop = "small"}})    -- a single string too
      assert.are.same({"Mock reply to: tell me a story about a ", "stop"}, {text, fin})
      text, fin = answer("gemini", {fields = {generationConfig = {stopSequences = {"about"}}}})
      assert.are.same({"Mock reply to: tell me a story ", "STOP"}, {text, fin})
    end)

    it("end an Anthropic reply with stop_reason stop_sequence, naming it, streamed too", function()
      local text, fin, count, b = answer("anthropic", {fields = {stop_sequences = {"zebra", "story"}}})
      assert.are.same({"Mock reply to: tell me a ", "stop_sequence", "story"}, {text, fin, b.stop_sequence})
      assert.are.equal(tokens(text), count)
      local _, _, _, plain = answer("anthropic", {fields = {stop_sequences = {"zebra"}}})
      assert.are.same({"end_turn", cjson.null}, {plain.stop_reason, plain.stop_sequence})
      local r = wire.post(server, "anthropic", {fields = {stop_sequences = {"story"}, stream = true}})
      for _, ev in ipairs(wire.sse_events(r.body)) do
        if ev.event == "message_delta" then
          assert.are.same({stop_reason = "stop_sequence", stop_sequence = "story"}, cjson.decode(ev.data).delta)
        end
      end
    end)

    it("lose to the token limit when it comes first", function()
      local text, fin = answer("openai", {fields = {stop = {"painting"}, max_tokens = 3}})
      assert.are.same({"Mock reply t", "length"}, {text, fin})
    end)
  end)

  describe("several choices", function()
    it("n gives that many different OpenAI choices, counted together in usage", function()
      local b = post("openai", {fields = {n = 3}})
      assert.are.equal(3, #b.choices)
      local seen, sum = {}, 0
      for i, c in ipairs(b.choices) do
        assert.are.same({i - 1, "stop"}, {c.index, c.finish_reason})
        assert.is_nil(seen[c.message.content])
        seen[c.message.content] = true
        sum = sum + tokens(c.message.content)
      end
      assert.are.equal("Mock reply to: " .. wire.PROMPT, b.choices[1].message.content)
      assert.are.equal(sum, b.usage.completion_tokens)
    end)

    it("n streams every OpenAI choice, each with its index and finish", function()
      local plain = post("openai", {fields = {n = 2}})
      local r = wire.post(server, "openai", {fields = {n = 2, stream = true,
        stream_options = {include_usage = true}}})
      local text, fin, usage = {[0] = "", [1] = ""}, {}, nil
      for _, ev in ipairs(wire.sse_events(r.body)) do
        if ev.data ~= "[DONE]" then
          local d = cjson.decode(ev.data)
          for _, c in ipairs(d.choices) do
            text[c.index] = text[c.index] .. (c.delta.content or "")
            if c.finish_reason ~= cjson.null then fin[c.index] = c.finish_reason end
          end
          if d.usage ~= cjson.null then usage = d.usage end
        end
      end
      assert.are.same({plain.choices[1].message.content, plain.choices[2].message.content},
        {text[0], text[1]})
      assert.are.same({"stop", "stop"}, {fin[0], fin[1]})
      assert.are.equal(plain.usage.completion_tokens, usage.completion_tokens)
    end)

    it("candidateCount gives that many different Gemini candidates", function()
      local b = post("gemini", {fields = {generationConfig = {candidateCount = 2}}})
      assert.are.equal(2, #b.candidates)
      local a, c = b.candidates[1], b.candidates[2]
      assert.are.same({0, 1}, {a.index, c.index})
      assert.are_not.equal(a.content.parts[1].text, c.content.parts[1].text)
      assert.are.equal(tokens(a.content.parts[1].text) + tokens(c.content.parts[1].text),
        b.usageMetadata.candidatesTokenCount)
    end)

    it("each choice is cut by the same parameters, and DSPy fields differ between them", function()
      local b = post("openai", {fields = {n = 2, max_tokens = 4}})
      for _, c in ipairs(b.choices) do
        assert.are.same({"length", 16}, {c.finish_reason, #c.message.content})
      end
      local prompt = "Your output fields are:\n1. `answer` (str): the answer\n2. `score` (int): a score\n"
        .. "All interactions will be structured"
      b = post("openai", {fields = {n = 2, messages = {{role = "system", content = prompt},
        {role = "user", content = "hello"}}}})
      local one, two = b.choices[1].message.content, b.choices[2].message.content
      assert.matches("%[%[ ## completed ## %]%]$", two)
      assert.are_not.equal(one, two)
    end)
  end)

  describe("structured outputs", function()
    -- nested objects, a $ref into $defs, an array with minItems, an enum, bounds, a nullable type
    local SCHEMA = {type = "object", additionalProperties = false,
      required = {"title", "rating", "tags", "author", "kind", "score", "note"},
      properties = {
        title = {type = "string"},
        rating = {type = "integer", minimum = 50, maximum = 60},
        tags = {type = "array", minItems = 2, items = {type = "string"}},
        author = {["$ref"] = "#/$defs/Person"},
        kind = {type = "string", enum = {"essay", "poem"}},
        score = {type = "number", maximum = 0.5},
        note = {type = {"string", "null"}},
      },
      ["$defs"] = {Person = {type = "object", additionalProperties = false,
        required = {"name", "age", "active"}, properties = {name = {type = "string"},
        age = {type = "integer", minimum = 18}, active = {type = "boolean"}}}}}

    -- Checks value against SCHEMA's shape, field by field.
    local function valid(v)
      assert.are.equal("string", type(v.title))
      assert.is_true(v.rating % 1 == 0 and v.rating >= 50 and v.rating <= 60)
      assert.is_true(#v.tags >= 2)
      for _, t in ipairs(v.tags) do assert.are.equal("string", type(t)) end
      assert.are.equal("string", type(v.author.name))
      assert.is_true(v.author.age % 1 == 0 and v.author.age >= 18)
      assert.are.equal(true, v.author.active)
      assert.are.equal("essay", v.kind)
      assert.is_true(v.score <= 0.5)
      assert.are.equal("string", type(v.note))
    end

    it("answers OpenAI's json_schema response_format with a value valid against it", function()
      local text = answer("openai", {fields = {response_format = {type = "json_schema",
        json_schema = {name = "review", strict = true, schema = SCHEMA}}}})
      valid(cjson.decode(text))
    end)

    it("answers Gemini's responseJsonSchema and responseSchema (types in capitals)", function()
      valid(cjson.decode((answer("gemini", {fields = {generationConfig = {
        responseMimeType = "application/json", responseJsonSchema = SCHEMA}}}))))
      local v = cjson.decode((answer("gemini", {fields = {generationConfig = {
        responseMimeType = "application/json", responseSchema = {type = "OBJECT", properties = {
          n = {type = "INTEGER"}, xs = {type = "ARRAY", items = {type = "NUMBER"}}}}}}})))
      assert.is_true(v.n % 1 == 0 and #v.xs == 1 and type(v.xs[1]) == "number")
    end)

    it("answers an Anthropic tool forced by tool_choice with a tool_use block, streamed too", function()
      local fields = {tools = {{name = "other", input_schema = {type = "object", properties = {}}},
        {name = "record_review", description = "d", input_schema = SCHEMA}},
        tool_choice = {type = "tool", name = "record_review"}}
      local b = post("anthropic", {fields = fields})
      assert.are.equal("tool_use", b.stop_reason)
      local block = b.content[1]
      assert.are.same({"tool_use", "record_review"}, {block.type, block.name})
      assert.matches("^toolu_", block.id)
      valid(block.input)
      fields.stream = true
      local r = wire.post(server, "anthropic", {fields = fields})
      local json, start, stop = {}, nil, nil
      for _, ev in ipairs(wire.sse_events(r.body)) do
        local d = ev.data and cjson.decode(ev.data)
        if ev.event == "content_block_start" then start = d.content_block end
        if ev.event == "content_block_delta" then
          assert.are.equal("input_json_delta", d.delta.type)
          json[#json + 1] = d.delta.partial_json
        end
        if ev.event == "message_delta" then stop = d.delta.stop_reason end
      end
      assert.are.same({"tool_use", "record_review", "tool_use"}, {start.type, start.name, stop})
      valid(cjson.decode(table.concat(json)))
    end)
  end)
end)
