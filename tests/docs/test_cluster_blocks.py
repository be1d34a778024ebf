"""The READMEs' cluster commands, rendered exactly as written: `helm install` and `kubectl apply -k`.

No cluster runs here, so each documented install line is turned into its offline twin programmatically,
flags untouched: `helm install <args>` -> `helm template <args>` with the pinned helm, and
`kubectl apply -k <dir>` -> `kubectl kustomize <dir>`. A typo in a value key, a chart path that moved or a
flag that stopped changing anything fails here. The other lines of those blocks (`kubectl create …`,
`helm test`, `openssl …`) need a live API server or the user's key and are not run; a `--set-file` of a file
that such a line writes (`-out public.pem`) reads a fresh example public key written at that path instead.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.docs.as_typed import bare_path
from tests.docs.readme import ROOT, Block, claim

HELM_INSTALL = claim("helm-install")
KUBECTL_APPLY = claim("kubectl-apply")
# What `make k8s-tools` + the README's `export PATH=…` give a user: .tools/bin first, then the shell's PATH.
USER_PATH = f"{ROOT / '.tools' / 'bin'}:{bare_path()}"


def commands(block: Block) -> list[list[str]]:
    """Return the block's commands as argv lists: continuation lines joined, comments dropped."""
    logical = block.text.replace("\\\n", " ")
    return [argv for line in logical.splitlines() if (argv := shlex.split(line, comments=True))]


def tool(name: str) -> str:
    """Return the pinned tool a user of the README would run; fail (not skip) when setup did not install it."""
    found = shutil.which(name, path=USER_PATH)
    if found is None:
        pytest.fail(f"{name} not on PATH or in .tools/bin: run `make k8s-tools`")
    return found


def render(argv: list[str]) -> str:
    """Run a render command from the repository root and return its output; fail with its stderr."""
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stderr}"
    return result.stdout


def without_flag(args: list[str], index: int) -> list[str]:
    """Return `args` without the `--set <value>` pair that starts at `index`."""
    return args[:index] + args[index + 2 :]


def helm_installs(block: Block) -> list[list[str]]:
    installs = [argv[2:] for argv in commands(block) if argv[:2] == ["helm", "install"]]
    assert installs, f"{block.where} is claimed by helm-install but has no `helm install` line"
    return installs


def written_files(block: Block) -> set[str]:
    """Return the files the block's own commands write with `-out <file>` (the `openssl` lines)."""
    return {argv[index + 1] for argv in commands(block) for index, arg in enumerate(argv[:-1]) if arg == "-out"}


def example_public_key(path: Path) -> Path:
    """Write the PEM public half of a fresh elliptic-curve key pair to `path` and return it."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def with_written_files(args: list[str], block: Block, folder: Path) -> list[str]:
    """Point each `--set-file key=<file>` at an example key when the block writes that file itself."""
    written, out = written_files(block), list(args)
    for index, arg in enumerate(args[:-1]):
        if arg == "--set-file":
            key, _, name = args[index + 1].partition("=")
            if name in written and not (ROOT / name).exists():
                out[index + 1] = f"{key}={example_public_key(folder / Path(name).name)}"
    return out


@pytest.mark.parametrize("block", HELM_INSTALL.blocks(), ids=lambda block: block.where)
def test_every_documented_helm_install_renders_and_each_set_flag_takes_effect(block: Block, tmp_path: Path) -> None:
    helm = tool("helm")
    for args in (with_written_files(args, block, tmp_path) for args in helm_installs(block)):
        rendered = render([helm, "template", *args])
        objects = [obj for obj in yaml.safe_load_all(rendered) if obj]
        assert {obj["kind"] for obj in objects} >= {"Deployment", "Service"}, "the install renders the stack"
        namespace = args[args.index("-n") + 1] if "-n" in args else "default"
        misplaced = [
            f"{obj['kind']}/{obj['metadata']['name']}"
            for obj in objects
            if obj["metadata"].get("namespace", namespace) != namespace
        ]
        assert not misplaced, f"objects outside -n {namespace}: {misplaced}"
        for index, arg in enumerate(args):
            if arg in ("--set", "--set-string", "--set-file"):
                key = args[index + 1].split("=", 1)[0]
                unset = subprocess.run(
                    [helm, "template", *without_flag(args, index)],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    timeout=120,
                    check=False,
                )
                if unset.returncode != 0:  # a value the chart requires: without it, it refuses and names it
                    assert key in unset.stderr, f"{block.where}: without `{arg} {args[index + 1]}`: {unset.stderr}"
                    continue
                assert unset.stdout != rendered, (
                    f"{block.where}: `{arg} {args[index + 1]}` changes nothing in the chart"
                )


@pytest.mark.parametrize("block", KUBECTL_APPLY.blocks(), ids=lambda block: block.where)
def test_every_documented_kubectl_apply_k_renders(block: Block) -> None:
    kubectl = tool("kubectl")
    applies = [argv for argv in commands(block) if argv[:2] == ["kubectl", "apply"]]
    assert applies, f"{block.where} is claimed by kubectl-apply but has no `kubectl apply` line"
    for argv in applies:
        assert argv[2:3] == ["-k"], f"{block.where}: only `kubectl apply -k <dir>` can be rendered offline: {argv}"
        directory = Path(argv[3])
        objects = [obj for obj in yaml.safe_load_all(render([kubectl, "kustomize", str(directory)])) if obj]
        assert objects, f"kubectl kustomize {directory} renders nothing"
        assert all("kind" in obj and "metadata" in obj for obj in objects)


def test_commands_joins_continuations_and_drops_comments(tmp_path: Path) -> None:
    block = Block(
        tmp_path / "README.md", 1, "bash", "helm install a b \\\n  --set x=1  # why\n# only a comment\n", None, True
    )
    assert commands(block) == [["helm", "install", "a", "b", "--set", "x=1"]]


def test_a_set_file_of_a_file_the_block_writes_reads_an_example_key(tmp_path: Path) -> None:
    text = "openssl ec -in private.pem -pubout -out public.pem\nhelm install a b --set-file k=public.pem\n"
    block = Block(tmp_path / "README.md", 1, "bash", text, None, True)
    args = with_written_files(helm_installs(block)[0], block, tmp_path)
    assert args == ["a", "b", "--set-file", f"k={tmp_path / 'public.pem'}"]
    assert (tmp_path / "public.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
