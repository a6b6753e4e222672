"""QR codes (segno) for the terminal, the status page and the poster."""

from __future__ import annotations

import io
from functools import lru_cache

import segno


@lru_cache(maxsize=32)
def svg(text: str, *, scale: int = 8, title: str = "") -> str:
    """An inline ``<svg>`` element (no XML declaration, sized by its viewBox so CSS can
    scale it), dark modules on white with the standard 4-module quiet zone."""
    code = segno.make(text, error="m", micro=False)
    return code.svg_inline(scale=scale, border=4, dark="#000", light="#fff", omitsize=True,
                           title=title or None, svgclass="qr", lineclass=None)


def terminal(text: str, *, border: int = 2) -> str:
    """The code in Unicode half blocks: two modules per text line, one per column, so a
    URL of up to ~40 characters takes at most 33 columns. Light modules are drawn as
    blocks (terminals usually have dark backgrounds); phone scanners read it either way."""
    out = io.StringIO()
    segno.make(text, error="m", micro=False).terminal(out=out, compact=True, border=border)
    return out.getvalue()


def width(text: str, *, border: int = 2) -> int:
    """Columns :func:`terminal` needs for ``text``."""
    return segno.make(text, error="m", micro=False).symbol_size(scale=1, border=border)[0]


def _wifi_escape(value: str) -> str:
    for ch in "\\;,:\"":
        value = value.replace(ch, "\\" + ch)
    return value


def wifi_payload(ssid: str, password: str = "") -> str:
    """The ``WIFI:`` text phones' cameras offer to join (WPA/WPA2/WPA3 personal, or an
    open network without a password)."""
    if password:
        return f"WIFI:T:WPA;S:{_wifi_escape(ssid)};P:{_wifi_escape(password)};;"
    return f"WIFI:T:nopass;S:{_wifi_escape(ssid)};;"
