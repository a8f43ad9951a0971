#!/usr/bin/env sh
# Install the external programs the test suite runs against: redis-server, for the Redis
# online store tests in tests/online/, and chromium, the headless browser that renders the
# monitoring report in tests/monitoring/test_report_browser.py and the web UI in tests/ui/,
# with chromium-driver (chromedriver), through which selenium drives it. Idempotent and quiet: does
# nothing when every binary is already on PATH. Debian/Ubuntu (apt-get); uses sudo only when
# not root.
#
#   scripts/install-services.sh        # CI runs this before `make test`
set -eu

missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"

if [ -z "$missing" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-services.sh: missing:$missing; apt-get not found, install it with your" \
         "package manager (e.g. 'brew install redis' on macOS)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-services.sh: missing:$missing; run as root or install sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086  # $missing is a list of package names
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-services.sh: installed$missing"
