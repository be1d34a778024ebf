"""`make serve`: serve the current champion of PLINTH_HOME on 127.0.0.1 and say where to reach it.

Prints the prediction, OpenAPI docs and metrics URLs, then replaces itself with `bentoml serve`, so the
server gets signals (Ctrl+C) directly. Run: `python -m serving.model_service.serve`.
"""

from __future__ import annotations

import os
import sys

from components.common.state import plinth_home
from serving.model_service.settings import DEFAULT_PORT, ENV_PORT, Settings

SERVICE_TARGET = "serving.model_service.service:ModelService"


def main() -> None:
    """Print where the service will listen, then exec `bentoml serve` on 127.0.0.1:$PORT."""
    settings = Settings.from_env()
    port = int(os.environ.get(ENV_PORT) or DEFAULT_PORT)
    base = f"http://127.0.0.1:{port}"
    print(f"plinth: serving {settings.model_selector} from {settings.tracking_uri}")
    print(f"  predict   POST {base}/predict")
    print(f"  API docs  {base}/  (OpenAPI spec: {base}/docs.json)")
    print(f"  metrics   {base}/metrics", flush=True)
    # `bentoml serve` wipes the Prometheus files in its home at start: a home of our own keeps other
    # BentoML servers on this machine from erasing this one's metrics.
    env = {"BENTOML_HOME": str(plinth_home() / "bentoml"), **os.environ}
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE_TARGET, "--host", "127.0.0.1", "--port", str(port)]
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()
