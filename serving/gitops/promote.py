"""Promote a model version from one environment overlay to the next, through Git.

`python -m serving.gitops.promote --from staging --to prod [--apply]` (also `make promote FROM=… TO=…`):

1. refuses unless the working tree is clean, the source environment has promoted something (the registry
   alias `serving-<from>`, which the rollout controller points at what the source's stable serves) and that
   version finished its rollout there (`plinth.rollout.<from>.status = promoted`). What moves is what the
   source ACTUALLY SERVES, not what its overlay desires (that may still be rolling out, or rolled back).
   The registry is `--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else the embedded one in `$PLINTH_HOME`
   (like every other plinth command); each message names the one it read;
2. rewrites only the target overlay's desired version (`desired.yaml`, the canary Deployment's
   PLINTH_MODEL_VERSION; temp file + rename), checks that `kubectl kustomize` still renders it with the new
   version (restoring the old file when it does not), and commits that one file with a message naming the
   versions and the evidence. When the source overlay pins the serving image by digest (kustomization.yaml
   `images:`, serving.gitops.image_pin) and the target's pin differs, the source's pin moves along in the
   same commit, so the target runs the image the version was analysed with. A target whose kustomization is
   annotated `plinth.dev/image-pins: digest-required` (what `make pin-images` writes into every overlay)
   takes a version only together with a digest pin: a source that pins its image by tag alone is refused;
3. shows `kubectl diff --server-side -k` of the target overlay and, with `--apply`, runs
   `kubectl apply --server-side --force-conflicts --field-manager=plinth-promote -k`. Without `--apply` a GitOps
   agent (Argo CD, Flux) watching the repository applies the commit; either way the target's rollout controller
   then rolls the version out there.

Server-side apply, as Flux applies: the objects are shared with GitOps agents and the rollout controller, and
each field's manager is recorded (`plinth-promote` for what Git sets). Conflicts are forced, as Flux forces
them: the only field another manager changes is the route's weights and mirror, which the controller moves
during a rollout; a promotion changes the desired version, which cancels that rollout anyway (weight 0), and
the controller takes the route back on its next write. Refusing would leave a promotion half applied.

Checks run in this order: bad arguments (exit 2), a dirty tree, a tag-only image for a digest-only target, then
the registry evidence (exit 1).
Exit status: 0 promoted (or nothing to do), 1 refused or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from components.common.tracking import serving_alias
from serving.gitops import image_pin, overlay, registry
from serving.gitops.evidence import (
    EvidenceError,
    RolloutEvidence,
    served_version,
    successful_rollout,
)
from serving.gitops.tools import ToolMissingError, find_tool

REFUSED = 1
BAD_INPUT = 2


class PromotionError(RuntimeError):
    """The promotion was refused or failed; `code` is the exit status."""

    def __init__(self, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.code = code


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its output; a failure becomes a PromotionError."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PromotionError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def check_input(repo: Path, source: str, target: str) -> None:
    """Raise a BAD_INPUT PromotionError naming what to fix in the arguments."""
    if source == target:
        raise PromotionError(f"--from and --to are both {source!r}: name two different environments", BAD_INPUT)
    known = overlay.known_environments(repo)
    for environment in (source, target):
        if environment not in known:
            where = overlay.overlay_dir(repo, environment) / overlay.DESIRED_FILE
            raise PromotionError(
                f"unknown environment {environment!r}: no {where} (known: {', '.join(known) or 'none'})",
                BAD_INPUT,
            )


def check_clean(repo: Path) -> None:
    """Refuse a tree with uncommitted changes: the promotion commit must hold the desired version and nothing else."""
    changed = git(repo, "status", "--porcelain").splitlines()
    if changed:
        raise PromotionError(
            f"working tree of {repo} is not clean ({len(changed)} changed paths): commit or stash first"
        )


def commit_message(
    evidence: RolloutEvidence,
    source: str,
    target: str,
    previous: str,
    where: registry.Registry,
    image: image_pin.ImagePin | None = None,
) -> str:
    """Return the commit message: the move as subject, the versions, image and registry evidence as body."""
    moved = f" (manifests/overlays/{target}/{image_pin.KUSTOMIZATION})"
    return (
        f"promote {evidence.model_name} v{evidence.version} {source} -> {target}\n\n"
        f"{target}: v{previous} -> v{evidence.version} (manifests/overlays/{target}/{overlay.DESIRED_FILE})\n"
        + (f"Image: {target} runs {image.reference()}, as {source} pins it{moved}\n" if image else "")
        + f"Source: {source} serves v{evidence.version} (registry alias {serving_alias(source)})\n"
        f"Evidence: {evidence.describe()}\n"
        f"Registry: {where.describe()}\n"
    )


def image_to_carry(repo: Path, source: str, target: str) -> image_pin.ImagePin | None:
    """Return the source's serving image pin when it pins a digest the target does not have yet, else None."""
    pin = image_pin.read_pin(overlay.overlay_dir(repo, source))
    if pin is None or not pin.digest or pin == image_pin.read_pin(overlay.overlay_dir(repo, target)):
        return None
    return pin


def check_digest_pin(repo: Path, source: str, target: str) -> None:
    """Refuse a promotion into a digest-only environment from a source whose serving image has no digest."""
    if not image_pin.digest_required(overlay.overlay_dir(repo, target)):
        return
    pin = image_pin.read_pin(overlay.overlay_dir(repo, source))
    if pin is None or not pin.digest:
        shown = pin.reference() if pin else "the base's image"
        raise PromotionError(
            f"{target} takes the serving image by digest only ({image_pin.IMAGE_PINS_ANNOTATION}: "
            f"{image_pin.DIGEST_REQUIRED} in its {image_pin.KUSTOMIZATION}) but {source} runs {shown} by tag: "
            f"run make images PUSH=1 and make pin-images ENV={source}, commit, let {source} roll out, then promote"
        )


