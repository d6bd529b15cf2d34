"""The route table of an app as (method, path) pairs: tests that must cover every page compare against it."""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount, Route

# Methods a browser never chooses by itself (answered automatically for every GET).
_IMPLICIT = {"HEAD", "OPTIONS"}


def route_table(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, including included routers; mounts appear as ("MOUNT", path)."""
    found: set[tuple[str, str]] = set()
    _walk(app.routes, "", found)
    return found


def _walk(routes: list[Any], prefix: str, found: set[tuple[str, str]]) -> None:
    for route in routes:
        if isinstance(route, Mount):
            found.add(("MOUNT", prefix + route.path))
        elif isinstance(route, Route) or hasattr(route, "methods"):
            for method in sorted(set(getattr(route, "methods", None) or {"GET"}) - _IMPLICIT):
                found.add((method, prefix + route.path))
        elif hasattr(route, "original_router"):  # FastAPI >= 0.16x: an included router keeps its own routes
            context = getattr(route, "include_context", None)
            _walk(route.original_router.routes, prefix + (getattr(context, "prefix", "") or ""), found)
