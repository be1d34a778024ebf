"""Sticky assignment: the same key meets the same variant on every router, split by the weights."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import httpx
import pytest

from serving.experiments.__main__ import main
from serving.experiments.assign import BUCKETS, Assigner, bucket
from serving.rollout.edges.router import TRACK_HEADER, WeightedRouter
from serving.rollout.tests.http_backend import Backend

USERS = [f"user-{i}" for i in range(4000)]


def test_a_bucket_is_the_stated_formula_and_salted_by_the_experiment() -> None:
    # sha256("exp:user-1") read as the big-endian integer of its first 8 bytes, mod 10,000.
    digest = hashlib.sha256(b"exp:user-1").digest()
    assert bucket("exp", "user-1") == int.from_bytes(digest[:8], "big") % BUCKETS
    same = sum(bucket("exp-a", user) == bucket("exp-b", user) for user in USERS)
    assert same < len(USERS) * 0.01  # two experiments split the same users independently


def test_the_split_follows_the_weights_within_binomial_noise() -> None:
    assigner = Assigner("checkout", ["a", "b", "c"], [20, 30, 50])
    counts = Counter(assigner.variant_of(user) for user in USERS)
    n = len(USERS)
    for name, weight in zip(assigner.names, assigner.weights, strict=True):
        p = weight / 100
        assert abs(counts[name] - n * p) < 4 * math.sqrt(n * p * (1 - p)), (name, counts)


def test_the_same_user_meets_the_same_variant_across_router_restarts() -> None:
    backends = {name: Backend(name) for name in ("a", "b")}
    urls = {name: backend.url for name, backend in backends.items()}
    seen: list[dict[str, str]] = []
    try:
        for _ in range(2):  # a second router: a restart keeps no state, the hash does
            router = WeightedRouter(urls["a"]).start()
            router.set_experiment(Assigner("exp", ["a", "b"], [50, 50]), urls, "x-user-id")
            with httpx.Client() as client:
                answers = {
                    user: client.post(f"{router.url}/predict", json={}, headers={"X-User-Id": user})
                    for user in USERS[:60]
                }
                keyless = [client.post(f"{router.url}/predict", json={}) for _ in range(10)]
            seen.append({user: answer.headers[TRACK_HEADER] for user, answer in answers.items()})
            assert {answer.json()[0]["answered_by"] for answer in answers.values()} == {"a", "b"}
            assert all(answer.status_code == 200 for answer in keyless)
            assert router.stats.no_key == 10
            router.stop()
        assigner = Assigner("exp", ["a", "b"], [50, 50])
        assert seen[0] == seen[1] == {user: assigner.variant_of(user) for user in USERS[:60]}
    finally:
        for backend in backends.values():
            backend.close()


def test_the_cli_prints_what_the_router_assigns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assign", "--experiment", "exp", "--variants", "a=20,b=80", *USERS[:50]]) == 0
    assigner = Assigner("exp", ["a", "b"], [20, 80])
    assert capsys.readouterr().out.split() == [assigner.variant_of(user) for user in USERS[:50]]
    with pytest.raises(SystemExit):
        main(["assign", "--experiment", "exp", "--variants", "a=20,b=70", "u"])
    assert "--variants: two or more variants whose weights sum to 100" in capsys.readouterr().err
