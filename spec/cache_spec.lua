-- The disk cache in a directory others might reach: what they plant is never
-- served, never followed, and a disk failure never fails a call.
local tide = require "tide"
local core = require "tide.core"
local cache = require "tide.cache"
local cjson = require "cjson"
local files = require "support.files"
local mockllm = require "support.mockllm"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
local IS_ROOT = files.sh("id -u"):match("^0%s") ~= nil
local ANSWER = {text = "the real answer", finish_reason = "stop", usage = {input = 3, output = 2,
  total = 5}, model = "m"}

local function sh(cmd)
  assert(os.execute(cmd), cmd)
end

local function mode_of(path)
  return files.sh("stat -c %a '" .. path .. "'"):match("%d+")
end

local function json_files(dir)
  local list = {}
  for line in files.sh("find '" .. dir .. "' -name '*.json*'"):gmatch("[^\n]+") do
    list[#list + 1] = line
  end
  return list
end

-- A cache whose warnings are collected instead of printed.
local function new_cache(dir)
  local warnings = {}
  local c = cache.new{dir = dir, warn = function(m) warnings[#warnings + 1] = m end}
  return c, warnings
end

local function plant_entry(c, key, text)
  sh("mkdir -p '" .. c.dir .. "/" .. key:sub(1, 2) .. "'")
  files.write(c:_path(key), cjson.encode{text = text, finish_reason = "stop", usage = {}})
end

describe("the disk cache's directory", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() sh("rm -rf '" .. dir .. "'") end)

  it("is created 0700 with its parents, and a private one is taken as it is", function()
    local path = dir .. "/a/b/cache"
    assert.is_true(core.mkdir_private(path))
    assert.are.equal("700", mode_of(path))
    assert.are.equal("700", mode_of(dir .. "/a"))
    assert.is_true(core.mkdir_private(path .. "/"))   -- again, and with a trailing slash
  end)

  it("is refused when others may write it, naming it and the fix, and never chmodded", function()
    local shared = dir .. "/shared"
    sh("mkdir '" .. shared .. "' && chmod 777 '" .. shared .. "'")
    local ok, err = pcall(core.mkdir_private, shared)
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "io"), tostring(err))
    assert.are.equal(shared, err.path)
    assert.matches(shared, err.message, 1, true)
    assert.matches("chmod 700 " .. shared, err.message, 1, true)
    assert.matches("TIDE_CACHE_DIR", err.message, 1, true)
    assert.are.equal("777", mode_of(shared))   -- the user's setup is theirs to change
  end)

  it("is refused when it belongs to another user", function()
    if not IS_ROOT then return pending("needs root to give a directory away") end
    local theirs = dir .. "/theirs"
    sh("mkdir '" .. theirs .. "' && chmod 700 '" .. theirs .. "' && chown 65534 '" .. theirs .. "'")
    local ok, err = pcall(core.mkdir_private, theirs)
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "io"))
    assert.matches("belongs to another user", err.message)
    assert.matches(theirs, err.message, 1, true)
  end)

  it("is refused when it is a file, and file errors are typed", function()
    files.write(dir .. "/plain", "x")
    local ok, err = pcall(core.mkdir_private, dir .. "/plain")
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "io"))
    ok, err = pcall(core.write_atomic, dir .. "/missing/entry.json", "{}")
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "io"))
    assert.matches("No such file or directory", err.message)
    assert.is_nil(core.read_private(dir .. "/missing.json"))
    assert.has_error(function() core.write_atomic(dir .. "/a\0b", "x") end)
  end)

  it("a shared one turns the disk off: a planted entry is not served, nothing is written", function()
    local shared = dir .. "/shared"
    sh("mkdir '" .. shared .. "' && chmod 777 '" .. shared .. "'")
    local c, warnings = new_cache(shared)
    local key = cache.key{"planted"}
    plant_entry(c, key, "an answer somebody planted")
    assert.is_nil(c:get(key))
    c:put(cache.key{"mine"}, ANSWER)
    c:put(cache.key{"mine too"}, ANSWER)
    assert.are.same({c:_path(key)}, json_files(shared))   -- only the planted one
    assert.are.equal(1, #warnings)                           -- said once, not per call
    assert.matches(shared, warnings[1], 1, true)
    assert.matches("chmod 700", warnings[1], 1, true)
    assert.are.equal("the real answer", c:get(cache.key{"mine"}).text)   -- memory still works
  end)
end)

