"""`python -m serving.signer`: run the signer service until interrupted (see server.py)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from components.common import signing, tracking
from serving.signer.server import LOG, serve


def main(argv: list[str] | None = None) -> int:
    """Parse flags, load the key's path, then serve until interrupted; exit 2 with one line on bad settings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", ""),
        help="MLflow (default: $MLFLOW_TRACKING_URI)",
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        print("error: --tracking-uri (or MLFLOW_TRACKING_URI) is required", file=sys.stderr)
        return 2
    configured = os.environ.get(signing.ENV_SIGNING_KEY, "").strip()
    if not configured or not Path(configured).is_file():
        print(f"error: {signing.ENV_SIGNING_KEY} must name the private key file (got {configured!r})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = tracking.connect(args.tracking_uri)
    server = serve(client, Path(configured), args.host, args.port)
    LOG.info("signer on http://%s:%d/sign (registry %s)", args.host, args.port, args.tracking_uri)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
