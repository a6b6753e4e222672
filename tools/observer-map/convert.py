"""Convert Natural Earth country outlines (world-atlas TopoJSON) into the observer console's
compact boundary file, once, at development time. Run from this folder:

    npm ci && python3 convert.py

It writes ../../src/samizdat/observer/static/countries.json: for each country its name and
rings, each ring a flat list of delta-encoded integers (longitude and latitude times 100,
i.e. about 1 km). The console (observer/web.py) decodes it and draws inline SVG, so the map
needs no tiles and no network. Natural Earth is public domain; world-atlas is ISC.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "node_modules" / "world-atlas" / "countries-50m.json"
OUT = HERE.parents[1] / "src" / "samizdat" / "observer" / "static" / "countries.json"
SCALE = 100  # 0.01 degree


def decode_arcs(topo: dict) -> list[list[tuple[float, float]]]:
    (kx, ky), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * kx + tx, y * ky + ty))
        arcs.append(pts)
    return arcs


def ring(arcs: list[list[tuple[float, float]]], indexes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in indexes:
        pts = arcs[i] if i >= 0 else arcs[~i][::-1]
        for k, (lon, lat) in enumerate(pts):
            if k == 0 and out:
                continue  # arcs share their end points
            q = (round(lon * SCALE), round(lat * SCALE))
            if not out or out[-1] != q:
                out.append(q)
    return out


def encode(points: list[tuple[int, int]]) -> list[int]:
    flat, px, py = [], 0, 0
    for x, y in points:
        flat += [x - px, y - py]
        px, py = x, y
    return flat


def main() -> None:
    topo = json.loads(SOURCE.read_text())
    arcs = decode_arcs(topo)
    countries = []
    for geom in topo["objects"]["countries"]["geometries"]:
        polys = {"Polygon": [geom.get("arcs", [])],
                 "MultiPolygon": geom.get("arcs", [])}.get(geom["type"], [])
        rings = [encode(r) for poly in polys for idx in poly if len(r := ring(arcs, idx)) >= 3]
        if rings:
            countries.append({"name": geom.get("properties", {}).get("name", ""),
                              "rings": rings})
    doc = {
        "source": "Natural Earth 1:50m admin-0 countries (public domain, naturalearthdata.com) "
                  "via the npm package world-atlas 2.0.2 (ISC licence, Copyright 2013-2019 "
                  "Michael Bostock), converted by tools/observer-map/convert.py",
        "scale": SCALE,
        "encoding": "each ring: flat [dx, dy, ...] deltas of (longitude, latitude) * scale",
        "countries": countries,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(countries)} countries)")


if __name__ == "__main__":
    main()
