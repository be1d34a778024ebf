import os
import stat
from pathlib import Path

import pytest

from components.common import signing

STORE = "sqlite:///{root}/mlflow.db"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """This machine's key pair of a store in tmp_path (made by the first call)."""
    private, created = signing.signing_key(STORE.format(root=tmp_path), env={})
    assert created
    return private, private.with_name(signing.PUBLIC_KEY_FILE)


def model_dir(root: Path) -> Path:
    files = root / "model"
    (files / "sub").mkdir(parents=True)
    (files / "MLmodel").write_text("flavors: {}\n")
    (files / "model.pkl").write_bytes(bytes(range(256)) * 4)
    (files / "sub" / "extra.json").write_text("{}")
    (files / signing.STATEMENT_FILE).write_text('{"name": "m", "version": "1"}')
    return files


def signed_model(root: Path, private: Path) -> tuple[Path, dict[str, str]]:
    files = model_dir(root)
    return files, signing.sign(files, private).tags()


def test_local_key_is_made_once_beside_the_store_and_readable_by_its_owner_only(tmp_path, keys):
    private, public = keys
    assert private == tmp_path / "keys" / signing.PRIVATE_KEY_FILE
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again, created = signing.signing_key(STORE.format(root=tmp_path), env={})
    assert (again, created) == (private, False)
    assert signing.verify_key(STORE.format(root=tmp_path), env={}) == public


def test_a_configured_key_wins_and_a_server_store_needs_one(tmp_path, keys):
    private, public = keys
    env = {signing.ENV_SIGNING_KEY: str(private), signing.ENV_VERIFY_KEY: str(public)}
    assert signing.signing_key("http://mlflow:5000", env) == (private, False)
    assert signing.verify_key("http://mlflow:5000", env) == public
    with pytest.raises(signing.SigningError, match=r"set PLINTH_SIGNING_KEY \(a PEM file\)"):
        signing.signing_key("http://mlflow:5000", env={})
    assert signing.verify_key("http://mlflow:5000", env={}) is None
    with pytest.raises(signing.SigningError, match="PLINTH_VERIFY_KEY=/nope is not a file"):
        signing.verify_key("http://mlflow:5000", {signing.ENV_VERIFY_KEY: "/nope"})


@pytest.mark.parametrize(("raw", "required"), [("", False), ("false", False), ("TRUE", True), ("1", True)])
def test_require_signature_reads_boolean_words(raw, required):
    assert signing.signature_required({signing.ENV_REQUIRE_SIGNATURE: raw}) is required


def test_require_signature_refuses_other_words():
    with pytest.raises(signing.SigningError, match="PLINTH_REQUIRE_SIGNATURE='maybe'"):
        signing.signature_required({signing.ENV_REQUIRE_SIGNATURE: "maybe"})


def test_signed_files_verify_and_the_tags_name_digest_and_key(tmp_path, keys):
    files, tags = signed_model(tmp_path, keys[0])
    assert tags[signing.TAG_DIGEST].startswith("sha256:")
    assert tags[signing.TAG_KEY] == signing.key_id(keys[1].read_bytes())
    verdict = signing.check(files, tags, keys[1], True, "m", "1")
    assert verdict.result == signing.VERIFIED
    # Signing again (the same files registered twice) gives the same digest.
    assert signing.sign(files, keys[0]).tags() == tags


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda files: flip_one_byte(files / "model.pkl"), "model.pkl differs from its signed digest"),
        (lambda files: (files / "a.py").write_text("import os"), "a.py is not in the signature"),
        (lambda files: (files / "sub" / "extra.json").unlink(), "sub/extra.json is missing"),
        (lambda files: (files / signing.SIGNATURE_FILE).unlink(), "signature file model.sig is missing"),
        (lambda files: (files / signing.SIGNATURE_FILE).write_text("{}"), "signature invalid"),
    ],
)
def test_tampered_files_are_refused_naming_the_first_difference(tmp_path, keys, tamper, reason):
    files, tags = signed_model(tmp_path, keys[0])
    tamper(files)
    verdict = signing.check(files, tags, keys[1], False, "m", "1")
    assert verdict.refused
    assert verdict.message.startswith(f"m v1 refused: {reason}")


def test_another_key_is_refused(tmp_path, keys):
    files, tags = signed_model(tmp_path, keys[0])
    other, _ = signing.signing_key(STORE.format(root=tmp_path / "other"), env={})
    verdict = signing.check(files, tags, other.with_name(signing.PUBLIC_KEY_FILE), False, "m", "1")
    assert verdict.refused
    assert "signature invalid (Key mismatch" in verdict.message


def test_another_models_files_and_signature_are_refused(tmp_path, keys):
    """Replay: the files and model.sig of another signed model, put where this version's files were."""
    files, tags = signed_model(tmp_path, keys[0])
    flip_one_byte(files / "model.pkl")
    signing.sign(files, keys[0])
    verdict = signing.check(files, tags, keys[1], False, "m", "1")
    assert verdict.refused
    assert "signature is over other files" in verdict.message


def test_unsigned_versions_and_missing_keys_follow_the_requirement(tmp_path, keys):
    files, tags = signed_model(tmp_path, keys[0])
    plain = model_dir(tmp_path / "plain")  # no model.sig and no digest tag: registered some other way
    assert signing.check(plain, {}, keys[1], True, "m", "1").refused
    unsigned = signing.check(plain, {}, keys[1], False, "m", "1")
    assert (unsigned.result, unsigned.message) == (
        signing.UNVERIFIED,
        "m v1 is not signed: its files are loaded unverified",
    )
    assert signing.check(files, tags, None, True, "m", "1").refused
    assert signing.check(files, tags, None, False, "m", "1").result == signing.UNVERIFIED


def test_the_manifest_digest_is_what_gets_signed_and_moves_with_any_byte(tmp_path, keys):
    private, _ = keys
    files = model_dir(tmp_path)
    before = signing.manifest_digest(files)
    assert signing.sign(files, private).digest == before
    assert signing.manifest_digest(files) == before  # the signature file itself is not part of it
    flip_one_byte(files / "model.pkl")
    assert signing.manifest_digest(files) != before
