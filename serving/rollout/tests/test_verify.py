"""The rollout checks a canary's files against their signature before any traffic (real SQLite registry).

v1 stable and v2 canary are registered by plinth's register step (signed, key beside the store); v3 is signed
too, then one byte of its stored model.skops is changed; v4 is v2's files registered straight into the
registry, unsigned, as any other tool would.
"""

from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.common import signing
from components.common.tracking import CHALLENGER, CHAMPION
from serving.bench.demo_model import register_plinth_model, register_unsigned_copy
from serving.embedded.rollout import EXIT_USAGE, Refused, build_parser, main, read_versions
from serving.rollout.edges.mlflow_registry import MlflowRegistry

MODEL = "verified-rollout"


class Store:
    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.stable, self.canary, self.tampered = (
            register_plinth_model(self.uri, MODEL, experiment="rollout-verify").version for _ in range(3)
        )
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        stored = Path(self.client.get_model_version_download_uri(MODEL, self.tampered).removeprefix("file://"))
        data = bytearray((stored / "model.skops").read_bytes())
        data[len(data) // 2] ^= 0x01
        (stored / "model.skops").write_bytes(bytes(data))
        self.unsigned = register_unsigned_copy(self.uri, MODEL, self.canary, MODEL)
        self.client.set_registered_model_alias(MODEL, CHAMPION, self.stable)
        self.client.set_registered_model_alias(MODEL, CHALLENGER, self.canary)
        self.public_key = root / "keys" / signing.PUBLIC_KEY_FILE

    def registry(self, required: bool) -> MlflowRegistry:
        return MlflowRegistry(self.client, self.uri, MODEL, "test", self.public_key, required)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("verify"))


def test_a_signed_intact_canary_may_be_tried(store):
    assert store.registry(required=True).refusal(store.stable, store.canary) is None


def test_a_tampered_canary_is_refused_naming_the_file(store):
    reason = store.registry(required=False).refusal(store.stable, store.tampered)
    assert reason == f"{MODEL} v{store.tampered} refused: model.skops differs from its signed digest"


def test_an_unsigned_canary_is_refused_only_where_a_signature_is_required(store):
    reason = store.registry(required=True).refusal(store.stable, store.unsigned)
    assert reason == f"{MODEL} v{store.unsigned} refused: it is not signed and PLINTH_REQUIRE_SIGNATURE=true"
    assert store.registry(required=False).refusal(store.stable, store.unsigned) is None


def test_files_that_cannot_be_fetched_refuse_nothing(store, tmp_path):
    """An outage is not a verdict: the canary pods check their files again before they report ready."""
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    client = MlflowClient(tracking_uri=empty, registry_uri=empty)
    assert MlflowRegistry(client, empty, MODEL, "t", store.public_key, True).refusal(store.stable, store.canary) is None


def args_for(store: Store, canary: str) -> list[str]:
    return ["--tracking-uri", store.uri, "--model-name", MODEL, "--stable-version", store.stable,
            "--canary-version", canary, "--metrics-port", "0"]  # fmt: skip


def test_local_rollout_reads_an_intact_canary(store, monkeypatch):
    monkeypatch.setenv(signing.ENV_REQUIRE_SIGNATURE, "true")
    args = build_parser().parse_args(args_for(store, store.canary))
    stable, canary = read_versions(args, store.client, store.uri)
    assert (stable.version, canary.version) == (store.stable, store.canary)


def test_local_rollout_refuses_a_tampered_canary_with_one_line(store, capsys):
    assert main(args_for(store, store.tampered)) == EXIT_USAGE
    line = f"plinth rollout: canary {MODEL} v{store.tampered} refused: model.skops differs from its signed digest"
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_local_rollout_refuses_an_unsigned_canary_when_required(store, monkeypatch):
    args = build_parser().parse_args(args_for(store, store.unsigned))
    monkeypatch.setenv(signing.ENV_REQUIRE_SIGNATURE, "true")
    with pytest.raises(Refused, match="it is not signed and PLINTH_REQUIRE_SIGNATURE=true"):
        read_versions(args, store.client, store.uri)
    monkeypatch.setenv(signing.ENV_REQUIRE_SIGNATURE, "false")
    assert read_versions(args, store.client, store.uri)[1].version == store.unsigned
