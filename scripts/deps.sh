#!/bin/sh
# Installs the Debian 12 packages Taskora needs to build, test and run, when any is missing.
set -eu
PACKAGES="gcc make autoconf automake libtool pkg-config libc6-dev \
libjansson-dev libmicrohttpd-dev librdkafka-dev libpq-dev libcurl4-openssl-dev libssl-dev libcrypt-dev check \
libluajit-5.1-dev postgresql postgresql-contrib curl valgrind binutils kcat wrk yamllint python3-jsonschema"
# scripts/fuzz only (libFuzzer and the sanitizers' runtime); the image's build stage has no use for them
FUZZ_PACKAGES="clang-14 libclang-rt-14-dev"
# the browser tests only (tests/webui_browser.sh)
BROWSER_PACKAGES="chromium chromium-driver python3-selenium"
# tests/deploy_yaml.sh only: tests/helmrender, Helm's template engine built offline from these
GO_PACKAGES="golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev"
# the observability test only (tests/observability.sh: promtool and a Prometheus that scrapes taskorad)
MONITORING_PACKAGES="prometheus"
missing=
for p in $PACKAGES $FUZZ_PACKAGES $BROWSER_PACKAGES $GO_PACKAGES $MONITORING_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
