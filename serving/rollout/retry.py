"""`make retry ENV=<env>` (`python -m serving.rollout.retry`): ask an environment's controller to try again.

A version rolled back in an environment stays rolled back there, across controller restarts and re-applies
of the same Git state, until somebody asks. Asking is one annotation on the controller's record,
`plinth.dev/retry: "<version>"` (what `kubectl annotate` would write); the controller starts exactly one new
rollout of that version and clears the annotation. No fake change of the spec, no commit. A version whose files
are those of a rolled-back one (the same manifest digest, registered again) is rejected in its own name and
retried the same way; without `--version`, that held-back version is the one retried.

Exit status: 0 requested, 1 refused (nothing rolled back to retry, no record, cluster unreachable), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from serving.gitops import overlay
from serving.gitops.tools import ToolMissingError, find_tool
from serving.rollout.core.state import RETRY_ANNOTATION, State
from serving.rollout.status import coordinates, first_line, kubeconfig_client


class RetryRefused(RuntimeError):
    """The retry cannot be requested; the message is the one line the user reads."""


def retry_target(state: State, version: str | None) -> str:
    """Return the version to retry: `version`, else one held back as a copy of rolled-back files, else the last one.

    Raises:
        RetryRefused: that version is not rolled back in this environment (nothing to retry).
    """
    rejected = state.status.rejected
    if version is None:
        outcome = state.status.outcome
        held = state.status.held
        version = held if held in rejected else outcome.version if outcome and outcome.version in rejected else None
    if version is None or version not in rejected:
        known = ", ".join(f"v{v}" for v in rejected) or "none"
        what = f"v{version} is not" if version else "nothing is"
        raise RetryRefused(f"{what} rolled back in this environment (rolled back: {known}): nothing to retry")
    return version


def request_retry(api: ApiClient, namespace: str, configmap: str, version: str | None) -> str:
    """Annotate the record with a retry of `version` (default: the last rolled-back one); return that version."""
    core = CoreV1Api(api)
    try:
        found = core.read_namespaced_config_map(configmap, namespace)
    except ApiException as error:
        raise RetryRefused(f"no record {namespace}/{configmap}: {error.status} {error.reason}") from error
    state = State.from_configmap(found.data, found.metadata.annotations, found.metadata.resource_version)
    version = retry_target(state, version)
    patch = {"metadata": {"resourceVersion": state.resource_version, "annotations": {RETRY_ANNOTATION: version}}}
    try:
        core.patch_namespaced_config_map(configmap, namespace, patch)
    except ApiException as error:
        raise RetryRefused(f"could not annotate {namespace}/{configmap}: {error.status} {error.reason}") from error
    return version


def main(argv: list[str] | None = None) -> int:
    """Parse, find the environment's record through its overlay, request the retry."""
    parser = argparse.ArgumentParser(prog="python -m serving.rollout.retry", description=__doc__)
    parser.add_argument("--environment", required=True, help="the overlay's name (staging, prod)")
    parser.add_argument(
        "--version", help="the rolled-back version to retry (default: the one held back as a copy, else the last one)"
    )
    parser.add_argument("--context", help="kubeconfig context of the environment's cluster (default: current)")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the GitOps repository (default: here)")
    args = parser.parse_args(argv)
    known = overlay.known_environments(args.repo)
    if args.environment not in known:
        print(f"retry: unknown environment {args.environment!r} (known: {', '.join(known) or 'none'})", file=sys.stderr)
        return 2
    try:
        rendered = overlay.render(find_tool("kubectl"), overlay.overlay_dir(args.repo, args.environment))
        where = coordinates(rendered)
        version = request_retry(kubeconfig_client(args.context), where.namespace, where.state_configmap, args.version)
    except (RetryRefused, overlay.OverlayError, ToolMissingError, KeyError) as error:
        print(f"retry: {first_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # no kubeconfig, cluster down: one line, not a traceback
        print(f"retry: cluster unreachable: {first_line(error)}", file=sys.stderr)
        return 1
    print(f"retry of v{version} requested in {args.environment}: the controller starts one new rollout next interval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
