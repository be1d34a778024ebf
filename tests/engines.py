"""Real storage engines for tests, on 127.0.0.1: an S3 API server (moto) and a throwaway PostgreSQL cluster.

Both start with the project's one process helper (`serving/embedded/processes.py`) and are polled until they
answer, never assumed ready after a sleep. Fixtures (`s3_server`, `s3_env`, `postgres`) are session-scoped:
import them into a conftest (`from tests.engines import postgres, s3_env, s3_server  # noqa: F401`).
Where an engine is missing (moto not installed, no PostgreSQL binaries) a test skips saying so, and fails in
CI (`CI=true`), where `.ci/install-system-tools.sh` and the dev extra install both.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serving.embedded.processes import ManagedProcess, ProcessError, bin_path, free_port

POSTGRES_VERSIONS = ("17", "16", "15")
READY_TIMEOUT_S = 60.0
REGION = "us-east-1"


def missing(reason: str) -> None:
    """Skip the test for a missing engine, or fail it in CI, where every engine must be there."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: engines are required)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class S3Credentials:
    """What a client needs to reach the test S3 server, as the standard AWS environment variables give it."""

    endpoint: str
    access_key: str = "plinth-test-key"
    secret_key: str = "plinth-test-secret"
    region: str = REGION

    def env(self) -> dict[str, str]:
        """Return the AWS (and MLflow) environment variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


class MotoS3Server:
    """`moto_server` (a real HTTP S3 API) in a child process on a free port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.credentials = S3Credentials(endpoint=f"http://127.0.0.1:{self.port}")
        self.process: ManagedProcess | None = None

    def start(self) -> MotoS3Server:
        command = [bin_path("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        ready = f"{self.credentials.endpoint}/moto-api/"
        server = ManagedProcess("moto_server", command, self.root / "moto.log", ready_url=ready)
        self.process = server.start().wait_ready(READY_TIMEOUT_S)
        return self

    def client(self) -> Any:
        """Return a boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.credentials.endpoint,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            region_name=self.credentials.region,
        )

    def create_bucket(self, name: str) -> str:
        """Create a bucket (a fresh name per test keeps tests apart); return its s3:// URL."""
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None


def postgres_bin() -> Path | None:
    """Return the folder of the PostgreSQL server binaries (Debian's layout, else the PATH), or None."""
    for version in POSTGRES_VERSIONS:
        folder = Path(f"/usr/lib/postgresql/{version}/bin")
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def run_as_prefix() -> list[str]:
    """Return the command prefix that runs PostgreSQL as a non-root user (it refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    # runuser lives in /usr/sbin, which a bare shell's PATH (env -i PATH=/usr/bin:/bin) may leave out.
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise ProcessError("running as root and runuser (util-linux) is missing: PostgreSQL refuses to run as root")
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            import pwd

            pwd.getpwnam(user)
            return [runuser, "-u", user, "--"]
    raise ProcessError("running as root and no postgres or nobody user to run PostgreSQL as")


class PostgresServer:
    """A throwaway PostgreSQL cluster: initdb in a temp folder, password auth, 127.0.0.1 on a free port."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="plinth-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "plinth"
        self.password = secrets.token_urlsafe(16)
        self.process: ManagedProcess | None = None
        self.prefix = run_as_prefix()

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ProcessError(f"{argv[0]} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> PostgresServer:
        password_file = self.root / "password"
        password_file.write_text(self.password)
        if self.prefix:  # the server's user must own its folder
            subprocess.run(["chown", "-R", self.prefix[2], str(self.root)], check=True)
        initdb = str(self.binaries / "initdb")
        self._run(initdb, "-D", str(self.data), "-U", self.user, f"--pwfile={password_file}", "-A", "scram-sha-256")
        password_file.unlink()
        command = [
            *self.prefix, str(self.binaries / "postgres"), "-D", str(self.data),
            "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.root), "-c", "fsync=off",
        ]  # fmt: skip
        self.process = ManagedProcess("postgres", command, self.root / "postgres.log").start()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll until a real login succeeds; fail fast if the server exits."""
        import psycopg

        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise ProcessError(f"postgres exited before it was ready:\n{self.process.log_tail()}")
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise ProcessError(f"postgres not ready on 127.0.0.1:{self.port} after {timeout:.0f}s")

    def dsn(self, database: str) -> str:
        """Return the postgresql:// URI of `database` (with this cluster's user and password)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database (a fresh name per test keeps tests apart); return its URI."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, not waited for), then remove the cluster."""
        if self.process is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
            self.process.stop()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    """A real S3 API server (moto) on 127.0.0.1, for the whole session."""
    if shutil.which(bin_path("moto_server")) is None:
        missing("moto_server not found: install the dev extra (moto[server])")
    server = MotoS3Server(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch) -> S3Credentials:
    """Point this test's process (and the children it starts) at the S3 server through the AWS variables."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.credentials.env().items():
        monkeypatch.setenv(name, value)
    return s3_server.credentials


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, for the whole session."""
    binaries = postgres_bin()
    if binaries is None:
        missing("PostgreSQL server binaries (initdb) not found: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg not installed: install the dev extra (psycopg[binary])")
    assert binaries is not None
    server = PostgresServer(binaries)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()
