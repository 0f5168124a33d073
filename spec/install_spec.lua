-- The README's install lines, run: `make install PREFIX=...` (the binary, the
-- module, the library, tide.h and tide.pc with the Lua directories) and
-- `luarocks make ... tide-*.rockspec`; then stock lua5.4 and a C host built with
-- `pkg-config --cflags --libs tide` use what they installed.
local files = require "support.files"

local TIDE = os.getenv("TIDE_BIN") or "build/tide"
-- the build directory the suite runs against: the binary's
local BUILD = TIDE:match("^(.*)/tide$") or "build"

local sh = files.run

local GATHER = [[
local tide = require "tide"
local from = package.searchpath("tide", package.path)
assert(from:sub(1, #arg[1]) == arg[1], "tide loaded from " .. from)
local a, b = tide.gather(function() tide.sleep(0.01) return "a" end, function() return "b" end)
print(a .. b, tide.version)
]]

--- Runs GATHER with stock lua5.4, finding tide only in these directories (and
-- checking that it came from there).
local function gather_with(dir, luadir, luacdir)
  local chunk = dir .. "/gather.lua"
  files.write(chunk, GATHER)
  return sh(string.format("LUA_PATH='%s/?.lua;%s/?/init.lua;;' LUA_CPATH='%s/?.so;;' lua5.4 %s %s",
    luadir, luadir, luacdir, chunk, luadir), true)
end

-- The README's embedding snippet, made whole: tide on the host's loop, the module
-- registered (and popped), frames polled until the Lua side is done.
local HOST = [[
#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>
#include <tide.h>

int main(void)
{
  uv_loop_t loop;
  lua_State *L;
  tide_engine *E;
  int frames = 0;
  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  E = tide_open(L, &loop);
  luaL_requiref(L, "tide.core", luaopen_tide_core, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, "local core = require 'tide.core'\n"
                       "done = false\n"
                       "core.spawn(function() core.sleep(0.02) done = true end)") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  for (;;) {
    uv_run(&loop, UV_RUN_NOWAIT);
    tide_poll(E);
    lua_getglobal(L, "done");
    if (lua_toboolean(L, -1))
      break;
    lua_pop(L, 1);
    frames++;
  }
  printf("frames=%s top=%d\n", frames > 0 ? "some" : "none", lua_gettop(L));
  tide_close(E);
  lua_close(L);
  uv_run(&loop, UV_RUN_DEFAULT);
  printf("loop_closed=%s\n", uv_loop_close(&loop) == 0 ? "yes" : "no");
  return 0;
}
]]

describe("installing tide", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("make install: tide.pc names the Lua directories, which lua5.4 and a host use", function()
    local prefix = dir .. "/prefix"
    -- -o all: install what the suite built, never rebuild it under the running specs
    local ok, out = sh(string.format("make -s -o all BUILD=%s install PREFIX=%s", BUILD, prefix))
    assert.is_true(ok, out)
    local pc = "PKG_CONFIG_PATH=" .. prefix .. "/lib/pkgconfig pkg-config"
    local _, luadir = sh(pc .. " --variable=luadir tide")
    local _, luacdir = sh(pc .. " --variable=luacdir tide")
    assert.are.equal(prefix .. "/share/lua/5.4\n", luadir)
    assert.are.equal(prefix .. "/lib/lua/5.4\n", luacdir)
    ok, out = gather_with(dir, luadir:sub(1, -2), luacdir:sub(1, -2))
    assert.is_true(ok, out)
    assert.matches("^ab\t%d+%.%d+%.%d+\n$", out)
    -- a host built the way the README says, from the snippet it shows (a sanitizer
    -- build's library needs the sanitizers' runtime at link time too)
    files.write(dir .. "/host.c", HOST)
    local san = sh("nm " .. prefix .. "/lib/libtide.a | grep -q __asan_init") and
      "-fsanitize=address,undefined" or ""
    ok, out = sh(string.format("cc -std=gnu99 -Wall -Werror %s %s/host.c -o %s/host " ..
      "$(%s --cflags --libs tide) && %s/host", san, dir, dir, pc, dir))
    assert.is_true(ok, out)
    assert.are.equal("frames=some top=1\nloop_closed=yes\n", out)
    ok, out = sh(prefix .. "/bin/tide -e 'print(require(\"tide\").version)'")
    assert.is_true(ok, out)
  end)

  it("luarocks make, as the README says, installs a module lua5.4 loads #slow", function()
    local ok, out = sh("which luarocks")
    assert.is_true(ok, "luarocks is missing: make deps installs it (" .. out .. ")")
    -- a copy of the sources: the rock builds in its own build/rock, not the checkout's
    local src = dir .. "/src"
    ok, out = sh(string.format("mkdir %s && cp -r engine lua Makefile tide-*.rockspec %s/", src, src))
    assert.is_true(ok, out)
    local tree = dir .. "/tree"
    ok, out = sh(string.format("cd %s && " .. "luarocks make --lua-version 5.4 --deps-mode=none " ..
      "--tree %s tide-*.rockspec", src, tree))
    assert.is_true(ok, out)
    ok, out = gather_with(dir, tree .. "/share/lua/5.4", tree .. "/lib/lua/5.4")
    assert.is_true(ok, out)
    assert.matches("^ab\t%d+%.%d+%.%d+\n$", out)
  end)
end)
