--- What libtide shows a host: only tide.h's functions among its symbols, no change
-- to the process it is loaded into, and a source tree whose folders keep the
-- library, the binary and mockllm apart.
local files = require "support.files"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
-- the build directory the suite runs against: the binary's
local BUILD = TIDE:match("^(.*)/tide$") or "build"
local LIBTIDE = BUILD .. "/libtide.a"
local CORE_SO = BUILD .. "/lib/tide/core.so"

local sh = files.run

--- The global symbols `file` defines, by name, from nm.
local function exported(file, dynamic)
  local ok, out = sh(string.format("nm %s --defined-only --format=posix %s",
    dynamic and "-D" or "-g", file))
  assert(ok, out)
  local names = {}
  for name, kind in out:gmatch("([^%s:]+) (%a) [^\n]*") do names[name] = kind end
  return names
end

--- The functions tide.h marks TIDE_API.
local function public_api()
  local api = {}
  for name in files.read("engine/include/tide.h"):gmatch("\nTIDE_API [^\n(]-([%w_]+)%(") do
    api[#api + 1] = name
  end
  return api
end

--- The names in `names` that are not tide_* or luaopen_*, sorted.
local function strangers(names)
  local list = {}
  for name in pairs(names) do
    if not name:match("^tide_") and not name:match("^luaopen_") then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

local function read_limits(cmd, preload)
  local ok, out = sh(cmd, preload)
  assert(ok, out)
  local soft, hard = out:match("Max open files%s+(%d+)%s+(%d+)")
  return tonumber(soft), tonumber(hard), out
end

describe("libtide's symbols", function()
  local api = public_api()

  it("tide.h marks its nine functions TIDE_API", function()
    assert.are.equal(9, #api, table.concat(api, " "))
  end)

  it("libtide.a defines tide.h's functions and no other global symbol", function()
    local names = exported(LIBTIDE)
    assert.are.same({}, strangers(names))
    for _, name in ipairs(api) do assert.are.equal("T", names[name], name) end
  end)

  it("tide/core.so exports tide.h's functions and no other symbol", function()
    local names = exported(CORE_SO, true)
    assert.are.same({}, strangers(names))
    for _, name in ipairs(api) do assert.are.equal("T", names[name], name) end
  end)

  it("a host's function named like an internal one links beside libtide.a", function()
    -- before the core's symbols were hidden, libtide.a defined error_push,
    -- op_init, task_spawn...: a host with its own error_push failed to link
    local dir = os.tmpname()
    os.remove(dir)
    assert(sh("mkdir " .. dir))
    files.write(dir .. "/host.c", [[
#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>
#include <tide.h>
void error_push(const char *what);
void error_push(const char *what) { printf("host's error_push: %s\n", what); }
int op_init(void);
int op_init(void) { return 7; }
int main(void)
{
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  tide_close(tide_open(L, NULL));
  lua_close(L);
  error_push("ok");
  return op_init() == 7 ? 0 : 1;
}
]])
    -- a sanitizer build's library needs the sanitizers' runtime at link time too
    local san = sh("nm " .. LIBTIDE .. " | grep -q __asan_init") and "-fsanitize=address,undefined" or ""
    local ok, out = sh(string.format("cc -std=gnu99 -Wall -Werror %s -Iengine/include " ..
      "$(pkg-config --cflags lua5.4 libuv libcurl hiredis) %s/host.c %s " ..
      "$(pkg-config --libs lua5.4 libuv libcurl hiredis) -lm -o %s/host && %s/host",
      san, dir, LIBTIDE, dir, dir))
    sh("rm -rf " .. dir)
    assert(ok, out)
    assert.are.equal("host's error_push: ok\n", out)
  end)
end)

describe("the process a host loads tide into", function()
  local hard
  setup(function()
    local soft
    soft, hard = read_limits("cat /proc/self/limits")
    if not soft then hard = nil end
  end)

  it("keeps its descriptor limit: tide_open only reads it", function()
    if not hard or hard < 512 then return pending("no /proc limits, or a hard limit under 512") end
    local chunk = [[
      local tide = require "tide.core"
      io.write(tide.http_limits().connections, "\n", io.open("/proc/self/limits"):read("a"))]]
    local soft, _, out = read_limits(string.format("ulimit -Sn 256 && LUA_CPATH=%q lua5.4 -e %q",
      package.cpath, chunk), true)
    assert.are.equal(256, soft, out)
    local connections = tonumber(out:match("^(%d+)"))
    assert.is_true(connections >= 1 and connections < 256, out)
  end)

  it("is the binary's own: the tide binary lifts its soft limit to the hard one", function()
    if not hard or hard < 512 then return pending("no /proc limits, or a hard limit under 512") end
    local soft, _, out = read_limits(string.format(
      "ulimit -Sn 256 && %s -e 'io.write(io.open(\"/proc/self/limits\"):read(\"a\"))'", TIDE), true)
    assert.are.equal(hard, soft, out)
  end)
end)

describe("the C tree", function()
  --- Every file under dir with the extension, with its text.
  local function sources(dir, ext)
    local ok, out = sh(string.format("find %s -name '*.%s' | sort", dir, ext))
    assert(ok, out)
    local list = {}
    for path in out:gmatch("[^\n]+") do list[#list + 1] = {path = path, text = files.read(path)} end
    return list
  end

  local function includes(text)
    local list = {}
    for name in text:gmatch('#include%s+"([^"]+)"') do list[#list + 1] = name end
    return list
  end

  it("defines no macro in libuv's UV_ namespace", function()
    for _, ext in ipairs{"c", "h"} do
      for _, f in ipairs(sources("engine", ext)) do
        assert.is_nil(f.text:match("#%s*define%s+(UV_[%w_]*)"), f.path)
        assert.is_nil(f.text:match("[{,]%s*(UV_[%w_]*)%s*="), f.path)
      end
    end
  end)

  it("keeps libcurl to the HTTP files: engine.h does not include it", function()
    local allowed = {["engine/core/http.h"] = true, ["engine/cli/main.c"] = true}
    for _, ext in ipairs{"c", "h"} do
      for _, f in ipairs(sources("engine/core", ext)) do
        if not allowed[f.path] then
          assert.is_nil(f.text:find("<curl/curl.h>", 1, true), f.path)
        end
      end
    end
  end)

  it("the binary includes only tide.h and its own header; mockllm only its own", function()
    for _, f in ipairs(sources("engine/cli", "c")) do
      for _, name in ipairs(includes(f.text)) do
        assert.is_true(name == "cli.h" or name == "tide.h", f.path .. " includes " .. name)
      end
    end
    local own = {}
    for _, f in ipairs(sources("engine/mockllm", "h")) do own[f.path:match("[^/]+$")] = true end
    for _, ext in ipairs{"c", "h"} do
      for _, f in ipairs(sources("engine/mockllm", ext)) do
        for _, name in ipairs(includes(f.text)) do
          assert.is_true(own[name] == true, f.path .. " includes " .. name)
        end
      end
    end
  end)
end)
