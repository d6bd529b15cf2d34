"""Run the whole of SmartPost locally with embedded defaults: the real stack plus every service as a process.

    python -m smartpost_shared.localrun up     # stack (tansu, SeaweedFS, aiosmtpd) + all services, wait healthy
    python -m smartpost_shared.localrun down   # stop services and stack (by PID)

Used by ``scripts/run.sh`` (with the demo) and by the end-to-end tests (with free ports and a temp folder).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from smartpost_shared.devstack import PRODUCERS, Stack, free_port, redacted, stop_pid

# service name -> (python module, default port)
SERVICES: dict[str, tuple[str, int]] = {
    "letters": ("smartpost_letters", 8101),
    "splitter": ("smartpost_splitter", 8102),
    "assignment": ("smartpost_assignment", 8103),
    "portal-publisher": ("smartpost_portal_publisher", 8104),
    "print-dispatch": ("smartpost_print_dispatch", 8105),
    "notifier": ("smartpost_notifier", 8106),
    "gateway": ("smartpost_gateway", 8100),
}
FAKE_PROVIDER = ("smartpost_print_dispatch.fake_provider", 8107)
MALLOC_ARENA_MAX = "2"  # the images' value (services/*/Dockerfile); see LocalSystem.env_for


def env_prefix(service: str) -> str:
    return "SMARTPOST_" + service.upper().replace("-", "_") + "_"


def installed(service: str) -> bool:
    module = SERVICES[service][0]
    return importlib.util.find_spec(module) is not None


@dataclass
class LocalSystem:
    """A stack and the service processes started on top of it."""

    stack: Stack
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Several systems on one broker (tests) must not share consumer groups: a tag gives each its own.
    group_tag: str | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def provider_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['fake-provider']}"

    def env_for(self, service: str) -> dict[str, str]:
        prefix = env_prefix(service)
        secrets = self.stack.secrets
        env = {
            **self.stack.env(),
            # Generated per stack (devstack.stack_secrets), never constants.
            "SMARTPOST_PORTAL_PUBLISHER_DOWNLOAD_LINK_SECRET": secrets["download_link_secret"],
            # Each service signs the events it publishes with its own producer key.
            "SMARTPOST_KAFKA_SIGNING_KEY": self.stack.producer_key(service) if service in PRODUCERS else "",
            "SMARTPOST_IDENTITY_ISSUER": "gateway" if service == "gateway" else "",
            "SMARTPOST_IDENTITY_PRIVATE_KEY": secrets["gateway_private_key"] if service == "gateway" else "",
            "SMARTPOST_FAKE_PROVIDER_API_KEY": secrets["provider_api_key"] if service == "fake-provider" else "",
            "SMARTPOST_FAKE_PROVIDER_WEBHOOK_SECRET": (
                secrets["provider_webhook_secret"] if service == "fake-provider" else ""
            ),
            "SMARTPOST_LOG_JSON": "true",
            # As in the images (services/*/Dockerfile): glibc's malloc keeps up to 8 arenas per core for the
            # threads of a service (executor and upload threads), and freed memory scattered over them is seldom
            # returned. Two arenas cost no measurable time and cut the letters service's peak by 35-64 MB at
            # 10,000 pages (README "Thousands of letters", session 9). An operator's own value wins.
            "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX),
            f"{prefix}DATA_DIR": str(self.data_dir / service),
            f"{prefix}HTTP_HOST": "127.0.0.1",
            f"{prefix}HTTP_PORT": str(self.ports[service]),
            # Service-to-service URLs for the gateway (and anyone else who needs them).
            "SMARTPOST_GATEWAY_LETTERS_URL": self.url("letters") if "letters" in self.ports else "",
            "SMARTPOST_GATEWAY_ASSIGNMENT_URL": self.url("assignment") if "assignment" in self.ports else "",
            "SMARTPOST_GATEWAY_PORTAL_URL": self.url("portal-publisher") if "portal-publisher" in self.ports else "",
            "SMARTPOST_GATEWAY_PRINT_URL": self.url("print-dispatch") if "print-dispatch" in self.ports else "",
            "SMARTPOST_GATEWAY_NOTIFIER_URL": self.url("notifier") if "notifier" in self.ports else "",
            "SMARTPOST_GATEWAY_SPLITTER_URL": self.url("splitter") if "splitter" in self.ports else "",
            "SMARTPOST_NOTIFIER_PORTAL_BASE_URL": (
                self.url("portal-publisher") + "/kundenportal" if "portal-publisher" in self.ports else ""
            ),
            "SMARTPOST_PRINT_DISPATCH_HTTP_PROVIDERS": (
                json.dumps(
                    [
                        {
                            "name": "hybridpost",
                            "base_url": self.provider_url,
                            "api_key": secrets["provider_api_key"],
                            "webhook_secret": secrets["provider_webhook_secret"],
                        }
                    ]
                )
                if "fake-provider" in self.ports
                else ""
            ),
        }
        if self.group_tag:
            tag = self.group_tag
            env |= {
                "SMARTPOST_KAFKA_GROUP_PREFIX": tag,
                "SMARTPOST_LETTERS_CONSUMER_GROUP": f"{tag}-letters",
                "SMARTPOST_SPLITTER_CONSUMER_GROUP": f"{tag}-splitter",
                "SMARTPOST_PORTAL_PUBLISHER_CONSUMER_GROUP": f"{tag}-portal-publisher",
                "SMARTPOST_PRINT_DISPATCH_CONSUMER_GROUP": f"{tag}-print-dispatch",
                "SMARTPOST_NOTIFIER_KAFKA_GROUP_ID": f"{tag}-notifier",
            }
        env.update(self.extra_env)
        return {k: v for k, v in env.items() if v != ""}

    def start(self, service: str) -> None:
        module = SERVICES[service][0] if service in SERVICES else FAKE_PROVIDER[0]
        args = [sys.executable, "-m", module]
        if service == "fake-provider":
            args += ["--port", str(self.ports[service])]
        log_path = self.stack.root / "logs" / f"{service}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        (self.data_dir / service).mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(  # noqa: S603 - our own modules
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env_for(service)},
                start_new_session=True,
            )
        self.processes[service] = proc
        (self.stack.root / "pids").mkdir(parents=True, exist_ok=True)
        (self.stack.root / "pids" / f"svc-{service}.pid").write_text(str(proc.pid))

    def wait_healthy(self, service: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        path = "/healthz"
        last = ""
        while time.monotonic() < deadline:
            proc = self.processes.get(service)
            if proc is not None and proc.poll() is not None:
                log = (self.stack.root / "logs" / f"{service}.log").read_text(errors="replace")[-3000:]
                msg = f"{service} exited with {proc.returncode}:\n{log}"
                raise RuntimeError(msg)
            try:
                response = httpx.get(f"http://127.0.0.1:{self.ports[service]}{path}", timeout=2)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        msg = f"{service} not healthy after {timeout}s: {last}"
        raise TimeoutError(msg)

    def start_all(self, services: list[str] | None = None) -> list[str]:
        names = [s for s in (services or list(SERVICES)) if installed(s)]
        for name in names:
            self.ports.setdefault(name, SERVICES[name][1])
        if installed("print-dispatch") and importlib.util.find_spec(FAKE_PROVIDER[0]) is not None:
            self.ports.setdefault("fake-provider", FAKE_PROVIDER[1])
            self.start("fake-provider")
            self.wait_healthy("fake-provider")
        for name in names:
            self.start(name)
        for name in names:
            self.wait_healthy(name)
        return names

    def stop(self, service: str, *, kill: bool = False) -> None:
        proc = self.processes.pop(service, None)
        if proc is None:
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        else:
            stop_pid(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        (self.stack.root / "pids" / f"svc-{service}.pid").unlink(missing_ok=True)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


# Local demo only: staff logins for the gateway (password "demo-passwort-1") and the demo account's name.
_DEMO_HASH = "scrypt$16384$8$1$6loY_eAGLr3-qGfQkQbdVA$HxJtp1c3fl7DjvXHGLBFIeqvXFngelNCgNKklUAuPX8"
DEMO_ENV = {
    "SMARTPOST_GATEWAY_STAFF_USERS": json.dumps(
        {
            "anna@hv-muster.de": {
                "password_hash": _DEMO_HASH,
                "account_id": "demo",
                "roles": ["prepare", "release"],
                "name": "Anna Muster",
            },
            "ben@hv-muster.de": {
                "password_hash": _DEMO_HASH,
                "account_id": "demo",
                "roles": ["release"],
                "name": "Ben Prüfer",
            },
            # Operations and data protection (dead letters, erasure and export of a contact's personal data).
            "clara@hv-muster.de": {
                "password_hash": _DEMO_HASH,
                "account_id": "demo",
                "roles": ["admin"],
                "name": "Clara Datenschutz",
            },
        }
    ),
    "SMARTPOST_GATEWAY_ACCOUNTS": json.dumps({"demo": {"name": "HV Muster", "four_eyes_release": False}}),
    "SMARTPOST_NOTIFIER_ACCOUNT_NAME": "Hausverwaltung Muster GmbH",
    "SMARTPOST_NOTIFIER_IMMEDIATE_DELAY_SECONDS": "2",
}


def free_ports_for(services: list[str]) -> dict[str, int]:
    return {name: free_port() for name in [*services, "fake-provider"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--root", default=os.environ.get("SMARTPOST_STACK_DIR", "var/stack"))
    parser.add_argument("--data", default=os.environ.get("SMARTPOST_DATA_DIR", "var/data"))
    args = parser.parse_args()
    root = Path(args.root).resolve()
    stack = Stack(root)
    system = LocalSystem(stack, Path(args.data).resolve())
    if args.command == "down":
        for pid_file in sorted((root / "pids").glob("svc-*.pid")) if (root / "pids").exists() else []:
            stop_pid(int(pid_file.read_text()))
            pid_file.unlink(missing_ok=True)
        stack.down()
        print("SmartPost stopped")  # noqa: T201
        return
    stack.up()
    system.extra_env = DEMO_ENV
    names = system.start_all()
    # Leave the service processes running: 'down' stops them by PID.
    system.processes.clear()
    print(json.dumps({"services": {n: system.url(n) for n in names}, **redacted(stack.env())}, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
