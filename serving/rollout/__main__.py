"""Entry point: `python -m serving.rollout --help`."""

from serving.rollout.cli import main

raise SystemExit(main())
