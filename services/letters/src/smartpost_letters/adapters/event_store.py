"""PostgreSQL event store that can be built while the database is down (issue #15: start-up survives outages).

The eventsourcing library's PostgreSQL recorders look up their composite types in the database as soon as they are
constructed, so building the letters application needed the database. :class:`DeferredPostgresFactory` builds the
same recorders without connecting; :func:`open_deferred` (called by the service's background start-up once the
database answers) creates the tables if missing and registers the types, exactly as the library does on a fresh
database (construct, then ``create_table``, which registers the types).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresFactory


class DeferredPostgresDatastore(PostgresDatastore):
    """Skips the type look-up until :meth:`open` (the pool itself connects lazily already)."""

    deferred: bool = True

    def register_type_adapters(self) -> None:
        if not self.deferred:
            super().register_type_adapters()

    def open(self) -> None:
        self.deferred = False


class DeferredPostgresFactory(PostgresFactory):
    """``PERSISTENCE_MODULE=smartpost_letters.adapters.event_store:DeferredPostgresFactory``; never connects itself."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # Same object and state, one overridden method (the datastore is built inside the library's __init__).
        self.datastore.__class__ = DeferredPostgresDatastore


FACTORY_TOPIC = f"{__name__}:{DeferredPostgresFactory.__name__}"


def open_deferred(factory: object) -> None:
    """Let a deferred datastore look up its types from now on (no-op for other factories)."""
    datastore = getattr(factory, "datastore", None)
    if isinstance(datastore, DeferredPostgresDatastore):
        datastore.open()
