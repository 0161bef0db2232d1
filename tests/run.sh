#!/usr/bin/env bash
# Run every test: the core in CPython, the pages in Chromium, the core in Pyodide.
# Installs what it needs on a fresh machine: Python packages, node_modules (npm ci) and
# Debian's Chromium and Firefox ESR (apt, as root). Never `playwright install` nor a
# Puppeteer browser download: the tests drive the system browsers. Extra arguments go to
# pytest, e.g. `bash tests/run.sh -k forward`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
npm ci --no-audit --no-fund --loglevel=error

# Debian's browsers: Chromium (Playwright) for every page, Firefox ESR (puppeteer-core) for the offline edition.
missing=()
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null 2>&1 || missing+=(chromium)
command -v "${FIREFOX:-/usr/bin/firefox-esr}" >/dev/null 2>&1 || missing+=(firefox-esr)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian's ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "tests/run.sh: ${missing[*]} missing; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Without network access to the Pyodide CDN, the wheels come from a local copy of the release.
if [ -z "${PYODIDE_MIRROR:-}" ] && [ -d ../shared/pyodide-0.27.7 ]; then
  export PYODIDE_MIRROR="$PWD/../shared/pyodide-0.27.7"
  echo "using the Pyodide wheels in $PYODIDE_MIRROR"
fi

exec python3 -m pytest tests -p no:cacheprovider "$@"
