--- Media values: images, audio and files (PDFs) given to a model beside text.
--
--   local photo = tide.Image{path = "cat.png"}            -- read now, encoded once
--   local chart = tide.Image{url = "https://example.com/chart.png"}
--   local clip  = tide.Audio{bytes = wav, mime = "audio/wav"}
--   local paper = tide.File{path = "paper.pdf"}
--   p({photo = photo, question = "What is it?"})           -- an input typed `image`
--   lm:call{messages = {{role = "user", content = {photo, "What is it?"}}}}
--
-- A value is {kind, mime, source = "path" | "url" | "bytes", path, url,
-- filename, size, digest}: what it is, never its bytes, so that a cache key,
-- a history entry or an error can show it whole.  The bytes and their base64
-- stay in a private table; the base64 is made on first use and kept, so an
-- image sent in many calls (and their retries) is encoded once, and the bytes
-- are dropped then.  Bad input (a missing file, an unknown extension or mime
-- type) raises a `media` error naming the path and the fix.
local core = require "tide.core"
local check = require "tide.check"

local M = {}

local Media = {}
Media.__index = Media
Media.__name = "tide.Media"

-- value → {bytes = string | nil, b64 = string | nil, data_url = string | nil}
local private = setmetatable({}, {__mode = "k"})

-- What each kind takes: extension → mime type.
local BY_EXTENSION = {
  image = {png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
           webp = "image/webp", heic = "image/heic", heif = "image/heif"},
  audio = {wav = "audio/wav", mp3 = "audio/mpeg", aac = "audio/aac", flac = "audio/flac",
           ogg = "audio/ogg", aiff = "audio/aiff", m4a = "audio/mp4"},
  file = {pdf = "application/pdf", txt = "text/plain"},
}

-- The constructor each kind has in tide, for messages.
local NAME = {image = "tide.Image", audio = "tide.Audio", file = "tide.File"}