def move_desired(kubectl: str, repo: Path, target: str, version: str) -> Path:
    """Rewrite the target's desired version and prove it renders; put the old file back when it does not."""
    path = overlay.overlay_dir(repo, target) / overlay.DESIRED_FILE
    original = path.read_text()
    overlay.write_atomically(path, overlay.rewrite_desired(original, version))
    try:
        rendered = overlay.rendered_desired(overlay.render(kubectl, path.parent))
        if rendered.version != version:
            raise overlay.OverlayError(f"{target} renders version {rendered.version} after the rewrite, not {version}")
    except overlay.OverlayError:
        overlay.write_atomically(path, original)
        raise
    return path


FIELD_MANAGER = "plinth-promote"


def kubectl_k(kubectl: str, verb: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """Run `kubectl <verb> --server-side --force-conflicts --field-manager=plinth-promote -k <directory>`."""
    flags = ["--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}"]
    command = [kubectl, verb, *flags, "-k", str(directory)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def show_diff_and_apply(kubectl: str, directory: Path, apply: bool) -> None:
    """Show what the cluster would change and apply it when asked; a missing cluster is reported."""
    diff = kubectl_k(kubectl, "diff", directory)
    # kubectl diff: 0 = no changes, 1 = changes shown, anything else = it could not compare (no cluster, …).
    if diff.returncode in (0, 1):
        print(diff.stdout or "kubectl diff: the cluster already matches")
    else:
        detail = (diff.stderr.strip().splitlines() or ["no output"])[-1]
        print(
            f"kubectl diff: the cluster could not be compared ({detail}); the commit stands, Argo CD / Flux or "
            f"`make promote … APPLY=1` once it answers will roll it out"
        )
        if apply:
            raise PromotionError(f"--apply needs a cluster that answers the diff: {detail}")
        return
    if apply:
        result = kubectl_k(kubectl, "apply", directory)
        if result.returncode != 0:
            detail = result.stderr.strip()
            raise PromotionError(f"kubectl apply --server-side -k {directory} failed (the commit stands): {detail}")
        print(result.stdout.strip())


def registry_client(where: registry.Registry) -> MlflowClient:
    """Return a client of `where`; refuse an embedded registry that does not exist (a read would create it)."""
    registry.require_embedded_store(where)
    return MlflowClient(tracking_uri=where.uri, registry_uri=where.uri)


def promote(repo: Path, source: str, target: str, tracking_uri: str | None, apply: bool) -> str:
    """Run the whole promotion and return a one-line summary; raise PromotionError when refused.

    `tracking_uri` None means `$MLFLOW_TRACKING_URI`, else the embedded registry of `$PLINTH_HOME`.
    """
    check_input(repo, source, target)
    check_clean(repo)
    check_digest_pin(repo, source, target)
    where = registry.resolve(tracking_uri)
    kubectl = find_tool("kubectl")
    model_name = overlay.rendered_desired(overlay.render(kubectl, overlay.overlay_dir(repo, source))).model_name
    previous = overlay.rendered_desired(overlay.render(kubectl, overlay.overlay_dir(repo, target)))
    if previous.model_name != model_name:
        raise PromotionError(f"{source} deploys model {model_name} but {target} {previous.model_name}")
    try:
        client = registry_client(where)
        version = served_version(client, model_name, source)
        image = image_to_carry(repo, source, target)
        if previous.version == version and image is None:
            return f"{target} already desires {model_name} v{version}, what {source} serves: nothing to promote"
        evidence = successful_rollout(client, model_name, version, source)
    except (EvidenceError, registry.RegistryMissingError) as error:
        raise PromotionError(f"{error} [registry: {where.describe()}]") from error
    directory = overlay.overlay_dir(repo, target)
    paths = [image_pin.move_pin(kubectl, directory, image)] if image else []
    try:
        paths.append(move_desired(kubectl, repo, target, version))
    except overlay.OverlayError:
        if image:  # the commit holds both moves or neither
            git(repo, "checkout", "--", str(paths[0].relative_to(repo)))
        raise
    git(repo, "add", "--", *(str(path.relative_to(repo)) for path in paths))
    git(repo, "commit", "--quiet", "-m", commit_message(evidence, source, target, previous.version, where, image))
    show_diff_and_apply(kubectl, directory, apply)
    carried = f"; image {image.reference()}" if image else ""
    return (
        f"promoted {model_name} v{version} {source} -> {target}{carried} ({evidence.describe()}; "
        f"registry: {where.describe()})"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, promote, and return the exit status (0, 1 refused, 2 bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.gitops.promote",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="source", required=True, help="environment the version comes from")
    parser.add_argument("--to", dest="target", required=True, help="environment whose desired version moves")
    parser.add_argument("--apply", action="store_true", help="apply the target overlay (kubectl apply --server-side)")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the GitOps repository (default: here)")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow registry with the rollout tags (default: $MLFLOW_TRACKING_URI, else the embedded "
        "registry in $PLINTH_HOME)",
    )
    args = parser.parse_args(argv)
    try:
        print(promote(args.repo.resolve(), args.source, args.target, args.tracking_uri, args.apply))
    except PromotionError as error:
        print(f"promote: {error}", file=sys.stderr)
        return error.code
    except (overlay.OverlayError, ToolMissingError) as error:
        print(f"promote: {error}", file=sys.stderr)
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
