"""Hash-pinned installs: every package a machine or an image installs is checked against a sha256 in a lock.

`make lock` writes the locks; these tests keep what installs from them honest: a lock line without a hash, a
Dockerfile or `make setup` installing from PyPI without `--require-hashes`, or a dependency in pyproject.toml
that no lock holds would each let an unverified file in.
"""

import re
import subprocess
import sys
import tomllib
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEV_LOCK = ROOT / "requirements.lock"
BOOTSTRAP_LOCK = ROOT / "requirements-bootstrap.lock"
LOCKS = [DEV_LOCK, ROOT / "requirements-serving.lock", ROOT / "requirements-components.lock"]
MLFLOW_LOCK = ROOT / "manifests/platform/mlflow/requirements.lock"
TOOL_LOCKS = [ROOT / ".ci/helm-kubectl.lock", ROOT / ".ci/checkov.lock", ROOT / ".ci/kserve-client.lock"]
CI_SCRIPTS = sorted((ROOT / ".ci").glob("*.sh"))
IGNORED = {".git", ".venv", ".tools", ".plinth", "node_modules"}
DOCKERFILES = sorted(
    path for path in ROOT.rglob("Dockerfile") if not IGNORED.intersection(path.relative_to(ROOT).parts)
)
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?:\s*;[^\\]*)?$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def entries(lock: Path) -> list[str]:
    """Return the lock's requirement entries, continuation lines joined, comments dropped."""
    lines = [line.split("#", 1)[0].rstrip() for line in lock.read_text().splitlines()]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [entry.strip() for entry in joined.splitlines() if entry.strip()]


def pins(lock: Path) -> dict[str, str]:
    """Return the lock's versions by canonical package name."""
    found: dict[str, str] = {}
    for entry in entries(lock):
        match = PIN.match(entry.split(" --hash", 1)[0].strip())
        assert match, f"{lock.name}: not a name==version pin: {entry[:80]}"
        found[canonicalize_name(match["name"])] = match["version"]
    return found


def pip_installs(script: str) -> list[list[str]]:
    """Return the arguments of every `pip install` in a shell script (continuations joined, `&&` split)."""
    commands = re.split(r"&&|;|\|\||\n", re.sub(r"\\\n\s*", " ", script))
    words = [command.split() for command in commands]
    return [w[w.index("install") + 1 :] for w in words if "pip" in w and "install" in w[w.index("pip") :]]


