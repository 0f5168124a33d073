# tide — build, test, sanitizer run, benchmarks.
#
#   make          the tide binary, the Lua module, the static library, mockllm (build/)
#   make deps     installs the Debian packages that are missing (apt-get as root)
#   make test     deps + build + the busted specs
#   make check    the same specs against an ASan + UBSan + LSan build (build-check/)
#   make demo     a gather example against mockllm
#   make bench    tide beside a plain libcurl-multi client, same server, same run

CC ?= cc
PKGS := lua5.4 libuv libcurl
DEB_PACKAGES := build-essential pkg-config lua5.4 liblua5.4-dev libuv1-dev libcurl4-openssl-dev \
                lua-cjson lua-busted libedit-dev

BUILD ?= build
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wmissing-declarations \
        -Wpointer-arith -Wundef -Wwrite-strings -Wredundant-decls -Wold-style-definition \
        -Wnested-externs -Wdeclaration-after-statement
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS_NOLUA = $(shell pkg-config --libs libuv libcurl 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
BASE_CFLAGS = -std=gnu99 -fPIC $(OPT) -g $(WARN) -Iengine -Iengine/include $(PKG_CFLAGS)
SAN ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(SAN) $(CFLAGS)

CORE_SRC := engine/engine.c engine/task.c engine/gather.c engine/timer.c engine/sync.c \
            engine/http.c engine/error.c engine/retry.c \
            engine/bucket.c engine/stream.c engine/digest.c engine/files.c
CORE_OBJ := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
MOCK_SRC := $(wildcard engine/mockllm/*.c)
HEADERS := engine/engine.h engine/http.h engine/include/tide.h

LUA_ENV = LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
          LUA_CPATH="$(CURDIR)/$(BUILD)/lib/?.so;;" \
          TIDE_BIN="$(CURDIR)/$(BUILD)/tide" MOCKLLM_BIN="$(CURDIR)/$(BUILD)/mockllm" \
          SPEC_HOST_BIN="$(CURDIR)/$(BUILD)/spec_host"
BUSTED = lua5.4 $$(command -v busted)

.PHONY: all deps test check demo bench clean

all: $(BUILD)/tide $(BUILD)/lib/tide/core.so $(BUILD)/libtide.a $(BUILD)/mockllm $(BUILD)/spec_host

$(BUILD)/obj/%.o: engine/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libtide.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

# The module does not link liblua: it takes the Lua API from whatever loads it.
$(BUILD)/lib/tide/core.so: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -o $@ $^ $(PKG_LIBS_NOLUA)

# -Wl,-E exports the Lua API to C modules the binary loads (lua-cjson, ...).
$(BUILD)/tide: $(BUILD)/obj/main.o $(BUILD)/libtide.a
	$(CC) $(SAN) -Wl,-E -o $@ $^ $(PKG_LIBS) -lm

# A small host program the embedding specs drive (tide.h from C).
$(BUILD)/spec_host: spec/support/host.c $(BUILD)/libtide.a engine/include/tide.h
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtide.a $(PKG_LIBS) -lm

$(BUILD)/mockllm: $(MOCK_SRC) $(wildcard engine/mockllm/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(OPT) -g $(WARN) $(SAN) $(CFLAGS) $(shell pkg-config --cflags libuv) \
	  $(MOCK_SRC) -o $@ $(shell pkg-config --libs libuv) -lm

deps:
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

test: deps
	$(MAKE) all
	$(LUA_ENV) $(BUSTED) --output=utfTerminal spec

# Sanitizers: the module is loaded by an uninstrumented lua5.4, so the ASan
# runtime is preloaded.  LUA_USE_APICHECK turns on the Lua API's own checks in
# code that includes luaconf.h with it (our sources).
ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
check: deps
	$(MAKE) BUILD=build-check OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DLUA_USE_APICHECK" all
	$(MAKE) BUILD=build-check check-run

check-run:
	LD_PRELOAD="$(ASAN_LIB)" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(LUA_ENV) $(BUSTED) --output=utfTerminal spec

demo: all
	MOCKLLM_ARGS="--latency-ms 300" scripts/with_mockllm $(BUILD)/tide scripts/critics.lua

bench: all
	scripts/bench/run

clean:
	rm -rf build build-check
