"""Model signatures: what is served is what was evaluated, registered as this very version.

A signer (`attest.py`: the register step on one machine, the signer service in a cluster) hashes every file of
a version's artifact directory (OpenSSF `model-signing`: one SHA-256 per file, in an in-toto statement), among
them `plinth-statement.json`, which names the model, the version, its runs and the gate's evidence; it signs that
manifest with an elliptic-curve private key held outside MLflow and stores the signature (a Sigstore bundle) as
`model.sig` among the files. The version's tags record the manifest's digest and the key's fingerprint. Whoever
loads a version (the model service, the rollout) checks its downloaded files against `model.sig` with the public
key before it reads any of them, then the statement's name and version: a file changed, added or removed, another
key, a signature of other files, or files signed for another version are refused.

Keys: PLINTH_SIGNING_KEY names the private key (PEM file); in a cluster only the signer service has it, a Secret
mounted in its own namespace. On one machine, when it is unset, a key pair is made once in `keys/` beside the
local SQLite store (`$PLINTH_HOME` for the default store), and that public key is the default PLINTH_VERIFY_KEY
of whoever reads that store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    import model_signing

ENV_SIGNING_KEY = "PLINTH_SIGNING_KEY"
ENV_VERIFY_KEY = "PLINTH_VERIFY_KEY"
ENV_REQUIRE_SIGNATURE = "PLINTH_REQUIRE_SIGNATURE"
SIGNATURE_FILE = "model.sig"
# What the signer states about the files it signs (name, version, runs, gate evidence); one of the signed files.
STATEMENT_FILE = "plinth-statement.json"
TAG_DIGEST = "plinth.signature.digest"
TAG_KEY = "plinth.signature.key"
KEY_DIR = "keys"
PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub.pem"
# What checking a version's files can end in (the `result` label of plinth_model_verification); the model
# service also refuses, before loading, files that are a pickle where pickles are not allowed (`predictor.py`),
# and the service and the rollout refuse a model whose loader module is not allow-listed (`loaders.py`).
VERIFIED, UNVERIFIED, FAILED, PICKLE_REFUSED = "verified", "unverified", "failed", "pickle_refused"
LOADER_REFUSED = "loader_refused"
RESULTS = (VERIFIED, UNVERIFIED, FAILED, PICKLE_REFUSED, LOADER_REFUSED)
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


class SigningError(ValueError):
    """No usable key, or a setting that cannot be read; the message names the variable or file."""


class VerificationError(Exception):
    """The files do not match their signature; the message names the first difference, or the signature."""


@dataclass(frozen=True)
class Signed:
    """A signed model directory: the digest of its manifest and the fingerprint of the signing key."""

    digest: str
    key: str

    def tags(self) -> dict[str, str]:
        """Return the version tags that bind the version to this signature."""
        return {TAG_DIGEST: self.digest, TAG_KEY: self.key}


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one version's files before loading them, as one line for a log."""

    result: str
    message: str

    @property
    def refused(self) -> bool:
        """Return True when the version must not be loaded."""
        return self.result in (FAILED, PICKLE_REFUSED, LOADER_REFUSED)


NOT_CHECKED = Verdict(UNVERIFIED, "its files were not checked")


def local_key_dir(store_uri: str) -> Path | None:
    """Return where this machine keeps the key pair of a local SQLite store (None for any other store)."""
    if urlparse(store_uri).scheme != "sqlite":
        return None
    return Path(store_uri.removeprefix("sqlite:///")).parent / KEY_DIR


def key_id(public_pem: bytes) -> str:
    """Return a public key's fingerprint as `model-signing` records it in a bundle (SHA-256 of the PEM)."""
    return f"sha256:{hashlib.sha256(public_pem).hexdigest()}"


