"""Test helpers: a real hub on 127.0.0.1 in a thread, and a small synchronous Nostr client.

The client uses the `websockets` library, an implementation independent of the
hub's aiohttp server, so both ends of every protocol test are real.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coincurve import PrivateKey
from websockets.sync.client import ClientConnection, connect

from samizdat.config import Config, load_config
from samizdat.hub import run_hub
from samizdat.nostr.event import Event, sign_event
from samizdat.nostr.keys import load_or_create_hub_key
from samizdat.relay.relay import Relay

ROOT = Path(__file__).resolve().parent.parent


class Keys:
    """A throwaway identity that signs real BIP-340 events."""

    def __init__(self, secret: bytes | None = None):
        self.key = PrivateKey(secret) if secret else PrivateKey()
        self.pubkey = self.key.public_key_xonly.format().hex()

    def sign(self, kind: int = 1, content: str = "", tags: list[list[str]] | None = None,
             created_at: int | None = None) -> Event:
        return sign_event(self.key, kind, content, tags, created_at)


@dataclass
class HubHandle:
    cfg: Config
    port: int
    relay: Relay
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event
    errors: list[BaseException] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "hub did not stop within 30 s"


def start_hub(data_dir: Path, config_file: Path | None = None, **overrides: Any) -> HubHandle:
    """Start a hub in a background thread on a free port and wait until it listens."""
    overrides.setdefault("server.port", 0)
    overrides.setdefault("server.https_port", 0)  # HTTPS too on a free port (wins over the file)
    cfg = load_config(config_file, data_dir=str(data_dir), **overrides)
    key = load_or_create_hub_key(cfg.data_dir)
    ready = threading.Event()
    box: dict[str, Any] = {}
    errors: list[BaseException] = []

    def on_ready(relay: Relay, port: int) -> None:
        box["relay"], box["port"] = relay, port
        ready.set()

    def run() -> None:
        async def main() -> None:
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = asyncio.Event()
            await run_hub(cfg, key, on_ready=on_ready, stop=box["stop"], install_signals=False)

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="hub", daemon=True)
    thread.start()
    if not ready.wait(30) or errors:
        raise RuntimeError(f"hub failed to start: {errors}")
    return HubHandle(cfg, box["port"], box["relay"], thread, box["loop"], box["stop"], errors)


class Client:
    """A minimal synchronous Nostr client for protocol tests."""

    def __init__(self, url: str, **kwargs: Any):
        self._cm = connect(url, open_timeout=10, max_size=None, **kwargs)
        self.ws: ClientConnection = self._cm.__enter__()
        self.pending: list[list[Any]] = []  # frames received while waiting for something else

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, msg: Any) -> None:
        self.ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    def recv(self, timeout: float = 10) -> list[Any]:
        if self.pending:
            return self.pending.pop(0)
        return json.loads(self.ws.recv(timeout=timeout))

    def recv_until(self, pred, timeout: float = 10) -> list[Any]:
        """Next frame satisfying ``pred``; others are kept for later ``recv`` calls."""
        deadline = time.monotonic() + timeout
        skipped = []
        try:
            for i, frame in enumerate(self.pending):
                if pred(frame):
                    self.pending.pop(i)
                    return frame
            while True:
                frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if pred(frame):
                    return frame
                skipped.append(frame)
        finally:
            self.pending.extend(skipped)

    def publish(self, ev: Event | dict, timeout: float = 10) -> tuple[bool, str]:
        d = ev.to_dict() if isinstance(ev, Event) else ev
        self.send(["EVENT", d])
        frame = self.recv_until(lambda f: f[0] == "OK" and f[1] == d.get("id"), timeout)
        return frame[2], frame[3]

    def req(self, subid: str, *filters: dict, timeout: float = 10) -> list[dict]:
        """Stored events for the filters (until EOSE); the subscription stays open."""
        self.send(["REQ", subid, *filters])
        events = []
        while True:
            frame = self.recv_until(lambda f: f[0] in ("EVENT", "EOSE", "CLOSED")
                                    and f[1] == subid, timeout)
            if frame[0] == "EVENT":
                events.append(frame[2])
            elif frame[0] == "EOSE":
                return events
            else:
                raise AssertionError(f"subscription closed: {frame}")

    def query(self, *filters: dict, timeout: float = 10) -> list[dict]:
        """One-shot REQ: events until EOSE, then CLOSE."""
        subid = f"q{time.monotonic_ns()}"
        try:
            return self.req(subid, *filters, timeout=timeout)
        finally:
            self.send(["CLOSE", subid])

    def count(self, *filters: dict) -> int:
        subid = f"c{time.monotonic_ns()}"
        self.send(["COUNT", subid, *filters])
        frame = self.recv_until(lambda f: f[0] in ("COUNT", "CLOSED") and f[1] == subid)
        assert frame[0] == "COUNT", frame
        return frame[2]["count"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubProcess:
    """`samizdat serve` as a real child process (for crash and CLI tests)."""

    def __init__(self, data_dir: Path, *extra: str, port: int | None = None):
        self.port = port or free_port()
        self.data_dir = data_dir
        cmd = [sys.executable, "-m", "samizdat.cli", "serve", "--data", str(data_dir),
               "--port", str(self.port), "--https-port", "0", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.proc.stdout.read()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("hub process did not start listening")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out
