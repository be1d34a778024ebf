"""Every shell block of every README carries a docs-test marker, and every `run` marker names a real test.

This is the tier's guard: a new block (or a new README) that nobody runs and nobody marked as skipped fails
here, in `make test`, before it can go stale.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.docs import readme

HERE = Path(__file__).resolve().parent


def claimed_ids() -> set[str]:
    """Import every test module of the tier (each declares its claims at import) and return the claimed ids."""
    for module in sorted(HERE.glob("test_*.py")):
        importlib.import_module(f"tests.docs.{module.stem}")
    return set(readme.CLAIMED)


def test_the_readmes_of_every_documented_folder_are_found() -> None:
    found = {str(path.relative_to(readme.ROOT)) for path in readme.readme_paths()}
    assert {"README.md", "manifests/README.md", "helm/plinth-serving/README.md", "serving/README.md"} <= found
    assert {path for path in found if path.startswith("components/")}, "component READMEs are covered"


@pytest.mark.parametrize("path", readme.readme_paths(), ids=lambda path: str(path.relative_to(readme.ROOT)))
def test_every_shell_block_is_run_or_deliberately_skipped(path: Path) -> None:
    claimed = claimed_ids()
    found = [problem for block in readme.blocks_of(path) for problem in readme.problems(block, claimed)]
    found += [
        f"{path.relative_to(readme.ROOT)}:{line}: a docs-test marker with no fence right after it"
        for line in readme.orphan_markers(path)
    ]
    assert not found, "\n".join(found)


def test_every_claimed_test_id_has_a_block() -> None:
    marked = {block.marker.argument for block in readme.all_blocks() if block.marker and block.marker.verb == "run"}
    assert claimed_ids() <= marked, f"tests claim blocks no README marks: {sorted(claimed_ids() - marked)}"


SAMPLE = """# sample

<!-- docs-test: run sample-claimed -->
```bash
make train
```

```sh
make serve
```

<!-- docs-test: skip -->
```bash
make e2e
```

<!-- docs-test: run nobody-claims-this -->
```bash
make demo
```

<!-- docs-test: skip needs a Kubernetes
     cluster (a comment may span lines) -->
```console
$ kubectl apply -k manifests/overlays/prod
```

```
an untagged fence
```

<!-- docs-test: run sample-claimed -->

```bash
echo a blank line between marker and fence detaches the marker
```

```text
trees and output need no marker
```

  ~~~~shell
  echo indented tilde fence
  ~~~~
"""


def test_the_check_fails_on_each_kind_of_bad_marking(tmp_path: Path) -> None:
    sample = tmp_path / "README.md"
    sample.write_text(SAMPLE)
    blocks = readme.blocks_of(sample)
    assert [(block.line, block.language) for block in blocks] == [
        (4, "bash"),
        (8, "sh"),
        (13, "bash"),
        (18, "bash"),
        (24, "console"),
        (28, ""),
        (34, "bash"),
        (38, "text"),
        (42, "shell"),
    ]
    assert blocks[0].text == "make train\n"
    assert blocks[4].marker is not None
    assert blocks[4].marker.argument == "needs a Kubernetes cluster (a comment may span lines)"
    assert blocks[8].text == "echo indented tilde fence\n"
    verdicts = [readme.problems(block, {"sample-claimed"}) for block in blocks]
    assert [verdicts[0], verdicts[4], verdicts[7]] == [[], [], []]
    assert "without a marker" in verdicts[1][0]
    assert "needs a reason" in verdicts[2][0]
    assert "no test claims `run nobody-claims-this`" in verdicts[3][0]
    assert "without a language" in verdicts[5][0]
    assert "without a marker" in verdicts[6][0]
    assert "without a marker" in verdicts[8][0]
    assert readme.orphan_markers(sample) == [32]


def test_an_unknown_verb_and_a_malformed_id_are_refused(tmp_path: Path) -> None:
    sample = tmp_path / "README.md"
    sample.write_text(
        "<!-- docs-test: maybe later -->\n```bash\nx\n```\n<!-- docs-test: run Two Words -->\n```bash\ny\n```\n"
    )
    first, second = (readme.problems(block, set()) for block in readme.blocks_of(sample))
    assert "unknown docs-test verb 'maybe'" in first[0]
    assert "needs one test id" in second[0]