def _public_pem(private_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _make_local_key(directory: Path) -> bool:
    """Create the key pair in `directory` unless it is there; return whether this call made the private key.

    The private key appears complete or not at all (linked into place from a private temporary file), so
    two steps racing make one key; the public key is derived from whichever private key won.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private, public = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    created = False
    if not private.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        handle, staging = tempfile.mkstemp(dir=directory, prefix=".key-")
        try:
            with os.fdopen(handle, "wb") as sink:  # mkstemp makes it readable by its owner only
                sink.write(pem)
            os.link(staging, private)
            created = True
        except FileExistsError:  # another step linked its key first: that one is the key
            created = False
        finally:
            os.unlink(staging)
    if not public.is_file():
        public.write_bytes(_public_pem(private.read_bytes()))
    return created


def signing_key(store_uri: str, env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """Return the private key to sign with, and whether it was just made.

    Only a signer holds one (`components/common/attest.py`): the register step on one machine, or the signer
    service in its own namespace, never a pipeline step in a cluster.

    Raises:
        SigningError: PLINTH_SIGNING_KEY names no file, or it is unset and the store is not a local one.
    """
    env = os.environ if env is None else env
    configured = env.get(ENV_SIGNING_KEY, "").strip()
    if configured:
        if not Path(configured).is_file():
            raise SigningError(f"{ENV_SIGNING_KEY}={configured} is not a file")
        return Path(configured), False
    directory = local_key_dir(store_uri)
    if directory is None:
        raise SigningError(
            f"no signing key: set {ENV_SIGNING_KEY} (a PEM file) to an elliptic-curve private key; a key is made "
            "on its own only for a local SQLite store"
        )
    created = _make_local_key(directory)
    return directory / PRIVATE_KEY_FILE, created


def verify_key(store_uri: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Return the public key to verify with: PLINTH_VERIFY_KEY, else the local store's, else None.

    Raises:
        SigningError: PLINTH_VERIFY_KEY names no file.
    """
    env = os.environ if env is None else env
    configured = env.get(ENV_VERIFY_KEY, "").strip()
    if configured:
        if not Path(configured).is_file():
            raise SigningError(f"{ENV_VERIFY_KEY}={configured} is not a file")
        return Path(configured)
    directory = local_key_dir(store_uri)
    local = directory / PUBLIC_KEY_FILE if directory else None
    return local if local is not None and local.is_file() else None


def signature_required(env: Mapping[str, str] | None = None) -> bool:
    """Return PLINTH_REQUIRE_SIGNATURE (default false: one machine serves anyone's models, with a warning).

    Raises:
        SigningError: the value is not a boolean word.
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_REQUIRE_SIGNATURE, "").strip().lower()
    if raw not in TRUE_WORDS + FALSE_WORDS:
        raise SigningError(f"{ENV_REQUIRE_SIGNATURE}={raw!r} must be true or false")
    return raw in TRUE_WORDS


def _statement(signature: Path) -> dict:
    """Return the in-toto statement a bundle signs (read, not verified: verify first)."""
    bundle = json.loads(signature.read_text())
    return dict(json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"])))


def _hashing() -> model_signing.hashing.Config:
    """The manifest's hashing: every file but the signature itself."""
    import model_signing

    return model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE])


def manifest_digest(model_dir: Path) -> str:
    """Return the digest `sign` would sign for `model_dir` now, without signing.

    The training step records it for the files it logged; the register step refuses files whose digest has
    changed since, so nobody with edit rights on the experiment can swap them between training and the signature.
    """
    root = hashlib.sha256()  # what model-signing's in-toto payload takes as the subject: the files' digests in order
    for descriptor in _hashing().hash(model_dir).resource_descriptors():
        root.update(descriptor.digest.digest_value)
    return f"sha256:{root.hexdigest()}"


def sign(model_dir: Path, private_key: Path) -> Signed:
    """Hash every file of `model_dir` (but a previous signature), sign the manifest, write `model.sig` into it."""
    import model_signing

    hashing = _hashing()
    signature = model_dir / SIGNATURE_FILE
    signature.unlink(missing_ok=True)
    signer = model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key)
    signer.set_hashing_config(hashing).sign(model_dir, signature)
    digest = _statement(signature)["subject"][0]["digest"]["sha256"]
    return Signed(f"sha256:{digest}", key_id(_public_pem(private_key.read_bytes())))


def _ignored(name: str, ignored: list[str]) -> bool:
    parts = Path(name).parts
    return any(Path(*parts[: depth + 1]).as_posix() in ignored for depth in range(len(parts)))