def dockerfile_runs(dockerfile: Path) -> str:
    """Return the shell text of the Dockerfile's RUN instructions."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    return "\n".join(line[4:] for line in text.splitlines() if line.startswith("RUN "))


def hashed_or_local_only(args: list[str]) -> bool:
    """Whether a `pip install` checks hashes, or installs only this tree (`.`) without dependencies."""
    if "--require-hashes" in args:
        return True
    targets = [arg for arg in args if not arg.startswith("-")]
    return "--no-deps" in args and targets == ["."]


@pytest.mark.parametrize(
    "lock", [*LOCKS, BOOTSTRAP_LOCK, MLFLOW_LOCK, *TOOL_LOCKS], ids=lambda path: str(path.relative_to(ROOT))
)
def test_every_lock_entry_is_an_exact_pin_with_sha256_hashes(lock):
    assert entries(lock), f"{lock} is empty"
    for entry in entries(lock):
        requirement, *options = entry.split(" --hash")
        assert PIN.match(requirement.strip()), f"{lock.name}: not a name==version pin: {requirement[:80]}"
        hashes = [f"--hash{option}".strip() for option in options]
        assert hashes, f"{lock.name}: {requirement.strip()} has no --hash"
        assert all(HASH.match(value) for value in hashes), f"{lock.name}: {requirement.strip()}: {hashes}"


def pip_fetches(script: str) -> list[list[str]]:
    """Return the arguments of every `pip install` and `pip download` in a shell script."""
    commands = re.split(r"&&|;|\|\||\n", re.sub(r"\\\n\s*", " ", script))
    found = []
    for words in (command.split() for command in commands):
        for verb in ("install", "download"):
            if any(word.endswith("pip") or word == "pip" for word in words) and verb in words:
                found.append(words[words.index(verb) + 1 :])
    return found


@pytest.mark.parametrize("script", CI_SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_ci_download_checks_hashes(script):
    """A tool the CI scripts fetch from PyPI comes from a hashed lock; nothing is fetched with curl or wget."""
    text = script.read_text()
    assert not re.search(r"\b(curl|wget)\b", text), f"{script.name} downloads outside a hash-checked installer"
    for args in pip_fetches(text):
        assert "--require-hashes" in args, f"{script.name}: pip {' '.join(args)} checks no hash"
        lock = Path(args[args.index("-r") + 1].strip('"').replace("$ROOT/", ""))
        assert (ROOT / lock) in TOOL_LOCKS, f"{script.name}: {lock} is not one of the tool locks make lock writes"


def test_a_binary_of_another_hash_in_the_layer_package_is_refused(tmp_path):
    """The helm inside the hashed wheel is checked again once extracted: a pin that does not match refuses it."""
    (tmp_path / ".ci").mkdir()
    script = (ROOT / ".ci/install-k8s-tools.sh").read_text()
    pinned = re.search(r'^HELM_SHA256="([0-9a-f]{64})"$', script, re.MULTILINE)
    assert pinned, "install-k8s-tools.sh pins no HELM_SHA256"
    wrong = ("0" if pinned[1][0] != "0" else "1") + pinned[1][1:]
    (tmp_path / ".ci/install-k8s-tools.sh").write_text(script.replace(pinned[1], wrong))
    (tmp_path / ".ci/helm-kubectl.lock").write_bytes((ROOT / ".ci/helm-kubectl.lock").read_bytes())
    (tmp_path / ".tools/bin").mkdir(parents=True)
    for present in ("kubectl", "checkov"):  # only helm is fetched
        (tmp_path / ".tools/bin" / present).symlink_to("/bin/true")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", str(tmp_path / ".ci/install-k8s-tools.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0, run.stdout
    assert f"not {wrong}: refused" in run.stderr, run.stderr[-500:]
    assert not (tmp_path / ".tools/bin/helm").exists()


def test_every_dockerfile_is_covered():
    names = {str(path.relative_to(ROOT)) for path in DOCKERFILES}
    assert {"components/Dockerfile", "serving/Dockerfile", "manifests/platform/mlflow/Dockerfile"} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_dockerfile_pip_install_checks_hashes(dockerfile):
    installs = pip_installs(dockerfile_runs(dockerfile))
    assert installs, f"{dockerfile} installs nothing with pip"
    assert all(hashed_or_local_only(args) for args in installs), installs
    if any("--no-build-isolation" in args for args in installs):  # then pip and setuptools come first, hashed
        assert installs[0][installs[0].index("-r") + 1] == BOOTSTRAP_LOCK.name, installs
        assert "--no-deps" in installs[0], installs
    copied = " ".join(line for line in dockerfile.read_text().splitlines() if line.startswith("COPY "))
    for args in installs:
        if "-r" in args:
            lock = Path(args[args.index("-r") + 1]).name
            assert lock in copied, f"{dockerfile}: {lock} is installed but never copied into the image"


def test_make_setup_installs_pip_and_setuptools_then_the_lock_then_plinth_alone():
    recipe = subprocess.run(
        ["make", "-n", "-B", "-f", "Makefile", ".venv/.installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    installs = pip_installs(recipe)
    assert [args[args.index("-r") + 1] for args in installs[:2]] == [BOOTSTRAP_LOCK.name, DEV_LOCK.name]
    assert all(hashed_or_local_only(args) for args in installs), installs
    assert all("--no-build-isolation" in args for args in installs[1:]), "sources must build with the locked setuptools"
    assert installs[-1][-2:] == ["-e", "."], installs
    assert "--no-deps" in installs[-1], installs


def test_pyproject_dependencies_are_all_locked_at_allowed_versions():
    locked = pins(DEV_LOCK)
    wanted = [*PYPROJECT["project"]["dependencies"]]
    wanted += [dep for extra in PYPROJECT["project"]["optional-dependencies"].values() for dep in extra]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is in pyproject.toml but not in requirements.lock: make lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), f"{text} vs locked {locked[name]}"


@pytest.mark.parametrize("lock", LOCKS[1:], ids=lambda path: path.name)
def test_image_locks_hold_the_runtime_at_requirements_lock_versions(lock):
    locked, image = pins(DEV_LOCK), pins(lock)
    for text in PYPROJECT["project"]["dependencies"]:
        assert canonicalize_name(Requirement(text).name) in image, f"{text} missing from {lock.name}"
    differing = {
        name: (locked[name], version) for name, version in image.items() if locked.get(name, version) != version
    }
    assert set(differing) <= {"torch"}, differing


def test_bootstrap_lock_holds_pip_and_the_build_backend_at_requirements_lock_versions():
    backends = {canonicalize_name(Requirement(text).name) for text in PYPROJECT["build-system"]["requires"]}
    bootstrap, locked = pins(BOOTSTRAP_LOCK), pins(DEV_LOCK)
    assert {"pip", *backends} <= set(bootstrap), "sources are built --no-build-isolation: the backend must be locked"
    assert all(locked.get(name, version) == version for name, version in bootstrap.items()), bootstrap


def test_mlflow_image_lock_holds_what_the_auth_extra_adds():
    declared = [Requirement(text) for text in requires("mlflow") or []]
    auth = {
        canonicalize_name(r.name)
        for r in declared
        if r.marker and r.marker.evaluate({"extra": "auth"}) and not r.marker.evaluate({"extra": ""})
    }
    assert auth, "mlflow declares no auth extra"
    assert auth <= set(pins(MLFLOW_LOCK)), auth
