"""The pre-traffic check and the shadow phase on real processes: a bad canary never answers a user.

Real `bentoml serve` processes behind the router, a real Prometheus; the drill models carry the reference
predictions that training stores with every plinth model.
"""

import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from components.common.decision import expected_calibration_error
from components.common.tracking import CHAMPION, ROLLED_BACK
from serving.embedded.local import LocalStack
from serving.embedded.services import prediction_store_of
from serving.embedded.traffic import TrafficGenerator
from serving.embedded.train_drill import BREAST_CANCER, held_out_instances, split_dataset
from serving.model_service.shadow_pairs import ShadowPairs, read_rows, version_pairs
from serving.model_service.store import PredictionStore
from serving.rollout.core.cbpe import estimated_accuracy
from serving.rollout.core.churn import check_churn
from serving.rollout.core.joined import pairs_of
from serving.rollout.core.observe import CANARY, predictions_of
from serving.rollout.core.spec import parse_check
from serving.rollout.edges.inspect_model import inspect_version
from serving.rollout.edges.pre_traffic import reference_rows
from serving.rollout.edges.scrape_metrics import delta, parse_snapshot
from tests.rollout.conftest import (
    SEED,
    SPEC,
    Registry,
    Rollout,
    RouterCounts,
    dropped,
    needs_prometheus,
    start_stack,
    traffic_for,
)

pytestmark = [pytest.mark.integration, needs_prometheus]
SHADOW_SPEC = {**SPEC, "shadow": {"duration": "4s", "minRequests": 5}}
# The garbage canary's shadow phase also pairs the two versions' answers and estimates their accuracy (CBPE).
PAIRED_SPEC = {
    **SHADOW_SPEC,
    "checks": [
        *SPEC["checks"],
        {"name": "shadow-churn", "maxChurn": 0.2, "alpha": 0.05, "minEffect": 0.1, "failureLimit": 2},
        {"name": "estimated-accuracy", "alpha": 0.05, "minEffect": 0.05, "minPredictions": 30, "failureLimit": 2},
    ],
}


