"""Simulated users for `make ab`: each request carries its user's sticky key, and feedback follows it.

A user is a key (`user-17`) sent in the experiment's header on every request; the router hashes it to a
variant. After each answer the user posts feedback for it, through the same router, with an outcome drawn
so that the variants differ by a set lift whatever the models are: with `label`, the true label is the
answer's with probability `base` (plus `lift` for the lifted variant), another class otherwise; with
`value`, the business value is a conversion, 1 with the same probabilities, else 0. So the experiment's
decision can be checked against a known truth.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from serving.rollout.edges.router import TRACK_HEADER

CLIENT_TIMEOUT_S = 10.0


@dataclass
class Seen:
    """What the users met: each user's variants, answers per variant, feedback by status."""

    variants: dict[str, set[str]] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    feedback: dict[int, int] = field(default_factory=dict)
    failed: int = 0

    def switched(self) -> int:
        """Return how many users met more than one variant (0 when assignment is sticky)."""
        return sum(len(variants) > 1 for variants in self.variants.values())


def wrong_label(answer: dict[str, Any]) -> Any:
    """Return a class other than the answer's, with the JSON type of the answer's label."""
    label = answer["label"]
    others = [key for key in answer.get("probabilities", {}) if key != str(label)]
    if not others:
        return None
    return type(label)(others[0]) if isinstance(label, int | float) and not isinstance(label, bool) else others[0]


class Users:
    """Sends `rate` requests per second from `users` sticky users, each followed by its feedback."""

    def __init__(
        self,
        url: str,
        rows: Sequence[dict[str, Any]],
        header: str,
        token: str,
        outcome: str,
        rates: dict[str, float],
        users: int = 200,
        rate: float = 40.0,
        seed: int = 0,
    ) -> None:
        self.url = url.rstrip("/")
        self.rows = itertools.cycle(rows)
        self.header, self.outcome, self.rates = header, outcome, rates
        self.keys = [f"user-{i}" for i in range(users)]
        self.rate = rate
        self.rng = random.Random(seed)
        self.seen = Seen()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.client = httpx.Client(
            timeout=CLIENT_TIMEOUT_S, headers={"authorization": f"Bearer {token}"}, limits=httpx.Limits()
        )
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="users")
        self.thread = threading.Thread(target=self.pace, name="users-pacer", daemon=True)

    def visit(self, key: str, row: dict[str, Any], draw: float) -> None:
        """One user request and its feedback."""
        try:
            response = self.client.post(f"{self.url}/predict", json={"instances": [row]}, headers={self.header: key})
            variant = response.headers.get(TRACK_HEADER, "?")
            if response.status_code != 200:
                with self.lock:
                    self.seen.failed += 1
                return
            answer = response.json()["predictions"][0]
            good = draw < self.rates.get(variant, 0.0)
            body: dict[str, Any] = {"request_id": answer["request_id"]}
            if self.outcome == "value":
                body["outcome"] = 1.0 if good else 0.0
            else:
                body["label"] = answer["label"] if good else wrong_label(answer)
            feedback = self.client.post(f"{self.url}/feedback", json=body, headers={self.header: key})
        except httpx.HTTPError:
            with self.lock:
                self.seen.failed += 1
            return
        with self.lock:
            self.seen.variants.setdefault(key, set()).add(variant)
            self.seen.answers[variant] = self.seen.answers.get(variant, 0) + 1
            self.seen.feedback[feedback.status_code] = self.seen.feedback.get(feedback.status_code, 0) + 1

    def pace(self) -> None:
        """Submit visits on a fixed schedule (open loop), each from a random user."""
        period = 1.0 / self.rate
        while not self.stopped.wait(period):
            self.pool.submit(self.visit, self.rng.choice(self.keys), next(self.rows), self.rng.random())

    def start(self) -> Users:
        """Start the users."""
        self.thread.start()
        return self

    def stop(self) -> Seen:
        """Stop the users, wait for visits in flight, return what they met."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        self.pool.shutdown(wait=True)
        self.client.close()
        return self.seen
