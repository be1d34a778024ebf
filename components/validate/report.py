"""The validation report: one `Check` per rule and column, readable as a summary line or a Markdown table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TABLE_SCOPE = "(dataset)"


def shown(values: Iterable[Any], limit: int = 3) -> str:
    """Return up to `limit` values as a person reads them: 'n/a', 3.5 — never a numpy repr."""
    parts = []
    for value in list(values)[:limit]:
        plain = value.item() if hasattr(value, "item") else value
        parts.append(
            f"'{plain}'" if isinstance(plain, str) else f"{plain:g}" if isinstance(plain, float) else str(plain)
        )
    return ", ".join(parts)


@dataclass(frozen=True)
class Check:
    """The outcome of one rule on one column (or on the whole table)."""

    column: str
    rule: str
    passed: bool
    detail: str


@dataclass
class Report:
    """All checks of one validation run."""

    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Return True when no check failed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        """Return the failed checks."""
        return [check for check in self.checks if not check.passed]

    def add(self, column: str, rule: str, passed: bool, detail: str) -> bool:
        """Record one check and return whether it passed."""
        self.checks.append(Check(str(column), rule, bool(passed), detail))
        return bool(passed)

    def summary(self) -> str:
        """Return one line per failure, for logs and error messages."""
        if self.passed:
            return f"validation passed: {len(self.checks)} checks"
        lines = [f"validation failed: {len(self.failures)} of {len(self.checks)} checks"]
        lines += [f"  - column '{c.column}', rule {c.rule}: {c.detail}" for c in self.failures]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Render the report as a Markdown table, failures first."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"# Data validation {verdict}",
            "",
            f"{len(self.checks)} checks, {len(self.failures)} failed.",
            "",
            "| result | column | rule | detail |",
            "|---|---|---|---|",
        ]
        for check in sorted(self.checks, key=lambda c: c.passed):
            mark = "ok" if check.passed else "**FAIL**"
            lines.append(f"| {mark} | `{check.column}` | {check.rule} | {check.detail} |")
        return "\n".join(lines) + "\n"
