-- tide.Image / tide.Audio / tide.File: reading and encoding (once), the typed
-- `media` errors, DSPy's ChatAdapter placement of media among the text parts
-- (golden), each wire format's parts, and calls against mockllm (strict) in the
-- three formats, whose replies show the media parts that arrived ("<MIME N bytes>").
local tide = require "tide"
local cjson = require "cjson"
local media = require "tide.media"
local chat = require "tide.adapters.chat"
local json_adapter = require "tide.adapters.json"
local openai = require "tide.providers.openai"
local anthropic = require "tide.providers.anthropic"
local gemini = require "tide.providers.gemini"
local mockllm = require "support.mockllm"
local files = require "support.files"
local assert_clean = require "support.clean"
local lm_server = require "support.lm_server"
local PROVIDERS = lm_server.PROVIDERS
local cfg_for = require("support.providers").cfg_for

-- The bytes of a small PNG-looking file (mockllm counts bytes, it does not decode images).
local PNG = "\137PNG\r\n\26\n" .. string.rep("\0\1\2\255", 64)     -- 264 bytes

local function media_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(tide.is_error(err, "media"), tostring(err))
  return err
end

describe("media values", function()
  local dir
  setup(function()
    dir = files.tmpdir()
    files.write(dir .. "/cat.png", PNG)
    files.write(dir .. "/voice.wav", "RIFF....WAVEfmt " .. string.rep("\0", 100))
    files.write(dir .. "/paper.pdf", "%PDF-1.4\n" .. string.rep("x", 91))
    files.write(dir .. "/pic.bmp", "BM")
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)
  after_each(assert_clean)

  it("reads a file once, knowing its type from the extension; shows what, never the bytes", function()
    local img = tide.Image{path = dir .. "/cat.png"}
    assert.are.equal("image", img.kind)
    assert.are.equal("image/png", img.mime)
    assert.are.equal("path", img.source)
    assert.are.equal(#PNG, img.size)
    assert.are.equal(require("tide.core").sha256(PNG), img.digest)
    assert.are.equal("tide.Image(image/png, 264 bytes, " .. dir .. "/cat.png)", tostring(img))
    for _, v in pairs(img) do assert.are_not.equal(PNG, v) end   -- no field holds the bytes
    local f = tide.File{path = dir .. "/paper.pdf"}
    assert.are.equal("application/pdf", f.mime)
    assert.are.equal("paper.pdf", f.filename)
    assert.are.equal("audio/wav", tide.Audio{path = dir .. "/voice.wav"}.mime)
  end)

  it("encodes standard base64, once per value", function()
    assert.are.equal("", media.base64(""))
    assert.are.equal("Zg==", media.base64("f"))
    assert.are.equal("Zm8=", media.base64("fo"))
    assert.are.equal("Zm9vYmFy", media.base64("foobar"))
    assert.are.equal("AP9/", media.base64("\0\255\127"))
    local img = tide.Image{bytes = PNG, mime = "image/png"}
    local encode = spy.on(media, "base64")
    local first = img:base64()
    assert.are.equal(first, img:base64())
    assert.are.equal("data:image/png;base64," .. first, img:data_url())
    assert.spy(encode).was.called(1)
    media.base64:revert()
    local back = io.popen("printf '%s' '" .. first .. "' | base64 -d | od -v -An -tx1 | tr -d ' \\n'")
    local hex = back:read("a")
    back:close()
    assert.are.equal((PNG:gsub(".", function(c) return string.format("%02x", c:byte()) end)), hex)
  end)

  it("takes a URL as it is, its type from the extension when it has one", function()
    local img = tide.Image{url = "https://example.com/a/chart.JPG?x=1"}
    assert.are.equal("image/jpeg", img.mime)
    assert.are.equal("https://example.com/a/chart.JPG?x=1", img:data_url())
    assert.is_nil(img:base64())
    assert.is_nil(img.size)
  end)

  it("raises typed media errors naming the path or mime type and the fix", function()
    local err = media_error(tide.Image, {path = dir .. "/missing.png"})
    assert.matches("cannot read '" .. dir:gsub("%p", "%%%0") .. "/missing.png': No such file", err.message)
    assert.matches("check the path", err.message)
    assert.are.equal(dir .. "/missing.png", err.path)
    err = media_error(tide.Image, {path = dir .. "/pic.bmp"})
    assert.matches("unknown extension '.bmp'", err.message, 1, true)
    assert.matches("known: .gif, .heic, .heif, .jpeg, .jpg, .png, .webp", err.message, 1, true)
    assert.matches("{bytes = ..., mime = ...}", err.message, 1, true)
    err = media_error(tide.Audio, {bytes = "x", mime = "audio/x-weird"})
    assert.matches("unsupported mime type 'audio/x-weird' (one of audio/aac", err.message, 1, true)
    assert.are.equal("audio/x-weird", err.mime)
    assert.is_false(tide.errors.retryable(err))
  end)

  it("refuses misuse at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, msg = pcall(tide.Image, {path = "a.png", url = "http://x/a.png"})
    assert.is_false(ok)
    assert.matches("media_spec.lua:" .. line .. ":", msg, 1, true)
    assert.matches("exactly one", msg)
    assert.matches("needs its mime type", select(2, pcall(tide.Image, {bytes = PNG})))
    assert.matches("http%(s%)://", select(2, pcall(tide.Image, {url = "/tmp/a.png"})))
    assert.matches("bad argument #1 to 'tide.File'", select(2, pcall(tide.File, "a.pdf")))
  end)

  describe("in a ChatAdapter prompt", function()
    local sig = tide.Signature("photo: image, question -> answer")

    it("splits the user turn around the image as DSPy does (golden)", function()
      local img = tide.Image{bytes = "abc", mime = "image/png"}
      local msgs = chat.format(sig, {photo = img, question = "What animal?"},
        {{photo = img, question = "Which?", answer = "A cat."}})
      assert.are.equal(table.concat({
        "Your input fields are:",
        "1. `photo` (Image): ",
        "2. `question` (str):",
        "Your output fields are:",
        "1. `answer` (str):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "[[ ## photo ## ]]",
        "{photo}",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "[[ ## answer ## ]]",
        "{answer}",
        "",
        "[[ ## completed ## ]]",
        "In adhering to this structure, your objective is: ",
        "        Given the fields `photo`, `question`, produce the fields `answer`."}, "\n"),
        msgs[1].content)
      -- what DSPy's split_message_content_for_custom_types makes of the turn, in
      -- OpenAI's shape (the form DSPy hands LiteLLM)
      local image_part = {type = "image_url", image_url = {url = "data:image/png;base64,YWJj"}}
      assert.are.same({
        {type = "text", text = "[[ ## photo ## ]]\n"}, image_part,
        {type = "text", text = "\n\n[[ ## question ## ]]\nWhich?"},
      }, cjson.decode(cjson.encode(require("tide.providers.media").openai(msgs[2].content))))
      assert.are.equal("[[ ## answer ## ]]\nA cat.\n\n[[ ## completed ## ]]\n", msgs[3].content)
      assert.are.same({
        {type = "text", text = "[[ ## photo ## ]]\n"}, image_part,
        {type = "text", text = "\n\n[[ ## question ## ]]\nWhat animal?\n\nRespond with the " ..
          "corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then " ..
          "ending with the marker for `[[ ## completed ## ]]`."},
      }, cjson.decode(cjson.encode(require("tide.providers.media").openai(msgs[4].content))))
      -- the turn reads with the media in place in a history
      assert.matches("[[ ## photo ## ]]\ntide.Image(image/png, 3 bytes)\n\n[[ ## question", tostring(msgs[4].content), 1, true)
    end)

    it("ends a turn with the media when it comes last, as DSPy's strip leaves it", function()
      local s = tide.Signature("question, photo: image -> answer")
      local img = tide.Image{bytes = "abc", mime = "image/png"}
      local msgs = json_adapter.format(s, {question = "Q"}, {{question = "q", photo = img, answer = "a"}})
      local turn = msgs[2].content
      assert.are.equal(2, #turn)
      assert.are.equal("[[ ## question ## ]]\nq\n\n[[ ## photo ## ]]\n", turn[1])
      assert.are.equal(img, turn[2])
    end)

    it("writes a list of images as DSPy's JSON list of marked blobs, split around each", function()
      local s = tide.Signature("photos: list[image], question -> answer")
      local a, b = tide.Image{bytes = "abc", mime = "image/png"}, tide.Image{url = "https://x/y.jpg"}
      local msgs = chat.format(s, {photos = {a, b}, question = "Same?"})
      assert.matches("1. `photos` (list[Image]): ", msgs[1].content, 1, true)
      assert.are.same({'[[ ## photos ## ]]\n["', a, '", "', b, '"]\n\n[[ ## question ## ]]\nSame?\n\n' ..
        "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, " ..
        "and then ending with the marker for `[[ ## completed ## ]]`."}, {table.unpack(msgs[2].content)})
      assert.is_string(chat.format(s, {photos = {}, question = "Q"})[2].content)   -- no media: text
      local ok, msg = pcall(chat.format, s, {photos = {a, "b.png"}, question = "Q"})
      assert.is_false(ok)
      assert.matches("item 2 must be a tide.Image value, got string", msg, 1, true)
      assert.matches("which only inputs may be", select(2, pcall(tide.Signature, "q -> p: list[image]")))
    end)

    it("refuses a value that is not a media value for a media input", function()
      local ok, msg = pcall(chat.format, sig, {photo = "cat.png", question = "q"})
      assert.is_false(ok)
      assert.matches("input 'photo' is typed image: pass tide.Image{path = ...}", msg, 1, true)
    end)
  end)

  describe("in each wire format", function()
    local img = tide.Image{bytes = "abc", mime = "image/png"}
    local url_img = tide.Image{url = "https://example.com/c.png"}
    local wav = tide.Audio{bytes = "wav!", mime = "audio/wav"}
    local pdf = tide.File{bytes = "%PDF", mime = "application/pdf", filename = "p.pdf"}
    local function body(provider, model, content)
      local r = provider.build(cfg_for(model),
        {messages = {{role = "system", content = "S"}, {role = "user", content = content}}})
      return cjson.decode(r.body)
    end

    it("OpenAI: image_url (a data URL for bytes), input_audio, file", function()
      local b = body(openai, "openai/gpt-4o", {"look:", img, url_img, wav, pdf})
      assert.are.same({
        {type = "text", text = "look:"},
        {type = "image_url", image_url = {url = "data:image/png;base64,YWJj"}},
        {type = "image_url", image_url = {url = "https://example.com/c.png"}},
        {type = "input_audio", input_audio = {data = "d2F2IQ==", format = "wav"}},
        {type = "file", file = {file_data = "data:application/pdf;base64,JVBERg==", filename = "p.pdf"}},
      }, b.messages[2].content)
      assert.are.equal("S", b.messages[1].content)
    end)

    it("Anthropic: image and document source blocks, base64 or url", function()
      local b = body(anthropic, "anthropic/claude-sonnet-4", {"look:", img, url_img, pdf})
      assert.are.same({
        {type = "text", text = "look:"},
        {type = "image", source = {type = "base64", media_type = "image/png", data = "YWJj"}},
        {type = "image", source = {type = "url", url = "https://example.com/c.png"}},
        {type = "document", source = {type = "base64", media_type = "application/pdf", data = "JVBERg=="}},
      }, b.messages[1].content)
      assert.are.equal("S", b.system)
    end)

    it("Gemini: inlineData for bytes, fileData for a URL", function()
      local b = body(gemini, "gemini/gemini-2.5-flash", {"look:", img, url_img, wav})
      assert.are.same({
        {text = "look:"},
        {inlineData = {mimeType = "image/png", data = "YWJj"}},
        {fileData = {mimeType = "image/png", fileUri = "https://example.com/c.png"}},
        {inlineData = {mimeType = "audio/wav", data = "d2F2IQ=="}},
      }, b.contents[1].parts)
    end)

    it("raises a media error for what a provider does not take, saying what to do", function()
      local err = media_error(body, anthropic, "anthropic/claude-sonnet-4", {wav})
      assert.matches("anthropic takes no audio input", err.message, 1, true)
      err = media_error(body, openai, "openai/gpt-4o", {tide.Audio{url = "https://x/a.wav"}})
      assert.matches("takes audio as data, not a URL", err.message, 1, true)
      err = media_error(body, openai, "openai/gpt-4o", {tide.Audio{bytes = "x", mime = "audio/flac"}})
      assert.matches("takes wav or mp3 audio", err.message, 1, true)
      err = media_error(body, openai, "openai/gpt-4o", {tide.File{bytes = "x", mime = "text/plain"}})
      assert.matches("openai takes PDF files", err.message, 1, true)
      local big = tide.Image{bytes = string.rep("x", 5 * 1024 * 1024 + 1), mime = "image/png"}
      err = media_error(body, anthropic, "anthropic/claude-sonnet-4", {big})
      assert.matches("too large for anthropic: 5.0 MB, at most 5.0 MB per image", err.message, 1, true)
      assert.are.equal("anthropic", err.provider)
      body(openai, "openai/gpt-4o", {big})      -- OpenAI takes up to 20 MB
    end)
  end)

  describe("against mockllm", function()
    local server
    setup(function() server = mockllm.start() end)
    teardown(function() server:stop() end)
    before_each(function() server:reset() end)

    local function lm_for(p, opts) return lm_server.lm_for(server, p, nil, opts) end

    for _, p in ipairs(PROVIDERS) do
      describe(p.name, function()
        it("lm:call sends text and media parts; the server counts the image's bytes", function()
          local img = tide.Image{path = dir .. "/cat.png"}
          local r = lm_for(p):call{messages = {{role = "user", content = {img, "What is this?"}}}}
          assert.are.equal("Mock reply to: <image/png 264 bytes> What is this?", r.text)
        end)

        it("a Predict with an image input gets it through the adapter", function()
          local img = tide.Image{path = dir .. "/cat.png"}
          local pr = tide.Predict("photo: image, question -> answer", {lm = lm_for(p)})
          local out = pr({photo = img, question = "What?"})
          assert.matches("^Mock answer: <image/png 264 bytes>", out.answer)
        end)

        it("sends a list of images in their place", function()
          local img = tide.Image{path = dir .. "/cat.png"}
          local msgs = chat.format(tide.Signature("photos: list[image] -> answer"), {photos = {img, img}})
          table.remove(msgs, 1)     -- without the system message mockllm quotes the user's turn
          local r = lm_for(p):call{messages = msgs}
          -- (mockllm's quote leaves out the field's marker; the parts are joined by line breaks)
          assert.are.equal('Mock reply to: [" <image/png 264 bytes> ", " <image/png 264 bytes> "]', r.text)
        end)

        it("sends a PDF", function()
          local r = lm_for(p):call{messages = {{role = "user", content = {"Summarize", tide.File{path = dir .. "/paper.pdf"}}}}}
          assert.are.equal("Mock reply to: Summarize <application/pdf 100 bytes>", r.text)
        end)

        it("encodes an image once across retries and calls", function()
          local img = tide.Image{path = dir .. "/cat.png"}
          local encode = spy.on(media, "base64")
          local key = "media-" .. p.name
          local lm = lm_for(p, {num_retries = 3, headers = {["X-Mock-Scenario"] =
            "fail_first=2;status=500;key=" .. key}})
          local r = lm:call{messages = {{role = "user", content = {img, "again?"}}}}
          lm:call{messages = {{role = "user", content = {img, "and again?"}}}}
          media.base64:revert()
          assert.matches("<image/png 264 bytes>", r.text, 1, true)
          assert.are.equal(4, server:stats().requests)     -- two failures, then two answers
          assert.spy(encode).was.called(1)
        end)
      end)
    end

    it("OpenAI and Gemini take audio; the server counts its bytes", function()
      local wav = tide.Audio{path = dir .. "/voice.wav"}
      for _, p in ipairs{PROVIDERS[1], PROVIDERS[3]} do
        local r = lm_for(p):call{messages = {{role = "user", content = {"Transcribe", wav}}}}
        assert.are.equal("Mock reply to: Transcribe <audio/wav 116 bytes>", r.text)
      end
    end)

    it("caches by the media's content: another image is another request", function()
      local cache_dir = files.tmpdir()
      local saved = require("tide.lm").default_cache()
      tide.configure{cache = {dir = cache_dir}}
      local lm = lm_for(PROVIDERS[1], {cache = true})
      local a = tide.Image{bytes = "one", mime = "image/png"}
      local b = tide.Image{bytes = "two", mime = "image/png"}
      local function ask(img) return lm:call{messages = {{role = "user", content = {img, "?"}}}} end
      assert.is_falsy(ask(a).cached)
      assert.is_true(ask(tide.Image{bytes = "one", mime = "image/png"}).cached)
      assert.is_falsy(ask(b).cached)
      assert.are.equal(2, server:stats().requests)
      require("tide.lm").set_default_cache(saved)
      os.execute("rm -rf " .. cache_dir)
    end)

    it("strict mockllm refuses malformed media parts as the APIs do", function()
      local function post(path, headers, body)
        headers["Content-Type"] = "application/json"
        local r = tide.request{url = server.url .. path, method = "POST", headers = headers,
                               body = cjson.encode(body), timeout = 10}
        return r.status, cjson.decode(r.body)
      end
      local status, b = post("/v1/chat/completions", {Authorization = "Bearer k"}, {model = "m",
        messages = {{role = "user", content = {{type = "text", text = "hi"}, {type = "image_url", image_url = {}}}}}})
      assert.are.equal(400, status)
      assert.are.equal("Missing required parameter: 'messages[0].content[1].image_url.url'.", b.error.message)
      assert.are.equal("messages[0].content[1]", b.error.param)
      status, b = post("/v1/chat/completions", {Authorization = "Bearer k"}, {model = "m",
        messages = {{role = "user", content = {{type = "input_audio", input_audio = {data = "AA==", format = "flac"}}}}}})
      assert.are.equal(400, status)
      assert.are.equal("Invalid value: 'flac'. Supported values are: 'wav' and 'mp3'.", b.error.message)
      status, b = post("/v1/messages", {["x-api-key"] = "k", ["anthropic-version"] = "2023-06-01"},
        {model = "m", max_tokens = 5, messages = {{role = "user", content = {
          {type = "image", source = {type = "base64", media_type = "image/bmp", data = "AA=="}}}}}})
      assert.are.equal(400, status)
      assert.are.equal("messages.0.content.0.image.source.base64.media_type: Input should be " ..
        "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", b.error.message)
      status, b = post("/v1beta/models/g:generateContent", {["x-goog-api-key"] = "k"},
        {contents = {{role = "user", parts = {{text = "hi"}, {inlineData = {data = "AA=="}}}}}})
      assert.are.equal(400, status)
      assert.matches("contents[0].parts[1].inline_data.mime_type: Required field is not set.",
        b.error.message, 1, true)
    end)

    it("refuses media in a system message, and parts that are neither text nor media", function()
      local lm = lm_for(PROVIDERS[1])
      local ok, msg = pcall(lm.call, lm, {messages = {{role = "user", content = {"a", 5}}}})
      assert.is_false(ok)
      assert.matches("messages[1].content[2]", msg, 1, true)
      ok, msg = pcall(lm.call, lm, {messages = {{role = "system", content = {"a"}},
                                                {role = "user", content = "b"}}})
      assert.is_false(ok)
      assert.matches("messages[1] must be {role = string, content = string}", msg, 1, true)
    end)
  end)
end)
