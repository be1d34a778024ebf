#!/usr/bin/env bash
# Debian packages the tests and the demo use: a real Prometheus server. Idempotent; needs root (or sudo).
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "prometheus is missing and this user cannot install it: run 'apt-get install -y prometheus' as root" >&2
  exit 1
fi
echo "installing prometheus (Debian package)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
