#!/usr/bin/env bash
# Install what the browser test (tests/test_inspector_browser.py) needs on a fresh Debian machine:
# Debian's `chromium` package (/usr/bin/chromium), fonts for the sample set's scripts (CJK, Hangul,
# emoji: the README's screenshot shows them), and Playwright for Python in the test environment.
# Playwright's own browser download (`playwright install`) is not used: it cannot work offline; the
# test launches /usr/bin/chromium through `executable_path`.
#
#   bash .ci/browser.sh [PYTHON]     (PYTHON: the test environment's interpreter, default `python`)
#
# Idempotent. apt-get runs as root, or through sudo when not root.
set -euo pipefail

PYTHON=${1:-python}
PACKAGES=(chromium fonts-dejavu-core fonts-liberation fonts-wqy-zenhei fonts-noto-color-emoji)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep -q 'install ok installed' ||
        missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    echo "browser.sh: apt-get install ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
[ -x /usr/bin/chromium ] || { echo "browser.sh: no /usr/bin/chromium after install" >&2; exit 1; }

"$PYTHON" -m pip install -q playwright

# Both halves work: Debian's wrapper script starts the browser, and Playwright imports.
/usr/bin/chromium --version 2> /dev/null
"$PYTHON" -c 'import playwright.sync_api, importlib.metadata as m; print("playwright", m.version("playwright"))'
