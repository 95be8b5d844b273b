#!/bin/sh
# A suite that needs PostgreSQL and finds no TASKORA_TEST_DATABASE_URL skips (77) in a plain
# `make check`, but fails (99) when TASKORA_REQUIRE_DB=1 or CI is set, as scripts/test and CI
# set it: a run that tests nothing of the API cannot pass there.
set -u
: "${TK_BUILDDIR:?run through make check}"
suite="$TK_BUILDDIR/tests/check_pg"
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { env -u TASKORA_TEST_DATABASE_URL -u TASKORA_REQUIRE_DB -u CI "$@" "$suite" >/dev/null 2>&1; echo $?; }
[ "$(run)" = 77 ] || fail "without a database and without TASKORA_REQUIRE_DB, check_pg should skip (77)"
[ "$(run TASKORA_REQUIRE_DB=1)" = 99 ] || fail "with TASKORA_REQUIRE_DB=1, check_pg should fail (99)"
[ "$(run CI=true)" = 99 ] || fail "with CI=true, check_pg should fail (99)"
[ "$(run TASKORA_REQUIRE_DB=0)" = 77 ] || fail "TASKORA_REQUIRE_DB=0 should not require the database"
msg=$(env -u TASKORA_TEST_DATABASE_URL TASKORA_REQUIRE_DB=1 "$suite" 2>&1)
case "$msg" in *"TASKORA_TEST_DATABASE_URL is not set"*) ;; *) fail "the failure does not say what is missing: $msg" ;; esac
echo "PASS: database suites skip only when the database is not required"
