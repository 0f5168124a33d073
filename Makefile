# tide — build, test, sanitizer run, benchmarks.
#
#   make          the tide binary, the Lua module, the static library, mockllm (build/)
#   make deps     installs the Debian packages that are missing (apt-get as root), then the
#                 specs' pinned MCP servers (npm ci); silent when none is
#   make test     deps + build + the specs' helper programs (spec-bins) + the busted specs
#                 (plain `busted` builds what they need and runs them too: .busted)
#   make lint     luacheck over the Lua (.luacheckrc), cppcheck over the C
#   make check    the same specs against an ASan + UBSan + LSan build (build-check/)
#   make fuzz     libFuzzer + Lua fuzz harnesses, FUZZ_SECONDS each (build-fuzz/; clang)
#   make valgrind the engine's and the binary's specs under memcheck (build-valgrind/)
#   make install  PREFIX=...: the binary, module, Lua library, tide.h, libtide.a, tide.pc
#   make demo     the founding example (scripts/critics.lua: three critics) against mockllm
#   make faults   the fault catalogue into build/faults.md (faults-doc: into docs/ too)
#   make bench    tide beside the C floor and Python/Node peers (BENCH_QUICK=1: short)

CC ?= cc
PKGS := lua5.4 libuv libcurl hiredis
# luarocks: README's install line (`luarocks make ... tide-*.rockspec`), which a spec runs
DEB_PACKAGES := build-essential pkg-config lua5.4 liblua5.4-dev libuv1-dev libcurl4-openssl-dev \
                lua-cjson lua-busted libedit-dev luarocks
# what the TLS and proxy specs start: the openssl CLI (their CA), Node (an HTTPS and
# HTTP/2 server, spec/support/tls_server.js) and tinyproxy (without its system service)
DEB_PACKAGES += openssl nodejs tinyproxy-bin
# what the shared-cache specs start (a real Redis) and tide links for it (hiredis, with its
# libuv adapter); headless Chromium renders the evaluation report in its spec
DEB_PACKAGES += redis-server libhiredis-dev chromium

