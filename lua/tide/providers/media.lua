--- Message content made of text and media, in each wire format.
--
-- A message's content is a string, or a list of strings and tide.Image /
-- tide.Audio / tide.File values (tide.media).  Each provider's request
-- builder calls one function here for such a list:
--   openai(content)    → [{type = "text"}, {type = "image_url"}, {type = "input_audio"},
--                          {type = "file"}]
--   anthropic(list)    → [{type = "text"}, {type = "image", source}, {type = "document", source}]
--   gemini(list)       → [{text}, {inlineData = {mimeType, data}}, {fileData = {mimeType, fileUri}}]
-- A value a provider cannot take (Anthropic has no audio; OpenAI takes audio as
-- wav or mp3 data only) or one over its size limit raises a `media` error
-- saying what to do instead.  The base64 is the value's own, made once.
local media = require "tide.media"

local M = {}

local MB = 1024 * 1024

-- The largest media each API takes inline (bytes before base64), by kind.
local LIMITS = {
  openai = {image = 20 * MB, audio = 25 * MB, file = 32 * MB},
  anthropic = {image = 5 * MB, file = 32 * MB},
  gemini = {image = 20 * MB, audio = 20 * MB, file = 20 * MB},
}

local function megabytes(n)
  return string.format("%.1f MB", n / MB)
end

local function check_size(provider, v)
  if v.source == "url" then return end
  local limit = LIMITS[provider][v.kind]
  if v.size > limit then
    media.fail(string.format("%s is too large for %s: %s, at most %s per %s inline (make it " ..
      "smaller, or pass a {url = ...} the provider can fetch)", tostring(v), provider,
      megabytes(v.size), megabytes(limit), v.kind), {provider = provider, size = v.size})
  end
end

local function refuse(provider, v, why)
  media.fail(string.format("%s: %s %s", tostring(v), provider, why), {provider = provider})
end

-- ---- OpenAI ----------------------------------------------------------------------------

-- input_audio's format: the API knows "wav" and "mp3".
local OPENAI_AUDIO = {["audio/wav"] = "wav", ["audio/mpeg"] = "mp3"}

local function openai_part(v)
  if type(v) == "string" then return {type = "text", text = v} end
  check_size("openai", v)
  if v.kind == "image" then
    return {type = "image_url", image_url = {url = v:data_url()}}
  elseif v.kind == "audio" then
    if v.source == "url" then
      refuse("openai", v, "takes audio as data, not a URL: pass {path = ...} or {bytes = ..., mime = ...}")
    end
    local format = OPENAI_AUDIO[v.mime]
    if not format then refuse("openai", v, "takes wav or mp3 audio (audio/wav, audio/mpeg)") end
    return {type = "input_audio", input_audio = {data = v:base64(), format = format}}
  end
  if v.source == "url" then
    refuse("openai", v, "takes a file as data, not a URL: pass {path = ...} or {bytes = ..., mime = ...}")
  end
  if v.mime ~= "application/pdf" then refuse("openai", v, "takes PDF files (send plain text as text)") end
  return {type = "file", file = {file_data = v:data_url(), filename = v.filename or "file.pdf"}}
end

--- openai(content) → the content as OpenAI's chat messages take it: a string
-- as is, a list as content parts.
function M.openai(content)
  if type(content) ~= "table" then return content end
  local parts = {}
  for i, v in ipairs(content) do parts[i] = openai_part(v) end
  return parts
end

-- ---- Anthropic -------------------------------------------------------------------------

local ANTHROPIC_IMAGES = {["image/png"] = true, ["image/jpeg"] = true, ["image/gif"] = true,
                          ["image/webp"] = true}

local function anthropic_block(v)
  if type(v) == "string" then return {type = "text", text = v} end
  if v.kind == "audio" then refuse("anthropic", v, "takes no audio input") end
  check_size("anthropic", v)
  local source
  if v.source == "url" then
    source = {type = "url", url = v.url}
  else
    source = {type = "base64", media_type = v.mime, data = v:base64()}
  end
  if v.kind == "image" then
    if v.source ~= "url" and not ANTHROPIC_IMAGES[v.mime] then
      refuse("anthropic", v, "takes png, jpeg, gif and webp images")
    end
    return {type = "image", source = source}
  end
  if v.mime ~= "application/pdf" and v.source ~= "url" then
    refuse("anthropic", v, "takes PDF documents (send plain text as text)")
  end
  return {type = "document", source = source}
end

--- anthropic(texts) → the content blocks of one turn: texts is the turn's
-- contents in order (strings and lists of parts); empty strings are left out
-- (the API refuses empty text blocks).
function M.anthropic(texts)
  local blocks = {}
  for _, content in ipairs(texts) do
    if type(content) == "table" then
      for _, v in ipairs(content) do
        if v ~= "" then blocks[#blocks + 1] = anthropic_block(v) end
      end
    elseif content ~= "" then
      blocks[#blocks + 1] = anthropic_block(content)
    end
  end
  return blocks
end

-- ---- Gemini ----------------------------------------------------------------------------

local function gemini_part(v)
  if type(v) == "string" then return {text = v} end
  check_size("gemini", v)
  if v.source == "url" then return {fileData = {mimeType = v.mime, fileUri = v.url}} end
  return {inlineData = {mimeType = v.mime, data = v:base64()}}
end

--- gemini(texts) → the parts of one turn (strings and lists of parts, in order).
function M.gemini(texts)
  local parts = {}
  for _, content in ipairs(texts) do
    if type(content) == "table" then
      for _, v in ipairs(content) do
        if v ~= "" then parts[#parts + 1] = gemini_part(v) end
      end
    else
      parts[#parts + 1] = gemini_part(content)
    end
  end
  return parts
end

--- has_parts(texts) → whether one of the contents is a list of parts.
function M.has_parts(texts)
  for _, content in ipairs(texts) do
    if type(content) == "table" then return true end
  end
  return false
end

return M
