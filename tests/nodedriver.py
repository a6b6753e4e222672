"""A node.js driver process spoken to one JSON line at a time (interop tests).

Each driver script in tests/js reads ``{"seq", "op", ...}`` lines on stdin and answers
``{"seq", "value"}`` or ``{"seq", "error"}`` on stdout; its own logging goes to stderr,
which is kept for failure messages.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


class DriverError(Exception):
    """A driver command failed on the JavaScript side; the message is the JS error."""


class NodeDriver:
    """One ``node tests/js/<script> ARGS...`` process."""

    call_timeout = 15.0

    def __init__(self, script: str, *args: str):
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed; the interop tests need Node.js >= 20.19")
        self.proc = subprocess.Popen(
            [node, str(JS_DIR / script), *args], cwd=JS_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            bufsize=1,
        )
        self.seq = 0
        self.answers: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def _diagnostics(self) -> str:
        tail = "\n".join(self.stderr[-30:])
        return f"driver exit code {self.proc.poll()}; driver stderr:\n{tail}"

    def call(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Run one command; its value, or :class:`DriverError` with the JavaScript error."""
        timeout = self.call_timeout if timeout is None else timeout
        self.seq += 1
        seq = self.seq
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"seq": seq, "op": op, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise AssertionError(f"driver is gone before {op}; {self._diagnostics()}") from None
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"driver did not answer {op} within {timeout} s; "
                                 f"{self._diagnostics()}") from None
        if line is None:
            raise AssertionError(f"driver exited during {op}; {self._diagnostics()}")
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"driver wrote a non-JSON line: {line!r}") from None
        assert msg.get("seq") == seq, f"answer out of order for {op}: {msg}"
        if "error" in msg:
            raise DriverError(msg["error"])
        return msg["value"]

    def fails(self, op: str, **args: Any) -> str:
        """Run a command that must fail; the JavaScript error message."""
        try:
            value = self.call(op, **args)
        except DriverError as exc:
            return str(exc)
        raise AssertionError(f"{op} should have failed but returned {value}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, DriverError):
                self.call("exit", timeout=5)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
