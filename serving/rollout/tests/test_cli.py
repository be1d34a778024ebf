import subprocess
import sys

from serving.embedded.rollout import EXIT_USAGE, main


def test_bad_spec_fails_with_one_line_naming_the_field(tmp_path, capsys):
    spec = tmp_path / "analysis.yaml"
    spec.write_text("steps: [10, 50]\ninterval: 1s\nchecks: [{name: success-rate, min: 0.9}]\n")
    assert main(["--spec", str(spec), "--metrics-port", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "steps[1]: the last step must be 100" in err


def test_cluster_mode_names_its_missing_flags():
    done = subprocess.run(
        [sys.executable, "-m", "serving.rollout", "--mode", "cluster", "--namespace", "ml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--httproute" in done.stderr
    assert "--prometheus-url" in done.stderr
    assert "--state-configmap" in done.stderr
