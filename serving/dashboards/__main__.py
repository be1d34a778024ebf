"""Write the chart's Grafana dashboard JSON: `python -m serving.dashboards [--check]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serving.dashboards.build import UID, render
from serving.gitops.chart_docs import CHART_DIR
from serving.gitops.tools import write_or_check

DASHBOARD = CHART_DIR / "dashboards" / f"{UID}.json"


def main(argv: list[str] | None = None) -> int:
    """Regenerate the dashboard, or with `--check` report (exit 1) when the committed JSON is stale."""
    parser = argparse.ArgumentParser(prog="python -m serving.dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=DASHBOARD, help="where the dashboard JSON goes")
    parser.add_argument("--check", action="store_true", help="fail when the file is not up to date")
    args = parser.parse_args(argv)
    if not args.check:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    return write_or_check(args.out, render(), args.check, "python -m serving.dashboards")


if __name__ == "__main__":
    sys.exit(main())
