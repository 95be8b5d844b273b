#!/bin/sh
# Installs taskora into a DESTDIR, builds examples/hello_consumer out of tree against the
# installed header with pkg-config, and checks that the installed taskorad loads and serves it.
set -eu
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
. "$TK_SRCDIR/tests/lib.sh"
MAKE=${MAKE:-make}

dest="$work/dest"
$MAKE -s -C "$TK_BUILDDIR" install DESTDIR="$dest" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "make install DESTDIR failed"; }
prefix=$(sed -n 's/^prefix=//p' "$TK_BUILDDIR/taskora-plugin.pc")
taskorad="$dest$prefix/bin/taskorad"
[ -x "$taskorad" ] || fail "no installed taskorad under $dest$prefix/bin"
[ -f "$dest$prefix/include/taskora/plugin.h" ] || fail "plugin.h not installed"
pcdir=$(find "$dest" -name taskora-plugin.pc -printf '%h\n' | head -n 1)
[ -n "$pcdir" ] || fail "taskora-plugin.pc not installed"

# The example folder is copied: a user builds it anywhere, with its own Makefile.
cp -r "$TK_SRCDIR/examples/hello_consumer" "$work/hello"
chmod -R u+w "$work/hello"
rm -rf "$work/hello/.libs" "$work/hello"/*.o "$work/hello"/*.lo "$work/hello"/*.la
# (the sysroot maps taskora's paths into DESTDIR; libpq is the system's, outside it)
PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest" \
    make -s -C "$work/hello" CFLAGS="-O1 -g" PQ_CFLAGS="$(pkg-config --cflags libpq)" \
    PQ_LIBS="$(pkg-config --libs libpq)" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; fail "out-of-tree build failed"; }
[ -f "$work/hello/hello_consumer.so" ] || fail "no hello_consumer.so"
exported=$(nm -D --defined-only "$work/hello/hello_consumer.so" | awk '$2 == "T" {print $3}')
[ "$exported" = "taskora_plugin_entry" ] || fail "exports more than the entry symbol: $exported"

export TASKORA_PLUGIN_DIR="$work/hello" TASKORA_HTTP_LISTEN=127.0.0.1:0 KAFKA_BROKERS=127.0.0.1:1
"$taskorad" plugins -c "$work/hello/hello.json" >"$work/plugins.out" 2>&1 ||
    { cat "$work/plugins.out" >&2; fail "taskorad plugins refused the example"; }
abi=$(sed -n 's/^#define TK_PLUGIN_ABI_MAJOR \([0-9]*\)$/\1/p' "$dest$prefix/include/taskora/plugin.h").$(
    sed -n 's/^#define TK_PLUGIN_ABI_MINOR \([0-9]*\)$/\1/p' "$dest$prefix/include/taskora/plugin.h")
grep -q "^hello  *hello_consumer  *0.2.0  *$abi  *http,consume,migrations,config  *$work/hello/hello_consumer.so" \
    "$work/plugins.out" || { cat "$work/plugins.out" >&2; fail "unexpected plugins listing"; }

# Run it: the route answers over HTTP, and SIGINT ends it with status 0.
start_taskorad "$work/hello/hello.json"
body=$(curl -fsS "$url/hello") || fail "GET /hello failed"
[ "$body" = '{"greeting":"hello from the example","instance":"hello","events":{}}' ] ||
    fail "unexpected body: $body"
stop_taskorad
echo "out-of-tree example: built, listed, served and stopped cleanly"
