"""``python -m smartpost_portal_publisher`` as a process, configured only by environment variables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from smartpost_shared.devstack import free_port


@pytest.mark.real
def test_service_process_starts_from_environment_and_is_ready(stack, storage_settings, object_store, tmp_path, make_id):
    port = free_port()
    env = {
        **os.environ,
        **stack.env(),
        "SMARTPOST_S3_BUCKET": storage_settings.bucket,
        "SMARTPOST_PORTAL_PUBLISHER_HTTP_PORT": str(port),
        "SMARTPOST_PORTAL_PUBLISHER_DATA_DIR": str(tmp_path / "data"),
        "SMARTPOST_PORTAL_PUBLISHER_CONSUMER_GROUP": make_id("portal-proc"),
        "SMARTPOST_PORTAL_PUBLISHER_DOWNLOAD_LINK_SECRET": "process-test-secret",
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    }
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartpost_portal_publisher"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready is not None, log_path.read_text()
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {
            "startup": "ok", "database": "ok", "storage": "ok", "kafka": "ok", "outbox": "ok"
        }  # fmt: skip
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/portal/documents").status_code == 401
        assert (tmp_path / "data" / "portal-publisher.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too.
        assert proc.wait(timeout=20) in {0, -signal.SIGTERM}, log_path.read_text()
    assert "portal_publisher.stopped" in log_path.read_text()
