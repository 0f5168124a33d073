-- `luarocks make` builds the C module tide.core (through the Makefile's rock target,
-- which finds libuv, libcurl and hiredis with pkg-config: Debian's libuv1-dev,
-- libcurl4-openssl-dev and libhiredis-dev) and installs it with the Lua library.  With Debian's
-- lua-cjson: luarocks make --lua-version 5.4 --deps-mode=none
-- The tide binary, the header and libtide.a come with `make install` instead.
package = "tide"
version = "0.1.0-1"
-- `luarocks make` builds the checkout it runs in and never fetches this; `luarocks
-- install` and `luarocks build tide-0.1.0-1.rockspec` clone the tag.
source = {
   url = "git+https://github.com/tide-lm/tide.git",
   tag = "v0.1.0",
}
description = {
   summary = "Language-model programs in Lua, on a C engine (libuv + libcurl + hiredis)",
   detailed = [[
      tide's C core owns all waiting (a libuv loop, libcurl's multi interface,
      timers, retries) and gives Lua tasks, gather and async LM calls; the Lua
      library has LM providers, signatures, predictors, panels and evaluation.
   ]],
}
dependencies = {
   "lua >= 5.4, < 5.5",
   "lua-cjson",
}
build = {
   type = "make",
   build_target = "rock",
   install_target = "rock-install",
   build_variables = {BUILD = "build/rock"},
   install_variables = {
      BUILD = "build/rock",
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}
