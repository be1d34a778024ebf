"""The demo's closing summary: what changed when, what the bad canary cost, and where to look next."""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.embedded.local import LocalStack
from serving.embedded.measure import Exposure
from serving.embedded.traffic import TrafficLog, failed
from serving.rollout.core.controller import Outcome

TIMELINE_MARKERS = ("canary weight", "shadow:", "PROMOTED", "ROLLED BACK", "rollout started")


@dataclass
class Summary:
    """Collects what the demo did and renders it as text."""

    tracking_uri: str
    rollouts: list[tuple[str, str, Outcome, Exposure | None]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    totals: tuple[int, int] = (0, 0)

    def add(self, title: str, version: str, outcome: Outcome, window: Exposure | None) -> None:
        """Keep one rollout's outcome and client-side exposure."""
        self.rollouts.append((title, version, outcome, window))

    def describe(self, stack: LocalStack) -> None:
        """Note the URLs of the running stack."""
        self.urls["router"] = stack.url
        if stack.prometheus is not None:
            self.urls["Prometheus UI"] = stack.prometheus.url
        else:
            self.urls["Prometheus UI"] = "(prometheus not installed: metrics were read from /metrics directly)"
        if stack.stable is not None:
            self.urls["stable service metrics"] = f"{stack.stable.url}/metrics"

    def traffic(self, log: TrafficLog) -> None:
        """Count all requests the demo sent and how many failed."""
        self.totals = (len(log.answers), sum(1 for answer in log.answers if failed(answer)))

    def render(self) -> str:
        """Return the summary text."""
        lines = ["", "=" * 78, "plinth demo summary", "=" * 78]
        for title, version, outcome, window in self.rollouts:
            lines.append(f"{title} (v{version}): {outcome.status.upper()} - {outcome.reason}")
            for at, line in outcome.timeline:
                if any(marker in line for marker in TIMELINE_MARKERS):
                    lines.append(f"    {at:6.1f}s  {line}")
            if window is not None:
                what = "time to rollback" if outcome.status == "rolled_back" else "canary exposure"
                lines.append(
                    f"    {what}: {window.seconds:.1f}s from the canary's first request to weight 0, "
                    f"{window.canary_requests} canary requests, {window.failed}/{window.requests} requests "
                    f"failed ({window.failed_share:.2%})"
                )
        sent, bad = self.totals
        lines.append(f"traffic: {sent} requests sent, {bad} failed ({bad / max(1, sent):.2%})")
        lines += ["", "where to look:"]
        store = self.tracking_uri.removeprefix("sqlite:///")
        lines.append(f"    MLflow UI:  .venv/bin/mlflow ui --backend-store-uri sqlite:///{store} --port 5000")
        lines.append("                (model versions carry plinth.rollout.local.* tags and a history artifact)")
        lines += [f"    {name}: {url}" for name, url in self.urls.items()]
        lines.append("    (the URLs live while the demo runs; pass --hold to keep them up)")
        return "\n".join(lines)
