"""Start and stop the relays under test as separate processes, and read /proc about them.

Both listen on 127.0.0.1 only, on a free port, with a fresh data directory each time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEER_VENV = BENCH / ".venv-peer"
PEER_PACKAGE = "nostr-relay==1.14"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# [rate] with every bucket at 0 (= unlimited): the benchmark measures throughput, not policy.
SAMIZDAT_CONFIG = """\
# samizdat configuration used by bench/relay_bench.py
[rate]
messages_per_second = 0
events_per_second = 0
ip_events_per_second = 0
ip_max_connections = 0

[limits]
max_limit = 10000

[store]
synchronous = "{sync}"
"""

# nostr-relay 1.14 (gunicorn + uvicorn worker, SQLite via SQLAlchemy/aiosqlite). Defaults are
# kept except: no rate limiter (none is configured by default either), REQ limit raised to
# 10000, events up to 10 years old accepted, the per-event INFO log line silenced.
PEER_CONFIG = """\
# nostr-relay configuration used by bench/relay_bench.py
DEBUG: false
relay_name: bench peer
relay_description: benchmark peer
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  num_concurrent_reqs: 10
  num_concurrent_adds: 2
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
    - nostr_relay.validators.is_not_hellthread
verification:
  nip05_verification: disabled
gunicorn:
  bind: {host}:{port}
  workers: 1
  loglevel: warning
  reload: false
  timeout: 600
authentication:
  enabled: false
message_timeout: 1800
subscription_limit: 32
max_limit: 10000
max_event_size: 100000
oldest_event: 315360000
hellthread_limit: 100
logging:
  version: 1
  formatters:
    simple:
      format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
  handlers:
    console:
      class: logging.StreamHandler
      level: WARNING
      formatter: simple
      stream: ext://sys.stdout
  loggers:
    nostr_relay:
      level: WARNING
      handlers: [console]
      propagate: false
  root:
    level: WARNING
    handlers: [console]
"""


def snapshot_src(dest: Path, rev: str | None = None) -> dict[str, str]:
    """Copy samizdat's source to ``dest`` so that every relay of a run runs the same code.

    ``src/`` can change under a long run (the install is editable); the copy cannot. With
    ``rev`` the copy comes from that git revision, otherwise from the working tree.
    Returns what was copied: commit, whether the working tree differed from it, a hash.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, check=True).stdout.strip()

    dest.mkdir(parents=True, exist_ok=True)
    if rev:
        commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src/samizdat"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest), "--strip-components=1"], input=archive,
                       check=True)
        dirty = False
    else:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "src"))
        shutil.copytree(REPO / "src" / "samizdat", dest / "samizdat",
                        ignore=shutil.ignore_patterns("__pycache__"))
    digest = hashlib.sha256()
    for p in sorted((dest / "samizdat").rglob("*.py")):
        digest.update(p.relative_to(dest).as_posix().encode() + b"\0" + p.read_bytes())
    return {"path": str(dest), "commit": commit, "from": rev or "working tree",
            "working_tree_dirty": str(dirty).lower(), "sha256": digest.hexdigest()[:16]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ensure_peer(log=print) -> Path:
    """The peer's venv (created with ``pip install nostr-relay`` when missing)."""
    exe = PEER_VENV / "bin" / "nostr-relay"
    if exe.exists():
        return exe
    log(f"creating {PEER_VENV} and installing {PEER_PACKAGE} (one-time) ...")
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, PEER_PACKAGE], check=True)
    return exe


def peer_version() -> str:
    out = subprocess.run([str(PEER_VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('nostr-relay'))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    total = sum(vals[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class Relay:
    """One relay process; ``name`` is ``samizdat`` or ``peer``."""

    def __init__(self, name: str, workdir: Path, *, sync: str = "FULL",
                 src: Path | None = None):
        self.name = name
        self.src = src  # samizdat: run this source snapshot instead of the live src/
        self.workdir = workdir
        self.sync = sync
        self.port = free_port()
        self.url = f"ws://{HOST}:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"
        self.config_path: Path | None = None

    def command(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.name == "samizdat":
            self.config_path = self.workdir / "samizdat.toml"
            self.config_path.write_text(SAMIZDAT_CONFIG.format(sync=self.sync))
            cmd = [str(REPO / ".venv" / "bin" / "samizdat"), "serve",
                   "--data", str(self.workdir / "data"), "--host", HOST,
                   "--port", str(self.port), "--config", str(self.config_path)]
            src = self.src if self.src is not None else REPO / "src"
            if (Path(src) / "samizdat" / "tls.py").exists():  # revisions that serve HTTPS
                cmd.append("--no-https")
            return cmd
        self.config_path = self.workdir / "nostr-relay.yaml"
        self.config_path.write_text(PEER_CONFIG.format(
            db=self.workdir / "nostr.sqlite3", host=HOST, port=self.port))
        return [str(PEER_VENV / "bin" / "nostr-relay"), "-c", str(self.config_path), "serve"]

    def start(self, timeout: float = 90.0) -> None:
        cmd = self.command()
        env = dict(os.environ)
        if self.name == "samizdat" and self.src is not None:
            # PYTHONPATH comes before the editable install's path entry
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.src), env.get("PYTHONPATH", "")) if p)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            # gunicorn's master binds before its worker is ready to accept WebSockets
            time.sleep(1.0 if self.name == "peer" else 0.2)
            return
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout}s")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def rss_kb(self) -> dict[str, int]:
        """VmRSS summed over the relay's processes (gunicorn: master + worker), and VmHWM."""
        pids = self.pids()
        return {"rss_kb": sum(_status_kb(p, "VmRSS") for p in pids),
                "hwm_kb": sum(_status_kb(p, "VmHWM") for p in pids),
                "processes": len(pids),
                "per_process_rss_kb": [_status_kb(p, "VmRSS") for p in pids]}

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is our child's pid
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
