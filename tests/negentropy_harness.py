"""Line-based stdio harness for the negentropy reference conformance suite.

The suite in hoytech/negentropy's ``test/`` directory (``fuzz.pl``, ``test.pl``,
``protoversion.pl``) drives each implementation through a tiny text protocol, one
command per line on stdin:

- ``item,<timestamp>,<id hex>``: add an item to the storage
- ``seal``: seal the storage and create the session (frame size limit from the
  ``FRAMESIZELIMIT`` environment variable, 0 when unset)
- ``initiate``: become the initiator; prints ``msg,<hex>``
- ``msg,<hex>``: reconcile an incoming message. As responder prints ``msg,<hex>``.
  As initiator prints ``have,<id hex>`` and ``need,<id hex>`` lines, then either
  ``msg,<hex>`` or ``done``.

Any error ends the process with a traceback, which the suite reports as a failure.
It is not imported by the tests; run it as
``.venv/bin/python tests/negentropy_harness.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:
    from samizdat.negentropy import Negentropy, ReconcileResult, VectorStorage
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from samizdat.negentropy import Negentropy, ReconcileResult, VectorStorage


def main() -> int:
    frame_size_limit = int(os.environ.get("FRAMESIZELIMIT") or 0)
    storage = VectorStorage()
    ne: Negentropy | None = None
    out = sys.stdout

    def check_limit(msg: bytes, who: str) -> None:
        if frame_size_limit and len(msg) > frame_size_limit:
            raise RuntimeError(f"{who} frameSizeLimit exceeded: {len(msg)} > {frame_size_limit}")

    for raw_line in sys.stdin:
        line = raw_line.strip()
        if not line:
            continue
        fields = line.split(",")
        cmd = fields[0]
        if cmd == "item":
            if len(fields) != 3:
                raise RuntimeError(f"wrong number of fields: {line!r}")
            storage.insert(int(fields[1]), bytes.fromhex(fields[2]))
        elif cmd == "seal":
            storage.seal()
            ne = Negentropy(storage, frame_size_limit)
        elif cmd == "initiate":
            if ne is None:
                raise RuntimeError("initiate before seal")
            msg = ne.initiate()
            check_limit(msg, "initiate")
            out.write(f"msg,{msg.hex()}\n")
            out.flush()
        elif cmd == "msg":
            if ne is None:
                raise RuntimeError("msg before seal")
            query = bytes.fromhex(fields[1]) if len(fields) >= 2 else b""
            result = ne.reconcile(query)
            if isinstance(result, ReconcileResult):
                lines = [f"have,{i.hex()}\n" for i in result.have_ids]
                lines += [f"need,{i.hex()}\n" for i in result.need_ids]
                if result.reply is None:
                    lines.append("done\n")
                else:
                    check_limit(result.reply, "initiator")
                    lines.append(f"msg,{result.reply.hex()}\n")
                out.write("".join(lines))
            else:
                check_limit(result, "non-initiator")
                out.write(f"msg,{result.hex()}\n")
            out.flush()
        else:
            raise RuntimeError(f"unknown cmd: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