local function known_mimes(kind)
  local set, list = {}, {}
  for _, mime in pairs(BY_EXTENSION[kind]) do
    if not set[mime] then
      set[mime] = true
      list[#list + 1] = mime
    end
  end
  table.sort(list)
  return set, list
end

local MIMES, MIME_LISTS = {}, {}
for kind in pairs(BY_EXTENSION) do MIMES[kind], MIME_LISTS[kind] = known_mimes(kind) end

local function extensions(kind)
  local list = {}
  for ext in pairs(BY_EXTENSION[kind]) do list[#list + 1] = "." .. ext end
  table.sort(list)
  return table.concat(list, ", ")
end

--- fail(message, fields): raises the `media` error.
local function fail(message, fields)
  local err = {kind = "media", message = message, retryable = false}
  for k, v in pairs(fields or {}) do err[k] = v end
  error(core.error(err), 0)
end
M.fail = fail

-- ---- base64 ---------------------------------------------------------------------------

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
-- Two output characters per 12 bits: one table look-up per half of a 3-byte
-- group, rather than four, keeps a 1 MB image under a tenth of a second.  Made on
-- first use: 4096 strings are a millisecond every `require "tide"` would pay.
local PAIR

local function pairs_table()
  local t = {}
  for v = 0, 4095 do
    local hi, lo = v >> 6, v & 63
    t[v] = ALPHABET:sub(hi + 1, hi + 1) .. ALPHABET:sub(lo + 1, lo + 1)
  end
  return t
end

--- base64(s) → s in standard base64 with padding.
function M.base64(s)
  PAIR = PAIR or pairs_table()
  local byte, n = string.byte, #s
  local out, k = {}, 0
  local whole = n - n % 3
  for i = 1, whole, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a << 16 | b << 8 | c
    out[k + 1], out[k + 2] = PAIR[v >> 12], PAIR[v & 4095]
    k = k + 2
  end
  local rest = n - whole
  if rest > 0 then
    local a, b = byte(s, whole + 1, n)
    local v = a << 16 | (b or 0) << 8
    out[k + 1] = PAIR[v >> 12]
    out[k + 2] = rest == 2 and (PAIR[v & 4095]:sub(1, 1) .. "=") or "=="
  end
  return table.concat(out)
end

-- ---- values ---------------------------------------------------------------------------

local function extension_of(path)
  return (path:match("%.([%w]+)$") or ""):lower()
end

local function mime_of_path(kind, fname, path)
  local ext = extension_of(path)
  local mime = BY_EXTENSION[kind][ext]
  if not mime then
    fail(string.format("%s: unknown extension %s in '%s' (known: %s); or pass {bytes = ..., " ..
      "mime = ...} with one of %s", fname, ext == "" and "(none)" or ("'." .. ext .. "'"), path,
      extensions(kind), table.concat(MIME_LISTS[kind], ", ")), {path = path})
  end
  return mime
end

local function check_mime(kind, fname, mime)
  if not MIMES[kind][mime] then
    fail(string.format("%s: unsupported mime type '%s' (one of %s)", fname, mime,
      table.concat(MIME_LISTS[kind], ", ")), {mime = mime})
  end
  return mime
end

local function read_file(fname, path)
  local f, why = io.open(path, "rb")
  if not f then
    why = (why or "?"):gsub("^.-: ", "", 1)   -- io.open's message starts with the path
    fail(string.format("%s: cannot read '%s': %s (check the path; it is read from the " ..
      "current directory when relative)", fname, path, why), {path = path})
  end
  local bytes = f:read("a")
  f:close()
  if bytes == nil then fail(string.format("%s: cannot read '%s' (a directory?)", fname, path),
    {path = path}) end
  return bytes
end

local function from_bytes(self, bytes)
  self.size = #bytes
  self.digest = core.sha256(bytes)
  private[self] = {bytes = bytes}
end

local SOURCES = "{path = ...}, {url = ...} or {bytes = ..., mime = ...}"

local function new(kind, opts)
  local fname = NAME[kind]
  check.type(fname, 1, opts, "table")
  local given = (opts.path ~= nil and 1 or 0) + (opts.url ~= nil and 1 or 0) +
    (opts.bytes ~= nil and 1 or 0)
  if given ~= 1 then check.fail(fname, 1, SOURCES .. " expected (exactly one)") end
  check.type(fname, "mime", opts.mime, "string", true)
  check.type(fname, "filename", opts.filename, "string", true)
  local self = setmetatable({kind = kind, filename = opts.filename}, Media)
  if opts.path ~= nil then
    check.type(fname, "path", opts.path, "string")
    self.source, self.path = "path", opts.path
    self.mime = opts.mime and check_mime(kind, fname, opts.mime) or mime_of_path(kind, fname, opts.path)
    from_bytes(self, read_file(fname, opts.path))
    if kind == "file" and not self.filename then self.filename = opts.path:match("([^/\\]+)$") end
  elseif opts.url ~= nil then
    check.type(fname, "url", opts.url, "string")
    local scheme = opts.url:match("^(%a[%w+.-]*):")
    if scheme ~= "http" and scheme ~= "https" and scheme ~= "gs" then
      check.fail(fname, "url", "an http(s):// or gs:// URL expected, got '" .. opts.url ..
        "' (a local file is {path = ...})")
    end
    self.source, self.url = "url", opts.url
    -- the extension, when it names a known type; else the provider is told nothing
    self.mime = opts.mime and check_mime(kind, fname, opts.mime) or
      BY_EXTENSION[kind][extension_of(opts.url:gsub("[?#].*$", ""))]
  else
    check.type(fname, "bytes", opts.bytes, "string")
    if opts.mime == nil then
      check.fail(fname, "mime", "{bytes = ...} needs its mime type, one of " ..
        table.concat(MIME_LISTS[kind], ", "))
    end
    self.source, self.mime = "bytes", check_mime(kind, fname, opts.mime)
    if #opts.bytes == 0 then fail(fname .. ": empty bytes") end
    from_bytes(self, opts.bytes)
  end
  return self
end

function M.image(opts) return new("image", opts) end
function M.audio(opts) return new("audio", opts) end
function M.file(opts) return new("file", opts) end

function M.is_media(v)
  return getmetatable(v) == Media
end

--- value:base64() → the bytes in base64, made once; nil for a URL.
function Media:base64()
  local p = private[self]
  if p == nil then return nil end
  if p.b64 == nil then
    p.b64 = M.base64(p.bytes)
    p.bytes = nil     -- only the base64 is sent from now on
  end
  return p.b64
end

--- value:data_url() → "data:MIME;base64,..." (a URL value: its URL), made once
-- too: a call in flight then holds only its request's body.
function Media:data_url()
  if self.url then return self.url end
  local p = private[self]
  if p.data_url == nil then p.data_url = "data:" .. self.mime .. ";base64," .. self:base64() end
  return p.data_url
end

--- What a value reads as in a history or a prompt's text.
function Media:__tostring()
  if self.url then return string.format("%s(%s)", NAME[self.kind], self.url) end
  return string.format("%s(%s, %d bytes%s)", NAME[self.kind], self.mime, self.size,
    self.path and (", " .. self.path) or "")
end

-- ---- message content made of parts ---------------------------------------------------

local Parts = {}
Parts.__name = "tide.media.Parts"

function Parts.__tostring(parts)
  local out = {}
  for i, part in ipairs(parts) do out[i] = tostring(part) end
  return table.concat(out)
end

--- parts(list) → the list marked as message content made of text and media
-- (its tostring shows the media in place, for history and the REPL).
function M.parts(list)
  return setmetatable(list, Parts)
end

--- check_content(fname, where, content): misuse unless content is a string or
-- a non-empty list of strings and media values.
function M.check_content(fname, where, content)
  if type(content) == "string" then return end
  if type(content) ~= "table" or #content == 0 then
    check.fail(fname, where, "a string or a list of strings and tide.Image/Audio/File " ..
      "values expected, got " .. type(content))
  end
  for i, part in ipairs(content) do
    if type(part) ~= "string" and not M.is_media(part) then
      check.fail(fname, string.format("%s[%d]", where, i), "a string or a tide.Image/Audio/" ..
        "File value expected, got " .. type(part))
    end
  end
end

--- text_of(content) → the text of a message's content (its media shown as
-- their tostring): what token estimates and DummyLM read.
function M.text_of(content)
  if type(content) ~= "table" then return content end
  local out = {}
  for i, part in ipairs(content) do out[i] = tostring(part) end
  return table.concat(out)
end

return M
