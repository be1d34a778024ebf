"""`make serve`: serve the current champion of PLINTH_HOME on 127.0.0.1 and say how to reach it.

Resolves the model first (so a wrong name or an empty registry fails here, with one line), prints the
prediction, OpenAPI docs and metrics URLs and a ready-to-run `curl` with an example body for this very
model (from its logged input example), then replaces itself with `bentoml serve`, so the server gets
signals (Ctrl+C) directly. Run: `python -m serving.model_service.serve`.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from components.common.redact import redact
from components.common.state import plinth_home
from serving.model_service import clients, examples, registry, schema
from serving.model_service.settings import DEFAULT_PORT, ENV_PORT, Settings, SettingsError

SERVICE_TARGET = "serving.model_service.service:ModelService"


def curl_line(port: int, body: dict[str, object]) -> str:
    """Return a shell command that posts `body` to the service, quoted to paste as it is."""
    command = f"curl -s -X POST localhost:{port}/predict -H 'content-type: application/json'"
    return f"{command} -d {shlex.quote(json.dumps(body))}"


def main() -> None:
    """Resolve the model, print where and how to call it, then exec `bentoml serve` on 127.0.0.1:$PORT."""
    token = clients.local_token(os.environ)  # none set: one token for this server's labels, printed below
    try:
        settings = Settings.from_env()
        model = registry.fetch(settings)
        request = schema.request_model(model.columns, settings.max_instances)
        _, rows = examples.first_valid(model, request)
    except (SettingsError, registry.ModelLoadError, ValueError) as error:
        raise SystemExit(f"plinth: {error}") from None
    port = int(os.environ.get(ENV_PORT) or DEFAULT_PORT)
    base = f"http://127.0.0.1:{port}"
    shown = redact(settings.tracking_uri)
    print(f"plinth: serving {model.name} v{model.version} ({settings.model_selector}) from {shown}")
    print(f"  predict   POST {base}/predict")
    print(f"  API docs  {base}/  (OpenAPI spec: {base}/docs.json)")
    print(f"  metrics   {base}/metrics")
    print(f"  try it    {curl_line(port, {'instances': rows[:1]})}")
    if token is not None:
        print(f"  feedback  POST {base}/feedback  with 'Authorization: Bearer $TOKEN':  export TOKEN={token}")
    sys.stdout.flush()
    # `bentoml serve` wipes the Prometheus files in its home at start: a home of our own keeps other
    # BentoML servers on this machine from erasing this one's metrics.
    env = {"BENTOML_HOME": str(plinth_home() / "bentoml"), **os.environ}
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE_TARGET, "--host", "127.0.0.1", "--port", str(port)]
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()
