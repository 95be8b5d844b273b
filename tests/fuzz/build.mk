# The libFuzzer harnesses, built outside the autotools build by scripts/fuzz:
#   make -f tests/fuzz/build.mk O=build/fuzz [CC=clang-14] [fuzz_NAME ...]
# Product sources are compiled once with -fsanitize=fuzzer-no-link (coverage, ASan, UBSan)
# into $(O)/obj; each harness links the ones it needs.
CC = clang-14
O = build/fuzz
PKGS = jansson libmicrohttpd rdkafka libpq libcurl libcrypto libxcrypt
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
	-Werror
CFLAGS = -g -O1 -std=c11 $(WARN) $(SAN) -D_GNU_SOURCE -Iinclude -Icore \
	-DTK_PLUGINDIR=\"/nonexistent\" -DTK_SYSCONFDIR=\"/nonexistent\" -DPACKAGE_VERSION=\"fuzz\" \
	$(shell pkg-config --cflags $(PKGS))
LIBS = $(shell pkg-config --libs $(PKGS)) -ldl -lpthread -lm

HARNESSES = config event routes api jwt aihttp gemini cohere openai
all: $(HARNESSES:%=$(O)/fuzz_%)

CORE = $(O)/obj/libcore.a
CORE_SRC = $(filter-out core/main.c,$(wildcard core/*.c))
HTTP_API = $(patsubst %.c,$(O)/obj/%.o,$(wildcard plugins/http_api/*.c))
UTIL = $(O)/obj/plugins/http_api/util.o
KIT = $(O)/obj/plugins/kit/kit.o $(O)/obj/plugins/kit/kit_curl.o
AIHTTP = $(O)/obj/plugins/ai_common/aihttp.o $(O)/obj/plugins/ai_common/aiwire.o $(KIT)

# what each harness links besides its own file
DEPS_config = $(CORE)
DEPS_event = $(CORE)
DEPS_routes = $(UTIL) $(KIT) $(CORE)
DEPS_api = $(HTTP_API) $(KIT) $(CORE)
DEPS_jwt =
DEPS_aihttp = $(AIHTTP)
DEPS_gemini = $(AIHTTP)
DEPS_cohere = $(AIHTTP)
DEPS_openai = $(AIHTTP)

$(O)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(CORE): $(CORE_SRC:%.c=$(O)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

.SECONDEXPANSION:
$(O)/fuzz_%: $(O)/obj/tests/fuzz/fuzz_%.o $$(DEPS_$$*)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $^ $(LIBS) -o $@

# libFuzzer's main() comes in at link time (-fsanitize=fuzzer)
.PRECIOUS: $(O)/obj/%.o
$(HARNESSES:%=fuzz_%): fuzz_%: $(O)/fuzz_%
.PHONY: all $(HARNESSES:%=fuzz_%)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
