#!/bin/sh
# The web app in a real browser: tests/browser/run.py (headless Chromium through Selenium,
# against the built taskorad with every plugin, the embedded broker, a fresh database and a fake
# Gemini server, tests/fake_ai_server, which this builds first).
# Plain build only: skipped in the sanitizer build (TK_SANITIZERS=yes), where it would test the
# same C code again at many times the cost. Skipped (77) without chromium, chromium-driver,
# python3-selenium or a database, unless TASKORA_REQUIRE_BROWSER, TASKORA_REQUIRE_DB or CI is set
# (then 99). At most TASKORA_BROWSER_TIMEOUT seconds (180); whatever it started is killed when it
# ends. A failed step leaves tests/browser-failure-* (screenshot, page, console, logs) here.
set -u
: "${TK_BUILDDIR:?run through make check}" "${TK_SRCDIR:?}"
if [ "${TK_SANITIZERS:-no}" = yes ]; then
    echo "SKIP: the browser tests run in the plain build only"; exit 77
fi
MAKE=${MAKE:-make}
rm -f "$TK_BUILDDIR"/tests/browser-failure-*
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -n "${TASKORA_TEST_DATABASE_URL:-}" ]; then
    $MAKE -s -C "$TK_BUILDDIR" tests/fake_ai_server >/dev/null ||
        { echo "FAIL: cannot build tests/fake_ai_server"; exit 99; }
fi
timeout=${TASKORA_BROWSER_TIMEOUT:-180}
export TASKORA_BROWSER_TIMEOUT=$timeout
# timeout(1) runs it in a process group of its own, sends it SIGTERM (it then stops what it
# started) if it outlives its own time limit, and SIGKILL 10 s later; whatever is left in the
# group when it ends is killed
timeout -k 10 $((timeout + 30)) /usr/bin/python3 "$TK_SRCDIR/tests/browser/run.py" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM HUP
status=0
while :; do
    wait "$pid"; status=$?
    kill -0 "$pid" 2>/dev/null || break   # wait was cut short by a signal: wait again
done
kill -KILL -- -"$pid" 2>/dev/null
exit $status