BUILD ?= build
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wmissing-declarations \
        -Wpointer-arith -Wundef -Wwrite-strings -Wredundant-decls -Wold-style-definition \
        -Wnested-externs -Wdeclaration-after-statement
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS_NOLUA = $(shell pkg-config --libs libuv libcurl hiredis 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
BASE_CFLAGS = -std=gnu99 -fPIC $(OPT) -g $(WARN) -Iengine/include $(PKG_CFLAGS)
SAN ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(SAN) $(CFLAGS)

# engine/core: libtide (what tide.h and luaopen_tide_core need); engine/cli: the tide
# binary, on tide.h alone; engine/mockllm: the mock server, a program of its own.
CORE_SRC := $(sort $(wildcard engine/core/*.c))
CORE_OBJ := $(patsubst engine/core/%.c,$(BUILD)/obj/core/%.o,$(CORE_SRC))
CORE_HEADERS := $(wildcard engine/core/*.h) engine/include/tide.h
CLI_SRC := $(sort $(wildcard engine/cli/*.c))
CLI_OBJ := $(patsubst engine/cli/%.c,$(BUILD)/obj/cli/%.o,$(CLI_SRC))
CLI_HEADERS := engine/cli/cli.h engine/include/tide.h
MOCK_SRC := $(wildcard engine/mockllm/*.c)

LUA_ENV = LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
          LUA_CPATH="$(CURDIR)/$(BUILD)/lib/?.so;;" \
          TIDE_BIN="$(CURDIR)/$(BUILD)/tide" MOCKLLM_BIN="$(CURDIR)/$(BUILD)/mockllm" \
          SPEC_HOST_BIN="$(CURDIR)/$(BUILD)/spec_host" SPEC_PTY_BIN="$(CURDIR)/$(BUILD)/spec_pty" \
          GAME_BIN="$(CURDIR)/$(BUILD)/game"
# busted under lua5.4 (--ignore-lua: .busted's lua switch would re-run it without the
# quoting of --filter-out), with this BUILD's module before .busted's build/lib.
BUSTED_ARGS = --ignore-lua --cpath="$(CURDIR)/$(BUILD)/lib/?.so"
BUSTED = lua5.4 $$(command -v busted) $(BUSTED_ARGS)

.PHONY: all spec-bins deps deb-packages mcp-servers test check check-run lint demo faults faults-doc soak bench fuzz \
        valgrind valgrind-run install rock rock-install clean

all: $(BUILD)/tide $(BUILD)/lib/tide/core.so $(BUILD)/libtide.a $(BUILD)/mockllm

# The programs only the specs run: a C host, a pseudo-terminal driver, the example game host.
SPEC_BINS := $(BUILD)/spec_host $(BUILD)/spec_pty $(BUILD)/game
spec-bins: $(SPEC_BINS)

# The core is compiled with hidden visibility: only tide.h's TIDE_API functions leave it.
$(BUILD)/obj/core/%.o: engine/core/%.c $(CORE_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -Iengine/core -c $< -o $@

$(BUILD)/obj/cli/%.o: engine/cli/%.c $(CLI_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/cli -c $< -o $@

# libtide.a holds one object: the core linked relocatably, its hidden symbols then made
# local, so a host linking it sees tide_* and luaopen_* alone (spec/symbols_spec.lua).
OBJCOPY ?= objcopy
$(BUILD)/libtide.a: $(CORE_OBJ)
	$(LD) -r -o $(BUILD)/obj/libtide.o $^
	$(OBJCOPY) --localize-hidden $(BUILD)/obj/libtide.o
	rm -f $@
	$(AR) rcs $@ $(BUILD)/obj/libtide.o

# The module does not link liblua: it takes the Lua API from whatever loads it.
$(BUILD)/lib/tide/core.so: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -o $@ $^ $(PKG_LIBS_NOLUA)

# -Wl,-E exports the Lua API to C modules the binary loads (lua-cjson, ...).
# The REPL's line editing (libedit) is the binary's alone, not the library's.
$(BUILD)/tide: $(CLI_OBJ) $(BUILD)/libtide.a
	$(CC) $(SAN) -Wl,-E -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs libedit 2>/dev/null) -lm

# A small host program the embedding specs drive (tide.h from C).
$(BUILD)/spec_host: spec/support/host.c $(BUILD)/libtide.a engine/include/tide.h
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtide.a $(PKG_LIBS) -lm

# Runs a command on a pseudo-terminal for the REPL specs.
$(BUILD)/spec_pty: spec/support/pty.c
	$(CC) -std=gnu99 $(OPT) -g $(WARN) $(SAN) $(CFLAGS) -o $@ $<

# The example host: a 60 fps game loop that runs a critics panel while it renders.
$(BUILD)/game: scripts/host/game.c $(BUILD)/libtide.a engine/include/tide.h
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtide.a $(PKG_LIBS) -lm

$(BUILD)/mockllm: $(MOCK_SRC) $(wildcard engine/mockllm/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(OPT) -g $(WARN) $(SAN) $(CFLAGS) $(shell pkg-config --cflags libuv) \
	  $(MOCK_SRC) -o $@ $(shell pkg-config --libs libuv) -lm

# deps: the Debian packages, then the MCP servers; deb-packages alone is what lint, fuzz
# and valgrind add their own packages with (DEB_PACKAGES=...), without npm.
deps: deb-packages
	@$(MAKE) --no-print-directory mcp-servers

deb-packages:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages; run:"; \
	    echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# The reference MCP servers the MCP specs start, at the versions package-lock.json pins
# (test-time only: tide itself needs no Node), installed when missing.
MCP_DIR := spec/support/mcp
mcp-servers:
	@if [ ! -d $(MCP_DIR)/node_modules/@modelcontextprotocol/server-everything ] || \
	    [ ! -d $(MCP_DIR)/node_modules/@modelcontextprotocol/server-filesystem ]; then \
	  echo "installing the reference MCP servers into $(MCP_DIR)/node_modules (npm ci)"; \
	  cd $(MCP_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

# SPEC=spec/lm_spec.lua runs one file (or a folder) instead of every spec.
SPEC ?= spec
test: deps
	$(MAKE) all spec-bins
	$(LUA_ENV) $(BUSTED) --output=utfTerminal $(SPEC)

# Sanitizers: the module is loaded by an uninstrumented lua5.4, so the ASan
# runtime is preloaded.  LUA_USE_APICHECK turns on the Lua API's own checks in
# code that includes luaconf.h with it (our sources).
ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
check: deps
	$(MAKE) BUILD=build-check OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DLUA_USE_APICHECK" \
	  all spec-bins
	$(MAKE) BUILD=build-check check-run

check-run:
	LD_PRELOAD="$(ASAN_LIB)" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(LUA_ENV) $(BUSTED) --output=utfTerminal $(SPEC)

demo: all
	MOCKLLM_ARGS="--latency-ms 300" scripts/with_mockllm $(BUILD)/tide scripts/critics.lua

# The fault catalogue: every injected fault x layer, as a table in $(BUILD)/faults.md;
# faults-doc regenerates docs/faults.md from it, on purpose, not on every run.
faults: all
	$(LUA_ENV) lua5.4 scripts/faults.lua > $(BUILD)/faults.md || { cat $(BUILD)/faults.md; exit 1; }
	cat $(BUILD)/faults.md

faults-doc: faults
	cp $(BUILD)/faults.md docs/faults.md

# Lint: luacheck (settings and the deliberate exceptions in .luacheckrc) and cppcheck at
# the levels that are quiet on sound code (style would fight -Wdeclaration-after-statement).
LINT_DEB_PACKAGES := lua-check cppcheck
CPPCHECK = cppcheck -q --std=c99 --enable=warning,portability,performance --inline-suppr \
           --error-exitcode=1 -Iengine/include
lint:
	@$(MAKE) --no-print-directory deb-packages DEB_PACKAGES="$(LINT_DEB_PACKAGES)"
	luacheck -q --no-color lua spec scripts fuzz .busted
	$(CPPCHECK) engine

# The soak: panels against mockllm with injected faults (SOAK_SECONDS, SOAK_FAULT_RATE).
SOAK_SECONDS ?= 600
SOAK_FAULT_RATE ?= 0.05
soak: all
	scripts/with_mockllm $(BUILD)/tide scripts/soak.lua --seconds $(SOAK_SECONDS) \
	  --fault-rate $(SOAK_FAULT_RATE)

bench: all
	scripts/bench/run

# Fuzzing (fuzz/README.md): libFuzzer harnesses for the C parsers that read network
# bytes, and a seeded Lua harness for the reply parsers, FUZZ_SECONDS each, one
# after another.  clang is needed only here, so it is not in DEB_PACKAGES.
FUZZ_SECONDS ?= 60
FUZZ_DEB_PACKAGES := clang libclang-rt-14-dev
fuzz: deps
	$(MAKE) deb-packages DEB_PACKAGES="$(FUZZ_DEB_PACKAGES)"
	$(MAKE) all
	$(MAKE) -f fuzz/fuzz.mk CORE_SRC="$(CORE_SRC)"
	$(LUA_ENV) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run

# valgrind memcheck over the engine's specs (VALGRIND_SPECS: tasks, gather, sync, HTTP,
# streams, embedding, LM calls, processes, the Redis cache, OTLP, callbacks) and the tide
# binary's, against a plain -O1 build in build-valgrind/.
# Other child processes (mockllm, the shell) are not traced; spec/support/valgrind.supp
# says why each entry exists.
VALGRIND_SPECS := spec/task_spec.lua spec/gather_spec.lua spec/sync_spec.lua spec/http_spec.lua \
                  spec/stream_spec.lua spec/embed_spec.lua spec/lm_spec.lua spec/process_spec.lua \
                  spec/redis_cache_spec.lua spec/otlp_spec.lua spec/callbacks_spec.lua
VALGRIND = valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
           --error-exitcode=1 --trace-children=no --num-callers=30 \
           --suppressions=$(CURDIR)/spec/support/valgrind.supp
valgrind: deps
	$(MAKE) deb-packages DEB_PACKAGES=valgrind
	$(MAKE) BUILD=build-valgrind OPT=-O1 all spec-bins
	$(MAKE) BUILD=build-valgrind valgrind-run

# Three specs count on wall-clock time (ticks within 50 ms, 1 000 requests overlapping in
# a 300 ms window, three nested tasks started within 10 ms); under memcheck everything
# runs ~20x slower, so they are left out.
VALGRIND_SKIP := --filter-out="runs the loop until done, and other tasks make progress" \
                 --filter-out="concurrent requests are all in flight at once" \
                 --filter-out="cancellation reaches grandchildren"
# Then the tide binary's specs, each run of the binary under memcheck with its own
# log: the binary's output stays the spec's, and any log with text fails the target.
valgrind-run:
	$(LUA_ENV) $(VALGRIND) lua5.4 $$(command -v busted) $(BUSTED_ARGS) --output=utfTerminal \
	  $(VALGRIND_SKIP) $(VALGRIND_SPECS)
	rm -rf $(BUILD)/vg && mkdir -p $(BUILD)/vg
	$(LUA_ENV) TIDE_BIN="$(VALGRIND) -q --log-file=$(CURDIR)/$(BUILD)/vg/tide.%p.log \
	  $(CURDIR)/$(BUILD)/tide" $(BUSTED) --output=utfTerminal spec/binary_spec.lua
	@if find $(BUILD)/vg -type f -size +0 | grep -q .; then cat $(BUILD)/vg/*; exit 1; fi
	@echo "valgrind: no memcheck error, no definite leak"

# make install PREFIX=/opt/tide: the binary, the Lua module and library (where lua5.4
# looks under that prefix), the header, the static library and tide.pc for hosts.
# A rock (tide-*.rockspec, `luarocks make`) builds the module through rock/rock-install.
PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^\#define TIDE_VERSION "\(.*\)"/\1/p' engine/include/tide.h)
LUA_FILES = $(shell cd lua && find tide -name '*.lua' | sort)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/lua/5.4/tide
	install -m 755 $(BUILD)/tide $(DESTDIR)$(PREFIX)/bin/tide
	install -m 644 engine/include/tide.h $(DESTDIR)$(PREFIX)/include/tide.h
	install -m 644 $(BUILD)/libtide.a $(DESTDIR)$(PREFIX)/lib/libtide.a
	install -m 755 $(BUILD)/lib/tide/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/tide/core.so
	for f in $(LUA_FILES); do install -D -m 644 lua/$$f $(DESTDIR)$(PREFIX)/share/lua/5.4/$$f; done
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' 'libdir=$${prefix}/lib' \
	  'luadir=$${prefix}/share/lua/5.4' 'luacdir=$${prefix}/lib/lua/5.4' '' \
	  'Name: tide' 'Description: the tide engine: LM programs in Lua, for embedding' \
	  'Version: $(VERSION)' 'Requires: lua5.4 libuv libcurl hiredis' \
	  'Libs: -L$${libdir} -ltide -lm' 'Cflags: -I$${includedir}' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tide.pc

rock: $(BUILD)/lib/tide/core.so

rock-install: rock
	install -D -m 755 $(BUILD)/lib/tide/core.so $(INST_LIBDIR)/tide/core.so
	for f in $(LUA_FILES); do install -D -m 644 lua/$$f $(INST_LUADIR)/$$f; done

clean:
	rm -rf build build-check build-fuzz build-valgrind
