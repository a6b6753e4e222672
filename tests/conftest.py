from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Client, HubHandle, Keys, start_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubHandle]:
    """A hub with default settings on a free port, its data in a fresh directory."""
    handle = start_hub(tmp_path / "hub")
    yield handle
    handle.stop()


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator:
    """Factory: ``make_hub(**{"auth.required_for_write": True})`` for non-default settings."""
    started: list[HubHandle] = []

    def factory(name: str = "hub", **overrides) -> HubHandle:
        h = start_hub(tmp_path / name, **overrides)
        started.append(h)
        return h

    yield factory
    for h in started:
        h.stop()


@pytest.fixture
def client(hub: HubHandle) -> Iterator[Client]:
    with Client(hub.url) as c:
        yield c


@pytest.fixture
def alice() -> Keys:
    return Keys()


@pytest.fixture
def bob() -> Keys:
    return Keys()
