"""Metrics the assignment service knows: parts by assignment status and method (automatic, manual)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from smartpost_assignment.adapters.db import part_assignments

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric
    from sqlalchemy.engine import Engine


@dataclass
class AssignmentSource:
    """``smartpost_assignment_parts{status, method}``: e.g. ``assigned/auto`` vs ``needs_review``."""

    engine: Engine
    name: str = "assignments"

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(part_assignments.c.status, part_assignments.c.method, func.count()).group_by(
                    part_assignments.c.status, part_assignments.c.method
                )
            ).all()
        family = GaugeMetricFamily(
            "smartpost_assignment_parts",
            "Split parts by assignment status and method (auto = matched automatically, manual = staff)",
            labels=["status", "method"],
        )
        for status, method, count in rows:
            family.add_metric([str(status), str(method or "none")], float(count))
        return [family]
