"""`python -m serving.experiments assign | run`: the variant a key meets; one experiment beside a cluster.

`assign` prints the variant a key meets, as an upstream sets `x-plinth-variant`.

The cluster's route cannot hash, so whatever sits upstream computes the variant from the user's key with the
same function the local router uses; this command prints it, for a shell script, a test, or to check another
language's implementation of the stated formula (`assign.py`) against this one.

    python -m serving.experiments assign --experiment ab --variants a=50,b=50 user-17   # prints a or b

`run` decides an experiment the chart routes (`cluster.py`).
"""

from __future__ import annotations

import argparse
import sys

from serving.experiments import cluster
from serving.experiments.assign import Assigner


def variants(text: str) -> tuple[list[str], list[int]]:
    """Return names and weights of `a=50,b=50`."""
    names, weights = [], []
    for part in filter(None, text.split(",")):
        name, _, weight = part.partition("=")
        if not name or not weight.isdigit():
            raise argparse.ArgumentTypeError(f"expected name=weight pairs like a=50,b=50, got {part!r}")
        names.append(name)
        weights.append(int(weight))
    if len(names) < 2 or sum(weights) != 100:
        raise argparse.ArgumentTypeError(f"two or more variants whose weights sum to 100, got {text!r}")
    return names, weights


def main(argv: list[str] | None = None) -> int:
    """Print the variant of each key, one per line."""
    parser = argparse.ArgumentParser(prog="python -m serving.experiments", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    assign = commands.add_parser("assign", help="print the variant each key meets")
    assign.add_argument("--experiment", required=True, help="the experiment's name (it salts the hash)")
    assign.add_argument("--variants", required=True, type=variants, help="name=weight pairs in spec order")
    assign.add_argument("keys", nargs="+", help="users' keys (the x-user-id values)")
    cluster.add_arguments(commands.add_parser("run", help="decide an experiment the chart routes, to a record"))
    args = parser.parse_args(argv)
    if args.command == "run":
        return cluster.run(args)
    assigner = Assigner(args.experiment, *args.variants)
    for key in args.keys:
        print(assigner.variant_of(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
