import pytest

from pipelines.submit import main, parse_params
from serving.embedded.processes import free_port


def test_unset_host_is_one_clear_line(capsys):
    assert main(["--host", ""]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "KFP_HOST is not set" in err


def test_unreachable_host_is_one_clear_line(capsys):
    host = f"http://127.0.0.1:{free_port()}"
    assert main(["--host", host]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: Kubeflow Pipelines API at {host} is unreachable: ConnectionError"


def test_params_must_be_key_value():
    assert parse_params(["seed=3", "source=a=b"]) == {"seed": "3", "source": "a=b"}
    with pytest.raises(RuntimeError, match="key=value"):
        parse_params(["seed"])