def first_difference(model_dir: Path, signature: Path) -> str:
    """Return the first file (by name) whose bytes differ from what `signature` lists, added or missing."""
    statement = _statement(signature)
    ignored = [str(path) for path in statement["predicate"]["serialization"].get("ignore_paths", [])]
    signed = {item["name"]: item["digest"] for item in statement["predicate"]["resources"]}
    present = {
        path.relative_to(model_dir).as_posix(): path
        for path in model_dir.rglob("*")
        if path.is_file() and not _ignored(path.relative_to(model_dir).as_posix(), ignored)
    }
    for name in sorted(set(signed) | set(present)):
        if name not in present:
            return f"{name} is missing"
        if name not in signed:
            return f"{name} is not in the signature"
        if hashlib.sha256(present[name].read_bytes()).hexdigest() != signed[name]:
            return f"{name} differs from its signed digest"
    return "the files differ from the signature"


def verify(model_dir: Path, public_key: Path, digest: str | None) -> None:
    """Check `model_dir` against its `model.sig`, signed by `public_key`'s key over the manifest `digest`.

    `digest` is the version's tag; None when the tag is gone, and then the bundle alone decides.

    Raises:
        VerificationError: no signature, a signature by another key or over other files, or a file that
            differs (the first one is named).
    """
    import model_signing

    signature = model_dir / SIGNATURE_FILE
    if not signature.is_file():
        raise VerificationError(f"signature file {SIGNATURE_FILE} is missing")
    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(model_dir, signature)
    except ValueError as error:
        if str(error).startswith("Signature mismatch"):  # the bundle verified; the files do not match it
            raise VerificationError(first_difference(model_dir, signature)) from error
        raise VerificationError(f"signature invalid ({str(error).strip().splitlines()[0][:160]})") from error
    except Exception as error:  # a bundle that cannot be read or whose signature does not verify
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise VerificationError(f"signature invalid ({detail})") from error
    signed = f"sha256:{_statement(signature)['subject'][0]['digest']['sha256']}"
    if digest is not None and signed != digest:
        raise VerificationError(f"signature is over other files ({signed}) than the version's ({digest})")


def bound_to(model_dir: Path, name: str, version: str) -> None:
    """Check that the verified files' statement names this version: signed files copied to another are refused.

    Raises:
        VerificationError: no statement among the signed files, or one for another name or version.
    """
    path = model_dir / STATEMENT_FILE
    if not path.is_file():
        raise VerificationError(f"the signed files carry no {STATEMENT_FILE}: the signature binds no version")
    try:
        statement = json.loads(path.read_text())
        signed_for = (str(statement["name"]), str(statement["version"]))
    except (ValueError, KeyError, TypeError) as error:
        raise VerificationError(f"{STATEMENT_FILE} cannot be read ({type(error).__name__})") from error
    if signed_for != (name, str(version)):
        raise VerificationError(f"signed for {signed_for[0]} v{signed_for[1]}, not {name} v{version}")


def check(
    model_dir: Path, tags: Mapping[str, str], public_key: Path | None, required: bool, name: str, version: str
) -> Verdict:
    """Decide whether the files of version `version` of `name` may be loaded; reads none of them but to hash.

    A version is signed when its tags carry the digest the signer recorded OR its files carry `model.sig`:
    removing the tag does not make tampered files "unverified". Signed files must verify with the key and
    their statement must name this very version. An unsigned version (any model registered another way,
    e.g. from a notebook) is refused when a signature is required and allowed, unverified, otherwise; so is a
    signed one when there is no public key to check it with.
    """
    what = f"{name} v{version}"
    digest = tags.get(TAG_DIGEST) or None
    if digest is None and not (model_dir / SIGNATURE_FILE).is_file():
        if required:
            return Verdict(FAILED, f"{what} refused: it is not signed and {ENV_REQUIRE_SIGNATURE}=true")
        return Verdict(UNVERIFIED, f"{what} is not signed: its files are loaded unverified")
    if public_key is None:
        if required:
            return Verdict(FAILED, f"{what} refused: no public key to verify it ({ENV_VERIFY_KEY} is unset)")
        return Verdict(UNVERIFIED, f"{what} is signed but {ENV_VERIFY_KEY} is unset: its files are loaded unverified")
    try:
        verify(model_dir, public_key, digest)
        bound_to(model_dir, name, version)
    except VerificationError as error:
        return Verdict(FAILED, f"{what} refused: {error}")
    return Verdict(VERIFIED, f"{what} verified against its signature (key {tags.get(TAG_KEY, 'unrecorded')})")
