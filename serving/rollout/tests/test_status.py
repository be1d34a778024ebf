"""The status screen's parts that need no cluster and no registry: the local service probe and the layout."""

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from serving.embedded.processes import free_port
from serving.rollout.status import Row, render_table, served_locally


def test_a_running_local_service_says_which_version_it_serves():
    registry = CollectorRegistry()
    info = Gauge("plinth_model_info", "model", ["model_name", "model_version", "task"], registry=registry)
    info.labels("m", "7", "binary").set(1)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        assert served_locally(f"http://127.0.0.1:{port}") == "7"
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert served_locally(f"http://127.0.0.1:{port}") is None


def test_the_screen_has_one_line_per_environment_and_every_note():
    rows = [Row("local", "v2", "v1", "-", "-", "none recorded"), Row("prod", "v1", "?", notes=["cluster unreachable"])]
    screen = render_table(rows, "plinth status: m", "registry down")
    lines = screen.splitlines()
    assert lines[0] == "plinth status: m"
    assert lines[2].split()[:3] == ["ENVIRONMENT", "DESIRED", "(GIT)"]
    assert lines[3].split() == ["local", "v2", "v1", "-", "-", "none", "recorded"]
    assert "  registry: registry down" in lines
    assert "  prod: cluster unreachable" in lines
