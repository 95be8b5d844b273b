#!/bin/sh
# deploy/Dockerfile against `make install`: installs the build tree into a DESTDIR with the
# Dockerfile's layout (--prefix=/usr/local --sysconfdir=/etc), assembles the runtime image's files
# from the Dockerfile's COPY --from=build lines, and checks that every path the Dockerfile copies or
# refers to exists there, that the installed taskorad accepts every shipped config with the image's
# plugin folder, and (with dpkg) that the runtime stage installs the package of every shared
# library the binary and the plugins link. The image itself is not built (no docker here).
set -eu
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
MAKE=${MAKE:-make}
work=$(mktemp -d /tmp/taskora-deploy-docker-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
df="$TK_SRCDIR/deploy/Dockerfile"
[ -f "$df" ] || fail "no deploy/Dockerfile"

# The Dockerfile with continuation lines joined, one instruction per line.
awk '/^[ \t]*#/ { next } { if (sub(/\\$/, "")) { line = line $0; next } print line $0; line = "" }' "$df" >"$work/df"

grep -q -- '--prefix=/usr/local --sysconfdir=/etc' "$work/df" || fail "the Dockerfile no longer configures --prefix=/usr/local --sysconfdir=/etc"
grep -q 'make -s install DESTDIR=/out\|make install DESTDIR=/out' "$work/df" || fail "the build stage does not install into /out"
dest="$work/out"
$MAKE -s -C "$TK_BUILDDIR" install DESTDIR="$dest" prefix=/usr/local sysconfdir=/etc \
    >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "make install DESTDIR failed"; }
find "$dest" -name '*.la' -delete

# The runtime stage: every COPY --from=build SRC DST, with SRC under /out, copied into $root.
root="$work/root"
mkdir -p "$root"
ncopy=0
while read -r instr from srcp dstp rest; do
    if [ "$instr" != COPY ] || [ "$from" != "--from=build" ]; then continue; fi
    [ -z "$rest" ] || fail "COPY with more than one source: $srcp $dstp $rest"
    case $srcp in /out/*) ;; *) fail "COPY --from=build of $srcp, which is not in the make install tree /out" ;; esac
    [ -e "$dest${srcp#/out}" ] || fail "the Dockerfile copies $srcp, which make install does not produce"
    [ "${srcp#/out}" = "$dstp" ] || fail "COPY $srcp $dstp moves a file away from its installed path (taskorad looks there)"
    mkdir -p "$root$(dirname "$dstp")"
    cp -R "$dest${srcp#/out}" "$root${dstp%/}"
    ncopy=$((ncopy + 1))
done <"$work/df"
[ $ncopy -ge 3 ] || fail "expected COPY --from=build lines for the binary, the plugins and the configs"

entry=$(sed -n 's/^ENTRYPOINT \["\([^"]*\)".*/\1/p' "$work/df")
[ -n "$entry" ] || fail "no ENTRYPOINT [\"...\"]"
[ -x "$root$entry" ] || fail "ENTRYPOINT $entry is not an executable of the image"
plugdir=/usr/local/lib/taskora/plugins
[ -d "$root$plugdir" ] || fail "no plugin folder $plugdir in the image"
user=$(sed -n 's/^USER \([^: ]*\).*/\1/p' "$work/df" | tail -n 1)
case $user in "" | root | 0) fail "the image does not run as a non-root user" ;; esac
grep -q '^HEALTHCHECK .*/health' "$work/df" || fail "no HEALTHCHECK on /health"

# Every config the Dockerfile names, and every shipped config, is in the image and passes
# check-config with the image's plugins (each plugin a config loads is there).
grep -o '/etc/taskora/[A-Za-z0-9_.-]*\.json' "$df" | sort -u | while read -r c; do
    [ -f "$root$c" ] || fail "the Dockerfile refers to $c, which is not in the image"
done
default=$(sed -n 's/.*TASKORA_CONFIG=\([^ ]*\).*/\1/p' "$work/df" | head -n 1)
[ -n "$default" ] || fail "the image sets no TASKORA_CONFIG"
[ -f "$root$default" ] || fail "TASKORA_CONFIG $default is not in the image"
for f in "$TK_SRCDIR"/config/*.json; do
    name=$(basename "$f")
    [ -f "$root/etc/taskora/$name" ] || fail "config/$name is not installed (dist_taskoraconf_DATA) into /etc/taskora"
    sed -n 's/.*"load": *"\([^"]*\)".*/\1/p' "$f" | while read -r p; do
        [ -f "$root$plugdir/$p.so" ] || fail "$name loads $p, but there is no $plugdir/$p.so in the image"
    done
    TASKORA_PLUGIN_DIR="$root$plugdir" "$root$entry" check-config -c "$root/etc/taskora/$name" \
        >"$work/check.out" 2>&1 || { cat "$work/check.out" >&2; fail "check-config refuses /etc/taskora/$name in the image"; }
done

# The runtime packages cover every library the binary and the plugins link (Debian only).
if command -v dpkg >/dev/null 2>&1 && command -v readelf >/dev/null 2>&1 && command -v ldconfig >/dev/null 2>&1; then
    runtime=$(awk '/^FROM / { stage++ } stage == 2 && /apt-get install/' "$work/df")
    for f in "$root$entry" "$root$plugdir"/*.so; do
        readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
    done | sort -u >"$work/needed"
    while read -r lib; do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
        [ -n "$path" ] || fail "$lib is not on this machine"
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1)
        [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1)
        case $pkg in libc6 | "") continue ;; esac   # in every Debian image
        # a sanitizer build links the sanitizer runtimes; the image's build never does
        case $pkg in libasan* | libubsan*) [ "${TK_SANITIZERS:-no}" = yes ] && continue ;; esac
        echo "$runtime" | grep -qw -- "$pkg" || fail "$lib comes from $pkg, which the runtime stage does not install"
    done <"$work/needed"
fi

# The build stage installs the -dev packages scripts/deps.sh lists.
build=$(awk '/^FROM / { stage++ } stage == 1 && /apt-get install/' "$work/df")
sed -n '/^PACKAGES=/,/"$/p' "$TK_SRCDIR/scripts/deps.sh" | sed 's/PACKAGES=//; s/["]//g; s/[\\]//g' |
    tr ' ' '\n' | while read -r p; do
    case $p in *-dev | check | gcc | make | autoconf | automake | libtool | pkg-config)
        echo "$build" | grep -qw -- "$p" || fail "the build stage lacks $p (scripts/deps.sh)" ;;
    esac
done
nconf=$(find "$root/etc/taskora" -name '*.json' | wc -l)
nplug=$(find "$root$plugdir" -name '*.so' | wc -l)
echo "Dockerfile: $ncopy COPY paths, the entrypoint, $nconf configs and $nplug plugins match make install"
