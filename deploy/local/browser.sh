#!/usr/bin/env bash
# Make sure the dashboard's end-to-end test can run: headless Chromium from
# Debian's `chromium` package, Node.js >= 20, and playwright-core installed
# from tests/browser/package-lock.json into tests/browser/node_modules.
#
# Idempotent: when everything is in place it only checks and prints
# `browser: chromium ..., node ..., playwright-core ... ok`. Playwright never
# downloads a browser here: the test launches /usr/bin/chromium through
# `executablePath`.
#
# Environment:
#   WARREN_CHROMIUM   Chromium executable to check (default /usr/bin/chromium;
#                     the test reads the same variable)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BROWSER_DIR="$ROOT/tests/browser"
CHROMIUM="${WARREN_CHROMIUM:-/usr/bin/chromium}"
MIN_NODE_MAJOR=20

# playwright-core never downloads browsers, but say so in case that changes.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

LOG_PREFIX=browser
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_chromium() {
    if [[ ! -x $CHROMIUM ]]; then
        [[ $CHROMIUM == /usr/bin/chromium ]] ||
            die "WARREN_CHROMIUM=$CHROMIUM is not an executable"
        apt_install chromium
    fi
    [[ -x $CHROMIUM ]] || die "$CHROMIUM is still missing after installing the chromium package"
}

ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= MIN_NODE_MAJOR)) ||
        die "node $(node --version) is too old: playwright-core needs Node.js >= $MIN_NODE_MAJOR"
}

# Version of a package in a lock file or an installed package.json ("" if none).
json_version() {
    node -e '
        const fs = require("fs");
        const [file, key] = process.argv.slice(1);
        try {
            const doc = JSON.parse(fs.readFileSync(file, "utf8"));
            const entry = key ? doc.packages[key] : doc;
            process.stdout.write(entry && entry.version ? entry.version : "");
        } catch { process.stdout.write(""); }
    ' "$@"
}

ensure_playwright() {
    local wanted installed
    wanted=$(json_version "$BROWSER_DIR/package-lock.json" node_modules/playwright-core)
    [[ -n $wanted ]] || die "no playwright-core in $BROWSER_DIR/package-lock.json"
    installed=$(json_version "$BROWSER_DIR/node_modules/playwright-core/package.json")
    if [[ $installed != "$wanted" ]]; then
        log "npm ci in tests/browser (playwright-core $wanted)"
        (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

main() {
    ensure_chromium
    ensure_node
    ensure_playwright
    local chromium_version
    # Debian's wrapper script prints noise on stderr; keep only the version line.
    chromium_version=$("$CHROMIUM" --version 2>/dev/null | head -n 1) ||
        die "$CHROMIUM --version failed"
    echo "browser: $chromium_version, node $(node --version)," \
        "playwright-core $(json_version "$BROWSER_DIR/node_modules/playwright-core/package.json") ok"
}

main "$@"
