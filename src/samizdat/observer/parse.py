"""Events to observer facts (docs/report-format.md). Pure: malformed input gives None,
never an exception."""

from __future__ import annotations

import re

from ..nostr.event import HEX64, Event
from ..receipts.leaves import LeafPart, parse_leaf_event
from ..receipts.receipt import RECEIPT_KIND, InvalidReceipt, parse_receipt
from .geo import is_geohash
from .model import CORROBORATE, DISPUTE, LABEL_NAMESPACE, Label, MediaClaim, ReceiptFacts, Report

REPORT_KIND = 1
LABEL_KIND = 1985
_SHA = re.compile(r"[0-9a-f]{64}")
_DIM = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})")
_TS = re.compile(r"0|[1-9][0-9]{0,11}")
MAX_TEXT = 20_000


def _imeta(tag: list) -> MediaClaim | None:
    fields: dict[str, str] = {}
    for item in tag[1:]:
        if not isinstance(item, str):
            return None
        k, sep, v = item.partition(" ")
        if sep and k not in fields:
            fields[k] = v.strip()
    x = fields.get("x", "").lower()
    sha = x if _SHA.fullmatch(x) else None
    url = fields.get("url") or None
    if sha is None and url is None:
        return None
    dim = None
    if m := _DIM.fullmatch(fields.get("dim", "")):
        dim = (int(m[1]), int(m[2]))
    size = fields.get("size", "")
    return MediaClaim(sha, fields.get("m") or None, url, dim,
                      int(size) if size.isdigit() and len(size) < 16 else None)


def report(ev: Event) -> Report | None:
    """A kind-1 event as a report; None if it is not one."""
    try:
        if ev.kind != REPORT_KIND:
            return None
        observed = None
        places: list[str] = []
        hashtags: list[str] = []
        media: list[MediaClaim] = []
        for t in ev.tags:
            if not isinstance(t, list) or len(t) < 2 or not isinstance(t[0], str):
                continue
            name, value = t[0], t[1]
            if not isinstance(value, str):
                continue
            if name == "observed_at" and observed is None and _TS.fullmatch(value):
                observed = int(value)
            elif name == "g" and is_geohash(value):
                places.append(value)
            elif name == "t" and value and len(value) <= 100:
                tag = value.lower().lstrip("#")
                if tag and tag not in hashtags:
                    hashtags.append(tag)
            elif name == "imeta" and (m := _imeta(t)) is not None:
                media.append(m)
        place = max(places, key=len) if places else ""
        return Report(ev.id, ev.pubkey, ev.created_at, observed, place,
                      ev.content[:MAX_TEXT] if isinstance(ev.content, str) else "",
                      tuple(media), tuple(hashtags))
    except (TypeError, AttributeError, ValueError):
        return None


def label(ev: Event) -> Label | None:
    """A ``samizdat.witness`` NIP-32 label on one report; None otherwise (reactions,
    other namespaces, labels without a report)."""
    try:
        if ev.kind != LABEL_KIND:
            return None
        value = None
        target = None
        for t in ev.tags:
            if not isinstance(t, list) or len(t) < 2:
                continue
            if (t[0] == "l" and len(t) >= 3 and t[2] == LABEL_NAMESPACE
                    and t[1] in (CORROBORATE, DISPUTE) and value is None):
                value = t[1]
            elif t[0] == "e" and target is None and isinstance(t[1], str) \
                    and HEX64.fullmatch(t[1]):
                target = t[1]
        if value is None or target is None:
            return None
        return Label(ev.id, ev.pubkey, ev.created_at, target, value)
    except (TypeError, AttributeError, ValueError):
        return None


def receipt(ev: Event) -> ReceiptFacts | None:
    """A well-formed hub receipt (kind 3041); None otherwise."""
    try:
        if ev.kind != RECEIPT_KIND:
            return None
        r = parse_receipt(ev)
    except (InvalidReceipt, TypeError, AttributeError, ValueError, IndexError):
        return None
    return ReceiptFacts(r.id, r.hub, r.created_at, r.start, r.end, r.count, r.root.hex(),
                        r.place, r.prev)


def leaf_part(ev: Event) -> LeafPart | None:
    """A receipt leaf-list part (kind 3042); None otherwise."""
    return parse_leaf_event(ev)
