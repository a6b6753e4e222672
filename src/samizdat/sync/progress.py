"""What `samizdat sync` shows while it works, and its summary (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class SyncProgress:
    """Called by :class:`~samizdat.sync.session.PeerSession` as ids are found and moved."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> SyncProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task("reconciling", total=None, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def found(self, report: Any) -> None:
        total = self._total(report)
        self._progress.update(self._task, description="syncing", total=total or None,
                              detail=f"round {report.rounds}: {report.need} to fetch, "
                                     f"{report.have} to send")

    def moved(self, report: Any) -> None:
        done = report.received + report.already_had + report.rejected_from_peer \
            + report.sent + report.send_rejected
        self._progress.update(self._task, completed=done, total=self._total(report) or None)

    @staticmethod
    def _total(report: Any) -> int:
        need = report.need if report.direction in ("both", "down") else 0
        have = report.have if report.direction in ("both", "up") else 0
        return need + have

    def summary(self, report: Any) -> None:
        t = Table(title=f"sync with {report.url}", show_header=False)
        rows = [
            ("peer lacked (have)", report.have), ("we lacked (need)", report.need),
            ("sent and accepted", report.sent), ("sent but refused", report.send_rejected),
            ("received and stored", report.received), ("already here", report.already_had),
            ("rejected from peer", report.rejected_from_peer),
            ("negentropy rounds", report.rounds),
            ("bytes up / down", f"{report.bytes_up:,} / {report.bytes_down:,}"),
            ("seconds", f"{report.seconds:.2f}"),
        ]
        for k, v in rows:
            t.add_row(k, f"{v:,}" if isinstance(v, int) else v)
        for reason, n in report.rejections.items():
            t.add_row(f"  {reason}", f"{n:,}")
        Console().print(t)
