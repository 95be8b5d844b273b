#!/bin/sh
# Measures taskorad's HTTP path with the example plugin: start-up time, idle RSS, and wrk on a
# plugin route and on /health. Run by hand from a build folder: ../../bench/http.sh [SECONDS]
# (needs wrk: apt-get install wrk). Prints figures; asserts nothing.
set -eu
secs=${1:-10}
build=$(pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$build/taskorad" ] || { echo "run from a build folder (taskorad not found here)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
log=$(mktemp)
port=${BENCH_PORT:-18181}
export TASKORA_PLUGIN_DIR="$build/examples/hello_consumer/.libs"
export TASKORA_HTTP_LISTEN="127.0.0.1:$port" KAFKA_BROKERS=embedded TASKORA_LOG_LEVEL=warn
start=$(date +%s%N)
"$build/taskorad" run -c "$src/examples/hello_consumer/hello.json" >"$log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; rm -f "$log"' EXIT
trap 'exit 130' INT TERM HUP PIPE
until curl -fs -o /dev/null "http://127.0.0.1:$port/ready"; do sleep 0.005; done
echo "start-up to ready: $((($(date +%s%N) - start) / 1000000)) ms"
sleep 1
echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
for path in /hello /health; do
    echo "wrk -t2 -c16 -d${secs}s --latency http://127.0.0.1:$port$path"
    wrk -t2 -c16 -d"${secs}s" --latency "http://127.0.0.1:$port$path" |
        awk '/Requests\/sec/ {print "  req/s:", $2} / 50%/ {print "  p50:", $2} / 99%/ {print "  p99:", $2}'
done
echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
