#!/bin/sh
# The structure stays as docs/architecture.md describes it: no C source over 700 lines and
# no function over 100 (scripts/sizes), and no include cycle among the core's modules.
set -u
: "${TK_SRCDIR:?run through make check}"
fail=0
cd "$TK_SRCDIR" || exit 1
for d in core plugins include; do [ -d "$d" ] || { echo "FAIL: no $d/ under $TK_SRCDIR"; exit 1; }; done
scripts/sizes core plugins include || { echo "FAIL: scripts/sizes found oversized files or functions"; fail=1; }
graph=$(mktemp /tmp/taskora-includes-XXXXXX)
trap 'rm -f "$graph"' EXIT
cd core || exit 1
for f in *.c *.h; do
    grep -o '^#include "[a-z_]*\.h"' "$f" | sed "s/.*\"\(.*\)\.h\"/${f%.*} \1/"
done | awk '$1 != $2' | sort -u >"$graph"
if ! tsort "$graph" >/dev/null 2>&1; then
    echo "FAIL: the core's includes have a cycle:"
    tsort "$graph" 2>&1 >/dev/null | sed 's/^/  /'
    fail=1
fi
[ $fail -eq 0 ] && echo "PASS: sizes within bounds, core includes acyclic"
exit $fail
