"""`make status`, typed in a fresh shell with no cluster and no registry: one screen, exit 0, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.docs.as_typed import UserShell
from tests.docs.readme import claim

STATUS = claim("status-screen")


def test_status_without_cluster_or_registry_says_what_it_could_not_read(checkout: Path, tmp_path: Path) -> None:
    shell = UserShell(home=tmp_path / "home", plinth_home=tmp_path / "plinth-home", cwd=checkout)
    typed = shell.run(STATUS.block(), timeout=300)
    assert typed.returncode == 0, typed.tail()
    assert "Traceback" not in typed.output
    rows = {
        line.split()[0]: line.split()
        for line in typed.output.splitlines()
        if line.split()[:1] in (["staging"], ["prod"])
    }
    for environment in ("staging", "prod"):
        desired = (checkout / "manifests/overlays" / environment / "desired.yaml").read_text()
        assert f'value: "{rows[environment][1].removeprefix("v")}"' in desired, typed.tail()
        assert f"{environment}: cluster unreachable" in typed.output
    assert "registry: no registry at" in typed.output
    assert not shell.plinth_home.exists(), "status opens no registry it would have to create"
