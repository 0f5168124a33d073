# fuzz.mk — builds the libFuzzer harnesses (clang; ASan + UBSan) into build-fuzz/.
# Called by `make fuzz` with CORE_SRC from the main Makefile; fuzz/run runs them.

CLANG ?= clang
FB := build-fuzz
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer
FUZZ_WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
             -Wdeclaration-after-statement
FUZZ_CFLAGS = -std=gnu99 -O1 -g $(FUZZ_WARN) $(FUZZ_SAN) -Iengine/core -Iengine/include \
              -Iengine/mockllm -Ifuzz/harness \
              $(shell pkg-config --cflags lua5.4 libuv libcurl)
M := engine/mockllm

HARNESSES := mockllm_request mockllm_json mockllm_answer engine_headers

# Each harness with the sources it exercises and their link needs.
SRC_mockllm_request := $(M)/request.c $(M)/route.c $(M)/scenario.c $(M)/buf.c
SRC_mockllm_json := $(M)/json.c $(M)/buf.c
SRC_mockllm_answer := $(M)/route.c $(M)/json.c $(M)/buf.c $(M)/reply.c $(M)/answer.c $(M)/sse.c
SRC_engine_headers := $(CORE_SRC)
LIBS_engine_headers := $(shell pkg-config --libs lua5.4 libuv libcurl) -lm

all: $(addprefix $(FB)/,$(HARNESSES))

.SECONDEXPANSION:
$(FB)/%: fuzz/harness/%.c fuzz/harness/check.h $$(SRC_$$*) $(wildcard $(M)/*.h engine/core/*.h engine/include/*.h)
	@mkdir -p $(FB)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(SRC_$*) $(LIBS_$*)

.PHONY: all
