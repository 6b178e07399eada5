#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the report's browser test
# (tests/report/test_report.py) when /usr/bin/chromium or /usr/bin/chromedriver is missing.
# Needs apt-get and root (or sudo). .ci/run calls it before the tests.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
command -v apt-get >/dev/null || { echo "apt-get is required to install chromium" >&2; exit 1; }
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
