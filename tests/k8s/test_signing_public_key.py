"""The public key in Kubeflow's namespace (manifests/platform/kubeflow): the one that batch scoring verifies with.

The scoring pipeline's step mounts the ConfigMap `plinth-signing-public-key` (optional, so a missing one would
leave every version unverifiable in the cluster); the platform manifests create it, with the same key the
serving pods verify with, and no private key anywhere in Git.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from k8s_tooling import ROOT, load_documents, run, tool, validate_object

from pipelines.scoring.pipeline import CLUSTER_VERIFY_KEY, VERIFY_KEY_CONFIGMAP, VERIFY_KEY_MOUNT

TARGET = ROOT / "manifests" / "platform" / "kubeflow"
# Where Kubeflow Pipelines runs every step (as pipeline-runner), and so where the step's volume is looked up.
KFP_NAMESPACE = "kubeflow"


def test_the_platform_creates_the_public_key_the_scoring_step_mounts() -> None:
    result = run([tool("kubectl"), "kustomize", str(TARGET)])
    assert result.returncode == 0, result.stderr
    [config] = load_documents(result.stdout)
    validate_object(config)
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", VERIFY_KEY_CONFIGMAP)
    assert config["metadata"]["namespace"] == KFP_NAMESPACE
    assert PurePosixPath(CLUSTER_VERIFY_KEY) == PurePosixPath(VERIFY_KEY_MOUNT) / "public.pem"
    assert set(config["data"]) == {PurePosixPath(CLUSTER_VERIFY_KEY).name}, "the file the step reads, by default"
    key = config["data"]["public.pem"]
    assert isinstance(load_pem_public_key(key.encode()), ec.EllipticCurvePublicKey)
    serving = yaml.safe_load((ROOT / "manifests" / "base" / "values.yaml").read_text())["signing"]["publicKey"]
    assert key.strip() == serving.strip(), "batch scoring verifies with the key the serving pods verify with"


def test_no_private_key_is_in_the_manifests() -> None:
    leaked = [
        path
        for path in (ROOT / "manifests").rglob("*")
        if path.is_file() and "PRIVATE KEY-----" in path.read_text(errors="ignore")
    ]
    assert leaked == []