@pytest.fixture(scope="module")
def stack(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with start_stack(registry, tmp_path_factory.mktemp("shadow")) as local:
        yield local


@pytest.fixture
def traffic(stack: LocalStack) -> Iterator[TrafficGenerator]:
    generator = traffic_for(stack, held_out_instances(SEED))
    yield generator
    generator.stop()
    if stack.canary is not None:
        stack.rollback()


def reference_of(registry: Registry, version: str):
    return reference_rows(inspect_version(registry.client, registry.uri, registry.model, version))


def test_the_check_passes_a_sound_canary_and_refuses_a_killed_one_and_wrong_answers_before_any_traffic(
    registry, stack, traffic
):
    champion, before = registry.alias(), RouterCounts.of(stack.router.stats)
    mirrored_before = sum(stack.router.stats.mirrored.values())
    # Training stores the outputs; the service answers the same: the check passes a sound canary.
    sound = registry.copy(registry.good)
    reference = reference_of(registry, sound)
    assert reference.expected is not None
    assert len(reference.expected) == len(reference.rows) > 0
    killed = stack.deploy_canary(sound)
    assert stack.check_canary(reference) is None
    # The same canary killed: it cannot answer its reference rows.
    killed.kill()
    rollout = Rollout(stack, registry, sound, spec=SHADOW_SPEC, pre_traffic=lambda: stack.check_canary(reference))
    outcome = rollout.start().result()
    assert outcome.status == ROLLED_BACK
    assert "refused before any traffic: canary at http://127.0.0.1:" in outcome.reason
    assert "did not answer its reference rows" in outcome.reason
    # Another artifact than the one registered: the garbage model's files served under the good version's record.
    wrong = registry.copy(registry.garbage)
    stack.deploy_canary(wrong)
    expected = reference_of(registry, registry.good)
    rollout = Rollout(stack, registry, wrong, spec=SHADOW_SPEC, pre_traffic=lambda: stack.check_canary(expected))
    outcome = rollout.start().result()
    assert outcome.status == ROLLED_BACK
    assert outcome.reason.startswith("refused before any traffic: canary's answers differ from its registration")
    during = RouterCounts.of(stack.router.stats).since(before)
    assert sum(during.answers[CANARY].values()) == 0
    assert sum(stack.router.stats.mirrored.values()) == mirrored_before
    assert registry.alias(CHAMPION) == champion
    assert dropped(traffic.stop()) == []


def pair_through_the_store(stack: LocalStack, canary_version: str) -> None:
    """The cluster's path: both services store their answers to requests with one `x-request-id`, joined later.

    As Envoy's mirror does, the canary gets the same request with the same `x-request-id` (marked mirrored);
    the live-quality process's join reads both versions' rows from the shared store. Rows are chosen so that
    the garbage canary disagrees with the stable on exactly a fifth of them.
    """
    assert stack.stable is not None
    assert stack.canary is not None
    stable_url, canary_url = stack.stable.url, stack.canary.url
    rows = held_out_instances(SEED)
    with httpx.Client(timeout=30.0) as client:

        def labels(url: str, batch: list[dict], headers: dict[str, str] | None = None) -> list[str]:
            response = client.post(f"{url}/predict", json={"instances": batch}, headers=headers or {})
            response.raise_for_status()
            return [str(answer["label"]) for answer in response.json()["predictions"]]

        same = [a == b for a, b in zip(labels(stable_url, rows), labels(canary_url, rows), strict=True)]
        agree = [row for row, equal in zip(rows, same, strict=True) if equal]
        differ = [row for row, equal in zip(rows, same, strict=True) if not equal]
        assert len(agree) >= 80
        assert len(differ) >= 20
        chosen = agree[:80] + differ[:20]  # one request of 100 rows: each service logs a request's first 100
        store = PredictionStore(prediction_store_of(stack.workdir / "logs"), 3600)
        since = store.now_ms()
        ident = f"t2-{canary_version}"
        labels(stable_url, chosen, {"x-request-id": ident})
        labels(canary_url, chosen, {"x-request-id": ident, "x-plinth-mirror": "1"})
        # A copy the canary never stored (its half failed), and an id a client sent twice: counted, not paired.
        labels(stable_url, chosen[:3], {"x-request-id": f"{ident}-alone"})
        for _ in range(2):
            labels(canary_url, chosen[:2], {"x-request-id": f"{ident}-twice", "x-plinth-mirror": "1"})
        labels(stable_url, chosen[:2], {"x-request-id": f"{ident}-twice"})
    model = stack.model_name
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # each service's writer flushes its queue every 0.2 s
        found = version_pairs(read_rows(store, since), store.now_ms() + 1)
        counts = found.get((model, canary_version, stack.stable.version))
        if counts is not None and counts.pairs == len(chosen) and sum(counts.unpaired.values()) == 5:
            break
        time.sleep(0.2)
    assert counts is not None, found
    assert (counts.pairs, counts.churned) == (100, 20)
    assert counts.unpaired == {"canary_missing": 3, "duplicate": 2}
    check = parse_check({"name": "shadow-churn", "maxChurn": 0.05, "failureLimit": 2}, "checks[0]")
    result = check_churn(check, counts, shadow=True)
    assert result.detail.startswith("label churn 20.00% of 100 paired rows in [")
    assert "5 unpaired {'canary_missing': 3, 'duplicate': 2}" in result.detail
    # The controller's side: the live-quality process's gauges, read back into the same counts.
    exporter = ShadowPairs(store)
    assert exporter.refresh()
    registry = CollectorRegistry()
    registry.register(exporter)
    scraped = parse_snapshot(generate_latest(registry).decode())
    samples = [(name, dict(labels), value) for (name, labels), value in scraped.items()]
    exported = pairs_of(samples, stack.stable.version, canary_version)
    assert exported is not None
    assert (exported.pairs, exported.churned) == (counts.pairs, counts.churned)
    assert pairs_of(samples, stack.stable.version, "no-such-version") is None
    store.close()


def test_a_garbage_canary_is_rolled_back_in_shadow_without_answering_a_user(registry, stack, traffic):
    champion, version = registry.alias(), registry.copy(registry.garbage)
    before, mirrored_before = RouterCounts.of(stack.router.stats), sum(stack.router.stats.mirrored.values())
    stack.deploy_canary(version)
    pair_through_the_store(stack, version)
    reference = reference_of(registry, version)
    rollout = Rollout(stack, registry, version, spec=PAIRED_SPEC, pre_traffic=lambda: stack.check_canary(reference))
    outcome = rollout.start().result()
    assert outcome.status == ROLLED_BACK, rollout.lines
    # Shuffled labels: about half its answers differ from the stable's on the same rows, far over the 20 % budget,
    # its answers' distribution diverges, and its estimated accuracy is far below the stable's: whichever is
    # proven first (or fails twice) rolls it back.
    first = outcome.reason.split(":")[0]
    assert first in ("shadow-churn", "estimated-accuracy") or "prediction-divergence failed" in outcome.reason
    judged = [check for event in rollout.recorder.history if event["event"] == "analysis" for check in event["checks"]]
    churn = [check for check in judged if check["name"] == "shadow-churn" and "label churn" in check["detail"]]
    assert churn, judged
    assert churn[-1]["value"] > 0.2
    assert "paired rows" in churn[-1]["detail"]
    assert churn[-1]["status"] in ("fail", "pending")
    assert churn[-1]["evidence"]["n_a"] >= 30  # the confidence sequence's evidence, with its sample size
    assert any(check["name"] == "prediction-divergence" and check["status"] == "fail" for check in judged), judged
    cbpe = [check for check in judged if check["name"] == "estimated-accuracy" and "(CBPE) canary" in check["detail"]]
    assert cbpe, judged
    assert cbpe[-1]["status"] in ("fail", "pending")
    assert any("at shadow: hold" in line or "at shadow: rollback" in line for line in rollout.lines), rollout.lines
    assert not any("] canary weight" in line for line in rollout.lines), rollout.lines
    during = RouterCounts.of(stack.router.stats).since(before)
    # Judged on mirrored requests only: the canary answered many copies and not one user.
    assert sum(during.answers[CANARY].values()) == 0
    assert sum(stack.router.stats.mirrored.values()) - mirrored_before >= 30
    assert registry.alias(CHAMPION) == champion
    log = traffic.stop()
    assert dropped(log) == []
    assert {answer.track for answer in log.answers} == {"stable"}


def test_cbpe_estimates_the_served_accuracy_from_the_answered_probabilities_before_any_label(stack):
    """The stable (logistic regression: calibrated) answers held-out rows; its metrics alone estimate its accuracy."""
    assert stack.stable is not None
    held_out = split_dataset(SEED)[1]
    rows, truth = held_out_instances(SEED), held_out[BREAST_CANCER.target].astype(str).tolist()
    with httpx.Client(base_url=stack.stable.url, timeout=30.0) as client:
        before = parse_snapshot(client.get("/metrics").text)
        answers = []
        for start in range(0, len(rows), 20):
            response = client.post("/predict", json={"instances": rows[start : start + 20]})
            response.raise_for_status()
            answers += response.json()["predictions"]
        served = delta(parse_snapshot(client.get("/metrics").text), before)
    estimate = estimated_accuracy(predictions_of((name, dict(labels), n) for (name, labels), n in served.items()))
    accuracy = float(np.mean([str(answer["label"]) == label for answer, label in zip(answers, truth, strict=True)]))
    classes = sorted(answers[0]["probabilities"])
    probabilities = np.array([[answer["probabilities"][name] for name in classes] for answer in answers])
    assert expected_calibration_error(probabilities, np.array([classes.index(label) for label in truth])) < 0.08
    assert 0.5 < accuracy < 1.0
    assert abs(estimate - accuracy) <= 0.05, (estimate, accuracy)
