"""Issue #15 finding 3: every service starts while broker, storage and SMTP are down, and connects when they come.

The services are started first, pointing at a stack that is not running yet: each serves ``/healthz``, reports
not-ready on ``/readyz`` (naming what it waits for) and keeps connecting. Then the stack starts; every service
becomes ready without a restart, and a serial letter goes through letters -> splitter -> assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from smartpost_assignment.app import create_app as create_assignment
from smartpost_assignment.settings import Settings as AssignmentSettings
from smartpost_letters.app import create_app as create_letters
from smartpost_letters.settings import Settings as LettersSettings
from smartpost_notifier.app import create_app as create_notifier
from smartpost_notifier.settings import Settings as NotifierSettings
from smartpost_portal_publisher.app import create_app as create_portal
from smartpost_portal_publisher.settings import Settings as PortalSettings
from smartpost_print_dispatch.app import create_app as create_print
from smartpost_print_dispatch.settings import Settings as PrintSettings
from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.settings import KafkaSettings, StorageSettings
from smartpost_shared.testing.identity import caller_headers
from smartpost_splitter.app import create_app as create_splitter
from smartpost_splitter.settings import Settings as SplitterSettings

pytestmark = [pytest.mark.real]

H = caller_headers("acc-outage", "staff:anna", audience="letters", roles=["prepare"])
H_ASSIGNMENT = caller_headers("acc-outage", "staff:anna", audience="assignment")


async def _status(client: httpx.AsyncClient, path: str) -> tuple[int, Any]:
    r = await client.get(path)
    return r.status_code, r.json()


async def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


async def test_services_start_before_the_stack_and_connect_when_it_comes(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="smartpost-outage-"))
    stack = Stack(root, kafka_port=free_port(), s3_port=free_port(), smtp_port=free_port(), tansu_storage="memory")
    kafka = KafkaSettings(
        bootstrap_servers=stack.bootstrap_servers,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        group_prefix="outage",
        startup_grace_seconds=0,
    )
    storage = StorageSettings(endpoint=stack.s3_endpoint, secret_key=SecretStr(stack.s3_secret_key), bucket="smartpost")
    common: dict[str, Any] = {"kafka": kafka, "storage": storage, "log_json": False}
    apps = {
        "letters": create_letters(
            LettersSettings(data_dir=str(tmp_path / "l"), relay_poll_seconds=0.1, consumer_group="outage-l", **common)
        ),
        "splitter": create_splitter(
            SplitterSettings(text_processes=1, work_dir=str(tmp_path), consumer_group="outage-s", **common)
        ),
        "assignment": create_assignment(AssignmentSettings(data_dir=str(tmp_path / "a"), **common)),
        "portal-publisher": create_portal(PortalSettings(data_dir=str(tmp_path / "p"), **common)),
        "print-dispatch": create_print(PrintSettings(data_dir=str(tmp_path / "d"), **common)),
        "notifier": create_notifier(
            NotifierSettings(data_dir=str(tmp_path / "n"), smtp_host="127.0.0.1", smtp_port=stack.smtp_port, **common)
        ),
    }
    try:
        async with contextlib.AsyncExitStack() as exits:
            clients: dict[str, httpx.AsyncClient] = {}
            for name, app in apps.items():
                await exits.enter_async_context(app.router.lifespan_context(app))
                clients[name] = await exits.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}", timeout=30)
                )
            # Stack down: alive, not ready, and saying why.
            for name, client in clients.items():
                assert (await client.get("/healthz")).status_code == 200, name
                code, body = await _status(client, "/readyz")
                assert code == 503, (name, body)
                assert "waiting for" in str(body), (name, body)

            await asyncio.to_thread(stack.up)

            async def all_ready() -> bool:
                codes = {name: (await _status(c, "/readyz"))[0] for name, c in clients.items()}
                return all(code == 200 for code in codes.values())

            await _wait(all_ready, 120, "every service ready after the stack came up")

            # Connected for real: a letter goes through letters -> splitter -> assignment.
            letters = clients["letters"]
            pdf = tmp_path / "brief.pdf"
            write_serial_letter(pdf, demo_recipients(2, seed=3), seed=3, pages_per_letter=(1, 1))
            dt = (await letters.post("/v1/document-types", json={"name": "Briefe"}, headers=H)).json()["created_id"]
            body = {"title": "T", "document_type_id": dt, "recipient_groups": ["owners"], "scope": "cross_property"}
            lid = (await letters.post("/v1/letters", json=body, headers=H)).json()["letter_id"]
            r = await letters.post(
                f"/v1/letters/{lid}/documents",
                files={"file": ("brief.pdf", pdf.read_bytes(), "application/pdf")},
                data={"role": "split"},
                headers=H,
            )
            assert r.status_code == 201, r.text
            assert (await letters.post(f"/v1/letters/{lid}/split", headers=H)).status_code == 200

            async def in_review() -> bool:
                return (await letters.get(f"/v1/letters/{lid}", headers=H)).json()["status"] == "in_review"

            await _wait(in_review, 90, "the letter split and assigned")
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


# Every service with a database, and a route that needs it once the service is ready.
DB_SERVICES: dict[str, tuple[Any, Any, str, str]] = {
    "assignment": (create_assignment, AssignmentSettings, "/contacts", "assignment"),
    "letters": (create_letters, LettersSettings, "/v1/document-types", "letters"),
    "portal-publisher": (create_portal, PortalSettings, "/readyz", "portal-publisher"),
    "notifier": (create_notifier, NotifierSettings, "/readyz", "notifier"),
    "print-dispatch": (create_print, PrintSettings, "/readyz", "print-dispatch"),
}
# The proxy runs on the test's event loop: a service that blocks its loop with a database call hangs here for good
# (print-dispatch did, from its submission and tracking loops, until they moved their queries off the loop).


@pytest.mark.parametrize("service", sorted(DB_SERVICES))
async def test_a_service_starts_while_its_database_is_down(
    service, postgres_url, kafka_settings, storage_settings, tmp_path
) -> None:
    """PostgreSQL unreachable at start-up (a TCP proxy in front of it that is not listening yet).

    letters: its event store (eventsourcing) used to connect while the app was built; now it waits like the rest.
    """
    create, settings_class, route, audience = DB_SERVICES[service]
    port = free_port()
    host_and_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    real_host, real_port = host_and_port.split(":")
    url = postgres_url.replace(f"@{host_and_port}/", f"@127.0.0.1:{port}/")
    kafka = kafka_settings.model_copy(update={"startup_grace_seconds": 0})
    # A group of its own: the default group on the shared test broker may still have members of earlier runs.
    own_group = service in {"letters", "portal-publisher"}
    extra: dict[str, Any] = {"consumer_group": f"outage-db-{service}-{free_port()}"} if own_group else {}
    settings = settings_class(
        database_url=url, data_dir=str(tmp_path), kafka=kafka, storage=storage_settings, log_json=False, **extra
    )
    app = create(settings)

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(real_host, int(real_port))
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}") as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        code, body = await _status(client, "/readyz")
        assert code == 503, body
        assert "waiting for database" in str(body), body

        proxy = await asyncio.start_server(forward, "127.0.0.1", port)
        try:
            seen: list[Any] = []

            async def ready() -> bool:
                code, body = await _status(client, "/readyz")
                seen.append(body)
                return code == 200

            try:
                await _wait(ready, 60, f"{service} ready once the database is reachable")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last /readyz: {seen[-1] if seen else None}") from None
            headers = caller_headers("acc-outage", "staff:anna", audience=audience, roles=["prepare"])
            answer = await client.get(route, headers=headers)
            assert answer.status_code == 200, answer.text
        finally:
            proxy.close()
