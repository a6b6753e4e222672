"""Rules about which events may be copied between hubs (pure)."""

from __future__ import annotations

from .event import Event
from .kinds import AUTH, Storage, storage_of


def sync_refusal(ev: Event, now: int) -> str | None:
    """Why a synced event must not be stored here, or None.

    Sync copies events between hubs, which NIP-70 forbids for protected events (only
    their author may publish them); AUTH and ephemeral events are never stored; an
    expired event is not worth carrying.
    """
    if ev.is_protected:
        return "restricted: protected events are only accepted from their author"
    if ev.kind == AUTH or storage_of(ev.kind) is Storage.EPHEMERAL:
        return "invalid: AUTH and ephemeral events are not stored"
    exp = ev.expiration
    if exp is not None and exp <= now:
        return "invalid: event has expired"
    return None
