"""The new_data trigger: the training source no longer holds the data the champion was trained on.

`python -m pipelines.triggers.new_data --source data.csv --target label --model-name M [--every 5m]` (or
`--source s3://bucket/table/`, a partitioned Parquet folder in an object store) hashes
the source exactly as the ingest step does (`load_source`, then `dataset_hash`), compares the hash with the
champion's `plinth.data_hash` lineage tag and, when they differ, acts through the same `Actor` as the alert
receiver, so one set of guard rails sees every trigger kind. The run it starts trains on that source.

Checked every interval, a change that already started a run is coalesced into that run (its lease) instead of
starting another. Data some version was already trained on fires nothing: the run it started registers a
version with that `plinth.data_hash` (a challenger until its rollout makes it champion), and training again on
the same data would only repeat it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from requests import RequestException

from components.common.duration import parse_duration
from components.common.redact import redact
from components.common.tracking import champion_version
from components.ingest.core import IngestError, dataset_hash, load_source
from pipelines.triggers.act import Actor
from pipelines.triggers.policy import Trigger
from pipelines.triggers.wiring import WiringError, add_arguments, build

DATA_HASH = "plinth.data_hash"
KIND = "new_data"
SHORT = 12


@dataclass(frozen=True)
class Seen:
    """What one check found: the source's rows and hash, the champion's hash, a version already trained on it."""

    source: str
    rows: int
    digest: str
    champion: str | None = None
    champion_digest: str = ""
    trained: str | None = None


def observe(source: str, client: MlflowClient, model_name: str, target: str = "") -> Seen:
    """Hash `source` as ingest does and look up what the registry holds for `model_name`.

    Raises:
        IngestError: the source cannot be read, or has no `target` column (a run on it could only fail).
    """
    frame = load_source(source)
    if target and target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise IngestError(f"target column {target!r} is not in {source} (columns: {columns})")
    digest = dataset_hash(frame)
    champion = champion_version(client, model_name)
    if champion is None:
        return Seen(source, len(frame), digest)
    champion_digest = client.get_model_version(model_name, champion).tags.get(DATA_HASH, "")
    trained = client.search_model_versions(
        f"name = '{model_name}' and tags.`{DATA_HASH}` = '{digest}'", max_results=1, order_by=["version_number DESC"]
    )
    return Seen(source, len(frame), digest, champion, champion_digest, str(trained[0].version) if trained else None)


def to_trigger(seen: Seen) -> Trigger | None:
    """Return the new_data trigger for what a check saw, or None when some version was trained on this data."""
    short = seen.digest[:SHORT]
    if seen.champion is None:
        return Trigger(KIND, f"no champion yet: {seen.source} (sha256 {short})", {"rows": seen.rows})
    if seen.trained is not None:
        return None
    was = seen.champion_digest[:SHORT] or "none"
    reason = f"{seen.source} changed: sha256 {short}, champion v{seen.champion} was trained on {was}"
    return Trigger(KIND, reason, {"rows": seen.rows})


def check(source: str, client: MlflowClient, model_name: str, target: str = "") -> Trigger | None:
    """Return a new_data trigger when `source` holds data no version of `model_name` was trained on."""
    return to_trigger(observe(source, client, model_name, target))


def check_and_act(actor: Actor, source: str, model_name: str, target: str = "") -> str:
    """Check once and act on a change through `actor`; return the one line that says what happened."""
    seen = observe(source, actor.record.client, model_name, target)
    trigger = to_trigger(seen)
    if trigger is None:
        # Nothing to act on, but a run this watcher started may have ended: free its lease now, not at expiry.
        actor.settle(datetime.now(UTC))
        which = f"champion v{seen.champion}" if seen.trained == seen.champion else f"v{seen.trained}"
        data = f"{source} (sha256 {seen.digest[:SHORT]}, {seen.rows} rows)"
        return f"{KIND}: unchanged: {data} is what {which} was trained on"
    outcome = actor.act(trigger)
    started = f" {outcome.run}" if outcome.run else ""
    return f"{KIND}: {outcome.decision.action}: {outcome.decision.reason}{started}"


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's parser: the source flags, then the flags every trigger entry point takes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--source",
        required=True,
        help="the training source: a .csv/.parquet file or Parquet folder, as a path or an s3://, gs://, abfs:// URL"
        " (credentials from the standard environment), or sklearn:<name>",
    )
    parser.add_argument("--target", default="", help="its label column, passed on to the run (default: the run's)")
    parser.add_argument("--every", default="", help="check again after this long (90s, 5m, 1h) until Ctrl-C")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, then check once or every `--every` until interrupted; one line per check."""
    args = build_parser().parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store set-up chatter would bury the one line
    try:
        every = parse_duration(args.every) if args.every else None
        if every is not None and every <= timedelta(0):
            raise ValueError(f"--every {args.every!r}: must be longer than 0s")
        wired = build(args, source=args.source, target=args.target)
    except (ValueError, WiringError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pause = threading.Event()
    try:
        while True:
            try:
                print(check_and_act(wired.actor, args.source, args.model_name, args.target), flush=True)
            except IngestError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            except (MlflowException, RequestException, OSError) as error:
                reason = redact(str(error).splitlines()[0][:200])
                print(f"error: registry {redact(wired.tracking_uri)}: {reason}", file=sys.stderr)
                if every is None:
                    return 1
            if every is None:
                return 0
            pause.wait(every.total_seconds())
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
