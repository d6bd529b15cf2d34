# ruff: noqa: INP001, S603 - a standalone script; it runs the repository's own Dockerfile commands
"""Run services the way their images do, without Docker, against a real local stack.

For each service: copy what the Dockerfile copies (constraints.txt, shared/, services/<name>/) into a scratch
directory, install it non-editable into a fresh virtualenv with the Dockerfile's pip command, start a local stack
(tansu Kafka, SeaweedFS S3, aiosmtpd on free loopback ports), run the Dockerfile's ``CMD`` with the image's
``ENV`` (host forced to 127.0.0.1), wait for the Dockerfile's ``HEALTHCHECK`` command to pass and ask ``/readyz``.

    .venv/bin/python deploy/smoke_without_docker.py letters splitter
    .venv/bin/python deploy/smoke_without_docker.py --all

It needs the development virtualenv (for the stack binaries) and network access to the package index for the
install. It is a manual check, not part of CI: a fresh install takes 15-40 s per service.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.topics import SERVICES

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[1]
NEEDS_OTHER_SERVICES = {"gateway"}


def _dockerfile_parts(service: str) -> tuple[int, list[str], list[str], dict[str, str]]:
    text = (REPO / "services" / service / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    port = int(re.search(r"^EXPOSE (\d+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    health = json.loads(re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    command = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    final_stage = text.rsplit("\nFROM ", 1)[1]
    env = dict(re.findall(r"(SMARTPOST_[A-Z0-9_]+)=(\S+)", final_stage))
    return port, health, command, env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _install(service: str, venv: Path, scratch: Path) -> float:
    started = time.monotonic()
    build = scratch / "build"
    build.mkdir()
    shutil.copy(REPO / "constraints.txt", build / "constraints.txt")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", "var")
    shutil.copytree(REPO / "shared", build / "shared", ignore=ignore)
    shutil.copytree(REPO / "services" / service, build / "services" / service, ignore=ignore)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-c", "constraints.txt", "./shared", f"./services/{service}"]
    result = subprocess.run(pip, cwd=build, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        noise = "WARNING: Location"  # the local index configuration's harmless warnings
        _say("\n".join(line for line in result.stderr.splitlines() if not line.startswith(noise)))
        result.check_returncode()
    return time.monotonic() - started


def smoke(service: str) -> bool:
    port, health, command, image_env = _dockerfile_parts(service)
    if not _port_free(port):
        _say(f"{service}: port {port} is in use here; stop what runs on it first")
        return False
    with tempfile.TemporaryDirectory(prefix=f"smoke-{service}-") as tmp:
        scratch = Path(tmp)
        venv = scratch / "venv"
        install_seconds = _install(service, venv, scratch)
        python = str(venv / "bin" / "python")
        stack = Stack(
            root=scratch / "stack", kafka_port=free_port(), s3_port=free_port(), smtp_port=free_port(),
            tansu_storage="memory",
        )  # fmt: skip
        stack.up()
        data = scratch / "data"
        data.mkdir()
        prefix = "SMARTPOST_" + service.upper().replace("-", "_") + "_"
        env = {
            **os.environ,
            **stack.env(),
            **image_env,
            prefix + "HTTP_HOST": "127.0.0.1",
            prefix + "DATA_DIR": str(data),
        }
        log = scratch / "service.log"
        started = time.monotonic()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [python if part == "python" else part for part in command], env=env, stdout=out, stderr=out, cwd=data
            )
        try:
            probe = [python, *health[1:]]
            healthy = _wait(lambda: subprocess.run(probe, check=False, capture_output=True).returncode == 0, 120)
            healthy_after = time.monotonic() - started
            ready = _wait(lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200, timeout=15)
            readyz = _status(f"http://127.0.0.1:{port}/readyz")
        finally:
            process.terminate()
            process.wait(15)
            stack.down()
        _say(
            f"{service}: install {install_seconds:.1f} s, HEALTHCHECK {'ok' if healthy else 'FAILED'} after "
            f"{healthy_after:.1f} s, /readyz {readyz}"
        )
        # The gateway is ready only when the letters service answers, which this smoke test does not start.
        ok = healthy and (ready or (service in NEEDS_OTHER_SERVICES and readyz == 503))
        if not ok:
            _say(log.read_text(encoding="utf-8", errors="replace")[-2000:])
        return ok


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback URL built above
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(SERVICES))
    parser.add_argument("--all", action="store_true", help="every service of smartpost_shared.topics.SERVICES")
    args = parser.parse_args()
    chosen: list[str] = list(SERVICES) if args.all else args.services
    if not chosen:
        parser.error("name services or pass --all")
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        parser.error(f"unknown services: {', '.join(unknown)}")
    results = {service: smoke(service) for service in chosen}
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
