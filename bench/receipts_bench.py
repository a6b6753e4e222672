"""Hub receipts: the cost of recording, closing a window of N ids, proving one id, and
the start-up catch-up (`make bench-receipts` or `.venv/bin/python bench/receipts_bench.py`).

Steps, each on a fresh receipts log in a temporary directory:
1. record N ids the way the hub does (batches of 500 rows, one transaction each);
2. close the window: read and sort the N ids, build the Merkle tree, sign the receipt and
   record it in one transaction (what happens every interval);
3. prove one id as `samizdat prove` does (a read-only log opened cold, the window's ids
   read again, the tree rebuilt, the proof checked), in process and as a command;
4. catch-up: record every id of a store the log does not know (first start on a hub that
   has events), then the same again when all are known (every later start), and the
   store-side read of all ids (`sync_items`) on a store of `--store` events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coincurve import PrivateKey

from samizdat.nostr.event import sign_event
from samizdat.receipts.merkle import MerkleTree
from samizdat.receipts.proof import check_doc, find_proofs
from samizdat.receipts.receipt import build_receipt
from samizdat.store import SQLiteStore
from samizdat.store.receipts import RECEIPTS_FILE, ReceiptLog


def best(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=100_000)
    ap.add_argument("--catch-up", type=int, default=1_000_000)
    ap.add_argument("--store", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    n = args.ids
    key = PrivateKey()
    out: dict[str, object] = {"ids": n, "python": sys.version.split()[0],
                              "load_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "hub"
        log = ReceiptLog(data / RECEIPTS_FILE)
        log.set_interval(600)
        ids = [os.urandom(32) for _ in range(n)]
        t0 = time.perf_counter()
        for k in range(0, n, 500):
            log.append((i, 1_000_000 + j % 600, 0) for j, i in enumerate(ids[k:k + 500], k))
        out["record_rows_per_s"] = round(n / (time.perf_counter() - t0))

        tree_s, _ = best(lambda: MerkleTree(sorted(ids)))
        out["merkle_tree_s"] = round(tree_s, 3)

        def sign(start, end, window, prev):
            t = MerkleTree(window)
            ev = build_receipt(key, start, end, len(window), t.root, created_at=end + 1)
            return ev.id, ev.created_at, t.root, ev.to_json()

        t0 = time.perf_counter()
        row, _ = log.close_window(1_000_600, 600, sign)
        out["close_window_s"] = round(time.perf_counter() - t0, 3)
        assert row is not None and row.count == n
        log.close()

        target = ids[n // 3].hex()

        def prove_once():
            ro = ReceiptLog(data / RECEIPTS_FILE, readonly=True)
            try:
                return find_proofs(ro, target, now=2_000_000)
            finally:
                ro.close()

        prove_s, proofs = best(prove_once)
        out["prove_in_process_s"] = round(prove_s, 3)
        check_s, _ = best(lambda: check_doc(proofs[0].doc), 5)
        out["verify_proof_doc_ms"] = round(check_s * 1000, 2)
        out["proof_bytes"] = len(json.dumps(proofs[0].doc))
        out["path_length"] = len(proofs[0].proof.path)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "samizdat.cli", "prove", target, "--data",
                              str(data), "--json"], capture_output=True, text=True, check=True)
        out["prove_command_s"] = round(time.perf_counter() - t0, 3)
        assert json.loads(res.stdout)["event_id"] == target

        # catch-up of M ids: new, then all known
        m = args.catch_up
        blob = b"".join(os.urandom(32) for _ in range(m))
        log = ReceiptLog(Path(tmp) / "c" / RECEIPTS_FILE)
        t0 = time.perf_counter()
        assert log.catch_up(blob, set(), 5) == m
        out["catch_up_new_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        assert log.catch_up(blob, set(), 6) == 0
        out["catch_up_known_s"] = round(time.perf_counter() - t0, 2)
        out["catch_up_ids"] = m
        log.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out["log_bytes_per_id"] = round(sum(
            p.stat().st_size for p in (Path(tmp) / "c").glob("*")) / m, 1)
        log.close()

        # the store side of a catch-up: all (created_at, id) pairs
        s = args.store
        store = SQLiteStore(Path(tmp) / "s" / "events.sqlite3", "NORMAL")
        authors = [PrivateKey() for _ in range(100)]
        now = int(time.time())
        events = (sign_event(authors[k % 100], 1, f"report {k}", [], now - k) for k in range(s))
        store.import_events(events)
        t0 = time.perf_counter()
        items = store.sync_items(None)
        out["store_read_all_ids_s"] = round(time.perf_counter() - t0, 3)
        out["store_events"] = len(items[1]) // 32
        store.close()
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
