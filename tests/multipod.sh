#!/bin/sh
# The local multi-pod run, short version (scripts/multipod --short): broker, PostgreSQL, an API
# process, two notification workers and an analytics worker from this build tree; the 12
# partitions of task-events and user-events split between the workers, one worker SIGKILLed, its
# partitions taken over, every reminder fired exactly once.
# Uses TASKORA_TEST_DATABASE_URL's server (a throwaway database on it), else starts its own
# PostgreSQL with scripts/pg.sh. Skips (77) while the notifications or analytics plugin is not
# built, or without PostgreSQL server binaries and no server to use.
set -eu
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
for p in notifications analytics realtime; do
    [ -f "$TK_BUILDDIR/plugins/$p/.libs/$p.so" ] || { echo "SKIP: the $p plugin is not built"; exit 77; }
done
if [ -n "${TASKORA_TEST_DATABASE_URL:-}" ]; then
    DATABASE_URL=$TASKORA_TEST_DATABASE_URL
    export DATABASE_URL
else
    unset DATABASE_URL
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || {
        case "${TASKORA_REQUIRE_DB:-}${CI:-}" in
        "" | 0 | 00 | false) echo "SKIP: no PostgreSQL server binaries"; exit 77 ;;
        *) echo "FAIL: no PostgreSQL server binaries, and this run requires the database tests"; exit 99 ;;
        esac
    }
fi
out=$(mktemp /tmp/taskora-multipod-test-XXXXXX)
trap 'rm -f "$out"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$out" >&2; exit 1; }
status=0
TK_BUILDDIR=$TK_BUILDDIR "$TK_SRCDIR/scripts/multipod" --short >"$out" 2>&1 || status=$?
[ $status -ne 77 ] || { cat "$out"; exit 77; }
[ $status -eq 0 ] || fail "scripts/multipod --short exited $status"
grep -Eq '^== group taskora-notifications-schedule: notifications-1 holds ([1-9]|1[01]) partition\(s\), notifications-2 holds ([1-9]|1[01])$' "$out" ||
    fail "the two notification workers did not split the partitions"
grep -q '^== notifications-1 now holds 12 partition(s)' "$out" || fail "the partitions did not move to the survivor"
grep -Eq '^== reminders: ([0-9]+) tasks, \1 notifications, \1 distinct tasks, 0 pending$' "$out" ||
    fail "reminders lost or fired twice"
grep -q '^multipod: OK' "$out" || fail "no OK line"
# nothing left running from this run
! pgrep -f "^$TK_BUILDDIR/taskorad (run -c $TK_SRCDIR/config/|broker --partitions 6 --topics task-events)" >/dev/null ||
    fail "taskorad processes left behind"
cat "$out"
