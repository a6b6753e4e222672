"""The NIP-01 message codec: client frames in, relay frames out.

``parse_client_message`` turns one WebSocket text frame into a typed message or
raises :class:`InvalidMessage` with a reason that can be sent back verbatim.
Events and filters are only shape-checked here; id and signature checks are
the relay's (they are the expensive part and run off the event loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .event import Event, InvalidEvent, parse_event
from .filters import Filter, InvalidFilter, parse_filter


class InvalidMessage(ValueError):
    """Unparseable or malformed client message. ``subid`` is set when one was readable."""

    def __init__(self, reason: str, verb: str | None = None, subid: str | None = None,
                 event_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.verb = verb
        self.subid = subid
        self.event_id = event_id


@dataclass(slots=True, frozen=True)
class Limits:
    """Codec-level limits; the relay builds this from its config."""

    max_subid_length: int = 64
    max_filters: int = 10
    max_filter_values: int = 1000
    max_limit: int = 5000
    default_limit: int = 500
    max_event_tags: int = 2000
    max_content_length: int = 100_000
    max_tag_value_length: int = 4096


@dataclass(slots=True)
class EventMessage:
    event: Event


@dataclass(slots=True)
class ReqMessage:
    subid: str
    filters: list[Filter]


@dataclass(slots=True)
class CountMessage:
    subid: str
    filters: list[Filter]


@dataclass(slots=True)
class CloseMessage:
    subid: str


@dataclass(slots=True)
class AuthMessage:
    event: Event


@dataclass(slots=True)
class NegMessage:
    """NIP-77 frames (NEG-OPEN/NEG-MSG/NEG-CLOSE), passed through undecoded for the sync layer."""

    verb: str
    args: list[Any]


ClientMessage = EventMessage | ReqMessage | CountMessage | CloseMessage | AuthMessage | NegMessage


def _subid(value: Any, verb: str, limits: Limits) -> str:
    if type(value) is not str or not value:
        raise InvalidMessage(f"invalid: {verb} needs a non-empty subscription id string", verb)
    if len(value) > limits.max_subid_length:
        raise InvalidMessage(
            f"invalid: subscription id longer than {limits.max_subid_length} characters", verb
        )
    return value


def _filters(items: list[Any], verb: str, subid: str, limits: Limits) -> list[Filter]:
    if not items:
        raise InvalidMessage(f"invalid: {verb} needs at least one filter", verb, subid)
    if len(items) > limits.max_filters:
        raise InvalidMessage(f"invalid: more than {limits.max_filters} filters", verb, subid)
    try:
        return [
            parse_filter(f, max_values=limits.max_filter_values, max_limit=limits.max_limit,
                         default_limit=limits.default_limit)
            for f in items
        ]
    except InvalidFilter as exc:
        raise InvalidMessage(str(exc), verb, subid) from None


def _event(value: Any, verb: str, limits: Limits) -> Event:
    try:
        return parse_event(value, max_tags=limits.max_event_tags,
                           max_content=limits.max_content_length,
                           max_tag_value=limits.max_tag_value_length)
    except InvalidEvent as exc:
        eid = value.get("id") if type(value) is dict else None
        eid = eid if type(eid) is str and len(eid) <= 64 else None
        raise InvalidMessage(str(exc), verb, event_id=eid) from None


def parse_client_message(data: str | bytes, limits: Limits = Limits()) -> ClientMessage:
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidMessage("invalid: message is not valid JSON") from None
    if type(msg) is not list or not msg or type(msg[0]) is not str:
        raise InvalidMessage("invalid: a message must be a JSON array starting with a verb")
    verb = msg[0]
    if verb == "EVENT":
        if len(msg) != 2:
            raise InvalidMessage("invalid: EVENT takes exactly one event", verb)
        return EventMessage(_event(msg[1], verb, limits))
    if verb in ("REQ", "COUNT"):
        subid = _subid(msg[1] if len(msg) > 1 else None, verb, limits)
        filters = _filters(msg[2:], verb, subid, limits)
        return ReqMessage(subid, filters) if verb == "REQ" else CountMessage(subid, filters)
    if verb == "CLOSE":
        if len(msg) != 2:
            raise InvalidMessage("invalid: CLOSE takes exactly one subscription id", verb)
        return CloseMessage(_subid(msg[1], verb, limits))
    if verb == "AUTH":
        if len(msg) != 2:
            raise InvalidMessage("invalid: AUTH takes exactly one event", verb)
        return AuthMessage(_event(msg[1], verb, limits))
    if verb in ("NEG-OPEN", "NEG-MSG", "NEG-CLOSE"):
        return NegMessage(verb, msg[1:])
    raise InvalidMessage(f"invalid: unknown message type {verb[:32]!r}", verb)


# --- relay → client ----------------------------------------------------------------------------
# Events are sent from their stored JSON text without re-encoding: the store keeps each event
# as the exact JSON object it will send.

def _s(value: str) -> str:
    return orjson.dumps(value).decode()


def event_frame(subid: str, event_json: str) -> str:
    return f'["EVENT",{_s(subid)},{event_json}]'


def ok_frame(event_id: str, accepted: bool, message: str = "") -> str:
    return orjson.dumps(["OK", event_id, accepted, message]).decode()


def eose_frame(subid: str) -> str:
    return orjson.dumps(["EOSE", subid]).decode()


def closed_frame(subid: str, message: str) -> str:
    return orjson.dumps(["CLOSED", subid, message]).decode()


def notice_frame(message: str) -> str:
    return orjson.dumps(["NOTICE", message]).decode()


def count_frame(subid: str, count: int) -> str:
    return orjson.dumps(["COUNT", subid, {"count": count}]).decode()


def auth_frame(challenge: str) -> str:
    return orjson.dumps(["AUTH", challenge]).decode()
