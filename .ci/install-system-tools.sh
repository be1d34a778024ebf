#!/usr/bin/env bash
# Debian packages the tests and the demo use: a real Prometheus server and a real Alertmanager (the
# retraining triggers' tests), and a real PostgreSQL server (tests/engines.py initdb's a throwaway cluster for
# MLflow's production backend store; the packaged cluster is not used). Idempotent; needs root (or sudo).
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "${missing[*]} missing and this user cannot install it: run 'apt-get install -y ${missing[*]}' as root" >&2
  exit 1
fi
echo "installing ${missing[*]} (Debian packages)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
