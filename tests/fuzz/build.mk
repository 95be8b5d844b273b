# The libFuzzer harnesses, built outside the autotools build by scripts/fuzz:
#   make -f tests/fuzz/build.mk O=build/fuzz [CC=clang-14] [fuzz_NAME ...]
# Product sources are compiled once with -fsanitize=fuzzer-no-link (coverage, ASan, UBSan)
# into $(O)/obj; each harness links the ones it needs.
CC = clang-14
O = build/fuzz
PKGS = jansson libmicrohttpd rdkafka libpq libcurl libcrypto libxcrypt luajit
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
	-Werror
CFLAGS = -g -O1 -std=c11 $(WARN) $(SAN) -D_GNU_SOURCE -Iinclude -Icore -Iplugins/lua \
	-DTK_PLUGINDIR=\"/nonexistent\" -DTK_SYSCONFDIR=\"/nonexistent\" -DPACKAGE_VERSION=\"fuzz\" \
	$(shell pkg-config --cflags $(PKGS))
LIBS = $(shell pkg-config --libs $(PKGS)) -ldl -lpthread -lm

HARNESSES = config event routes api jwt aihttp gemini cohere openai luajson
all: $(HARNESSES:%=$(O)/fuzz_%)

CORE = $(O)/obj/libcore.a
# (an in-tree autotools build leaves the generated sources beside the product's: built here
# from scripts/embed instead, once)
CORE_SRC = $(filter-out core/main.c core/docs_assets.c,$(wildcard core/*.c))
HTTP_API = $(patsubst %.c,$(O)/obj/%.o,$(filter-out plugins/http_api/openapi_json.c,\
	$(wildcard plugins/http_api/*.c))) $(O)/obj/gen/api_openapi_json.o
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
DEPS_luajson = $(O)/obj/plugins/lua/lua_json.o

$(O)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# files compiled in (Makefile.am's EMBED rules)
$(O)/gen/api_openapi_json.c: plugins/http_api/openapi.json scripts/embed
	@mkdir -p $(@D)
	sh scripts/embed api_openapi_json $< >$@
$(O)/gen/docs_assets.c: core/docs/docs.html core/docs/docs.js core/docs/docs.css scripts/embed
	@mkdir -p $(@D)
	sh scripts/embed tk_docs_html core/docs/docs.html tk_docs_js core/docs/docs.js \
	  tk_docs_css core/docs/docs.css >$@
$(O)/obj/gen/%.o: $(O)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(CORE): $(CORE_SRC:%.c=$(O)/obj/%.o) $(O)/obj/gen/docs_assets.o
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
