"""A stand-in for docker / podman / buildah: logs each argv as one JSON line and writes the digest files.

Installed into a test's bin folder under the builder's name; `FAKE_BUILDER_LOG` is the log,
`FAKE_NO_BUILDX=1` makes `docker buildx version` fail. The digest of an image is sha256 of its first tag.
"""

import hashlib
import json
import os
import sys
from pathlib import Path


def digest_of(reference: str) -> str:
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def main() -> int:
    name, args = Path(sys.argv[0]).name, sys.argv[1:]
    with open(os.environ["FAKE_BUILDER_LOG"], "a") as log:
        log.write(json.dumps([name, *args]) + "\n")
    if args[:2] == ["buildx", "version"]:
        return 1 if os.environ.get("FAKE_NO_BUILDX") else 0
    if args[:2] == ["manifest", "rm"]:
        return 1  # no manifest list of that name yet
    if "--metadata-file" in args:
        tag = args[args.index("-t") + 1]
        Path(args[args.index("--metadata-file") + 1]).write_text(json.dumps({"containerimage.digest": digest_of(tag)}))
    if "--digestfile" in args:
        Path(args[args.index("--digestfile") + 1]).write_text(digest_of(args[-2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
