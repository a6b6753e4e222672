"""Clusters of reports by place and time, and the timeline. Pure code.

A cluster is every report whose claimed place falls in one geohash cell (``precision``
characters, 5 by default: about 4.9 km x 4.9 km) and whose claimed time falls in one
window (``window`` seconds, 1 h by default, aligned to the epoch). Its weight is the
number of *independent keys* that reported in it, not the number of reports. Reports
with a coarser place than ``precision`` cluster in their own coarser cell; reports with
no place are left out of clusters (and counted under region "" in the timeline).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

DEFAULT_PRECISION = 5
DEFAULT_WINDOW = 3600


class Point(NamedTuple):
    """What clustering needs of a report."""

    id: str
    pubkey: str
    time: int  # the claimed time (observed_at, else created_at)
    geohash: str


@dataclass(frozen=True, slots=True)
class Cluster:
    cell: str
    start: int
    end: int
    reports: tuple[str, ...]  # ids, sorted
    keys: int  # distinct authors

    @property
    def id(self) -> str:
        """A stable name: ``CELL@START`` (also what ``observe export`` accepts)."""
        return f"{self.cell}@{self.start}"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "cell": self.cell, "window": [self.start, self.end],
                "reports": len(self.reports), "keys": self.keys,
                "report_ids": list(self.reports)}


def parse_cluster_id(text: str) -> tuple[str, int] | None:
    cell, sep, start = text.partition("@")
    if not sep or not cell or not start.isdigit():
        return None
    return cell, int(start)


def cluster_key(p: Point, precision: int, window: int) -> tuple[str, int] | None:
    if not p.geohash:
        return None
    return p.geohash[:precision], p.time - p.time % window


def clusters(points: Iterable[Point], precision: int = DEFAULT_PRECISION,
             window: int = DEFAULT_WINDOW, min_keys: int = 1) -> list[Cluster]:
    """Clusters with at least ``min_keys`` independent keys, the most keys first (then
    the most reports, then the latest, then by cell)."""
    if precision < 1 or window < 1:
        raise ValueError("precision and window must be positive")
    ids: dict[tuple[str, int], list[str]] = {}
    keys: dict[tuple[str, int], set[str]] = {}
    for p in points:
        k = cluster_key(p, precision, window)
        if k is None:
            continue
        if k in ids:
            ids[k].append(p.id)
            keys[k].add(p.pubkey)
        else:
            ids[k] = [p.id]
            keys[k] = {p.pubkey}
    out = [Cluster(cell, start, start + window, tuple(sorted(ids[(cell, start)])),
                   len(keys[(cell, start)]))
           for (cell, start) in ids if len(keys[(cell, start)]) >= min_keys]
    out.sort(key=lambda c: (-c.keys, -len(c.reports), -c.start, c.cell))
    return out


def members(points: Iterable[Point], cell: str, start: int,
            window: int = DEFAULT_WINDOW, precision: int = DEFAULT_PRECISION) -> list[Point]:
    """The reports of cluster ``cell@start`` as :func:`clusters` with these
    ``precision`` and ``window`` made it."""
    return [p for p in points
            if cluster_key(p, precision, window) == (cell, start)]


@dataclass(frozen=True, slots=True)
class TimelineRow:
    region: str
    hour: int  # start of the hour (unix seconds)
    reports: int
    keys: int

    def as_json(self) -> dict[str, Any]:
        return {"region": self.region, "hour": self.hour, "reports": self.reports,
                "keys": self.keys}


def timeline(points: Iterable[Point], region_precision: int = 4,
             bucket: int = 3600) -> list[TimelineRow]:
    """Reports (and distinct keys) per hour per region (geohash prefix), by hour then
    region."""
    n: dict[tuple[str, int], int] = {}
    k: dict[tuple[str, int], set[str]] = {}
    for p in points:
        key = (p.geohash[:region_precision], p.time - p.time % bucket)
        n[key] = n.get(key, 0) + 1
        k.setdefault(key, set()).add(p.pubkey)
    return [TimelineRow(r, h, n[(r, h)], len(k[(r, h)]))
            for (r, h) in sorted(n, key=lambda x: (x[1], x[0]))]
