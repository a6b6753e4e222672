"""Geohash encode/decode/neighbours, cell boxes and great-circle distance. Pure code."""

from __future__ import annotations

import math
import re

ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
GEOHASH = re.compile(f"[{ALPHABET}]{{1,12}}")
EARTH_RADIUS_KM = 6371.0088


def is_geohash(text: object) -> bool:
    return isinstance(text, str) and GEOHASH.fullmatch(text) is not None


def encode(lat: float, lon: float, precision: int = 5) -> str:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not 1 <= precision <= 12:
        raise ValueError("latitude in [-90, 90], longitude in [-180, 180], precision 1..12")
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    out, bits, ch, even = [], 0, 0, True
    while len(out) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            if lon >= mid:
                ch, lon_lo = ch * 2 + 1, mid
            else:
                ch, lon_hi = ch * 2, mid
        else:
            mid = (lat_lo + lat_hi) / 2
            if lat >= mid:
                ch, lat_lo = ch * 2 + 1, mid
            else:
                ch, lat_hi = ch * 2, mid
        even = not even
        bits += 1
        if bits == 5:
            out.append(ALPHABET[ch])
            bits, ch = 0, 0
    return "".join(out)


def bbox(gh: str) -> tuple[float, float, float, float]:
    """(south, west, north, east) of the cell; raises ValueError if not a geohash."""
    if not is_geohash(gh):
        raise ValueError(f"{gh!r} is not a geohash")
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    even = True
    for c in gh:
        v = _INDEX[c]
        for shift in range(4, -1, -1):
            bit = (v >> shift) & 1
            if even:
                mid = (lon_lo + lon_hi) / 2
                lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
            else:
                mid = (lat_lo + lat_hi) / 2
                lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
            even = not even
    return lat_lo, lon_lo, lat_hi, lon_hi


def decode(gh: str) -> tuple[float, float]:
    """The centre (lat, lon) of the cell."""
    s, w, n, e = bbox(gh)
    return (s + n) / 2, (w + e) / 2


def neighbours(gh: str) -> list[str]:
    """The 8 cells around ``gh`` at the same precision (fewer at the poles), clockwise
    from north."""
    s, w, n, e = bbox(gh)
    dlat, dlon = n - s, e - w
    lat, lon = (s + n) / 2, (w + e) / 2
    out = []
    for dy, dx in ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)):
        la = lat + dy * dlat
        if not -90 < la < 90:
            continue
        lo = (lon + dx * dlon + 180) % 360 - 180
        cell = encode(la, lo, len(gh))
        if cell != gh and cell not in out:
            out.append(cell)
    return out


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine great-circle distance between two (lat, lon) points."""
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (math.sin((la2 - la1) / 2) ** 2
         + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def cell_distance_km(a: str, b: str) -> float:
    """The smallest distance between any point of cell ``a`` and any point of cell ``b``
    (0 if they overlap): a coarse claim is not contradicted by a place inside it."""
    s1, w1, n1, e1 = bbox(a)
    s2, w2, n2, e2 = bbox(b)
    lat1 = min(max((s2 + n2) / 2, s1), n1)
    lon1 = min(max((w2 + e2) / 2, w1), e1)
    lat2 = min(max(lat1, s2), n2)
    lon2 = min(max(lon1, w2), e2)
    lat1 = min(max(lat2, s1), n1)
    lon1 = min(max(lon2, w1), e1)
    return distance_km((lat1, lon1), (lat2, lon2))