describe("the disk cache's entries", function()
  local dir, outside
  before_each(function()
    dir = files.tmpdir()
    outside = files.tmpdir()
    files.write(outside .. "/precious", "precious data\n")
  end)
  after_each(function() sh("rm -rf '" .. dir .. "' '" .. outside .. "'") end)

  it("are written at an unpredictable temporary name: a planted symlink redirects nothing", function()
    local c = new_cache(dir)
    local key = cache.key{"symlinked"}
    local pid = assert(files.read("/proc/self/stat")):match("^(%d+)")
    sh("mkdir -p '" .. dir .. "/" .. key:sub(1, 2) .. "'")
    -- the name the temporary file used to have, and the entry's own name
    sh(string.format("ln -s '%s/precious' '%s.%s.tmp'", outside, c:_path(key), pid))
    c:put(key, ANSWER)
    assert.are.equal("precious data\n", files.read(outside .. "/precious"))
    local other = cache.key{"symlinked entry"}
    sh("mkdir -p '" .. dir .. "/" .. other:sub(1, 2) .. "'")
    sh(string.format("ln -s '%s/precious' '%s'", outside, c:_path(other)))
    c:put(other, ANSWER)
    assert.are.equal("precious data\n", files.read(outside .. "/precious"))
    -- the entry is a regular 0600 file now, not the link
    assert.are.equal("regular file", files.sh("stat -c %F '" .. c:_path(other) .. "'"):match("[^\n]+"))
    assert.are.equal("600", mode_of(c:_path(other)))
    assert.are.equal("the real answer", cjson.decode(files.read(c:_path(other))).text)
  end)

  it("are never read through a symlink", function()
    local c, warnings = new_cache(dir)
    local key = cache.key{"linked"}
    files.write(outside .. "/answer.json", cjson.encode{text = "planted through a link", usage = {}})
    sh("mkdir -p '" .. dir .. "/" .. key:sub(1, 2) .. "'")
    sh(string.format("ln -s '%s/answer.json' '%s'", outside, c:_path(key)))
    assert.is_nil(c:get(key))
    assert.are.equal(1, #warnings)
    assert.matches("symbolic link", warnings[1])
    local ok, err = pcall(core.read_private, c:_path(key))
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "io"))
  end)

  it("are never read when another user owns them", function()
    if not IS_ROOT then return pending("needs root to give a file away") end
    local c = new_cache(dir)
    local key = cache.key{"foreign"}
    plant_entry(c, key, "planted by another user")
    sh("chown 65534 '" .. c:_path(key) .. "'")
    assert.is_nil(c:get(key))
    c:put(key, ANSWER)   -- a real entry replaces it
    assert.are.equal("the real answer", new_cache(dir):get(key).text)
  end)

  it("round-trip through the disk, usage as integers", function()
    local c = new_cache(dir)
    local key = cache.key{"round trip"}
    c:put(key, ANSWER)
    local fresh = new_cache(dir)   -- as a new process: memory empty
    local got = fresh:get(key)
    assert.are.equal("the real answer", got.text)
    assert.are.equal(math.type(5), math.type(got.usage.total))
  end)
end)

describe("a cache that cannot store", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() sh("rm -rf '" .. dir .. "'") end)

  it("never raises for a value JSON cannot hold, and keeps it out of memory too", function()
    local c, warnings = new_cache(dir)
    local key = cache.key{"absurd"}
    local absurd = {text = "t", finish_reason = "stop", usage = {input = 1 / 0, output = 0 / 0}}
    assert.has_no_error(function() c:put(key, absurd) end)
    assert.is_nil(c:get(key))               -- memory does not serve what the disk refused
    assert.are.same({}, json_files(dir))
    assert.are.same({}, warnings)           -- the value's fault, not the disk's
    c:put(key, ANSWER)                      -- and the cache goes on
    assert.are.equal("the real answer", new_cache(dir):get(key).text)
  end)

  it("turns its disk off with one warning when the directory cannot be made", function()
    files.write(dir .. "/file", "x")
    local c, warnings = new_cache(dir .. "/file/cache")
    for i = 1, 3 do
      assert.has_no_error(function() c:put(cache.key{i}, ANSWER) end)
    end
    assert.are.equal(1, #warnings)
    assert.matches(dir .. "/file/cache", warnings[1], 1, true)
    assert.are.equal("the real answer", c:get(cache.key{2}).text)
  end)
end)

describe("an LM whose cache directory is shared", function()
  local server, dir
  setup(function()
    server = mockllm.start()
    dir = files.tmpdir()
  end)
  teardown(function()
    server:stop()
    sh("rm -rf '" .. dir .. "'")
  end)
  before_each(function() server:reset() end)

  -- "prompt_tokens": 1e999 decodes as inf, which cjson cannot encode: the cache
  -- writer used to raise "Cannot serialise number" out of a successful call.
  it("answers a call whose usage JSON cannot hold, and writes only valid entries", function()
    local c, warnings = new_cache(dir .. "/huge")
    local lm = tide.LM("openai/gpt-4o-mini", {base_url = server.url .. "/v1", api_key = "k",
      num_retries = 0, cache = c, headers = {["X-Mock-Scenario"] = "usage=huge"}})
    for _ = 1, 2 do
      local ok, r = pcall(lm.call, lm, "how many tokens?")
      assert.is_true(ok, tostring(r))
      assert.matches("how many tokens", r.text)
    end
    for _, path in ipairs(json_files(dir .. "/huge")) do
      assert.is_true(pcall(cjson.decode, files.read(path)), path)
    end
    assert.are.same({}, warnings)
  end)

  it("answers every call, warns once on stderr naming the directory, writes nothing there", function()
    local shared = dir .. "/shared"
    sh("mkdir '" .. shared .. "' && chmod 777 '" .. shared .. "'")
    local script = dir .. "/calls.lua"
    files.write(script, [[
      local tide = require "tide"
      local lm = tide.LM("openai/gpt-4o-mini", {base_url = os.getenv("MOCKLLM_URL") .. "/v1",
        api_key = "k", num_retries = 0})
      print(lm("first question"))
      print(lm("second question"))
      print(lm("first question"))
    ]])
    local out = files.sh(string.format("TIDE_CACHE_DIR='%s' MOCKLLM_URL=%s %s %s", shared,
      server.url, TIDE, script))
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    local warned = 0
    for _, line in ipairs(lines) do
      if line:find("disk cache in " .. shared, 1, true) then warned = warned + 1 end
    end
    assert.are.equal(1, warned, out)
    assert.matches("chmod 700", out)
    assert.are.same({}, json_files(shared))
    assert.are.equal(2, server:stats().requests, out)   -- the repeat came from memory
  end)
end)
