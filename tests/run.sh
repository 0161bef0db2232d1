#!/usr/bin/env bash
# Run every test: the core in CPython, the pages in Chromium, the core in Pyodide.
# Installs what it needs on a fresh machine: Python packages, node_modules (npm ci) and
# Debian's Chromium (apt, as root). Never `playwright install`: the tests drive the system
# Chromium. Extra arguments go to pytest, e.g. `bash tests/run.sh -k forward`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
npm ci --no-audit --no-fund --loglevel=error

if ! command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian's chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "tests/run.sh: Chromium is missing; install it with: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

# Without network access to the Pyodide CDN, the wheels come from a local copy of the release.
if [ -z "${PYODIDE_MIRROR:-}" ] && [ -d ../shared/pyodide-0.27.7 ]; then
  export PYODIDE_MIRROR="$PWD/../shared/pyodide-0.27.7"
  echo "using the Pyodide wheels in $PYODIDE_MIRROR"
fi

exec python3 -m pytest tests -p no:cacheprovider "$@"
