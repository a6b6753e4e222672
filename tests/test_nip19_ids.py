"""Event ids as people paste them: hex, NIP-19 note1… and nevent1… (made by nostr-tools)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samizdat.nostr.keys import decode_event_id

JS = Path(__file__).parent / "js"


def nostr_tools_encode(eid: str) -> dict[str, str]:
    script = (
        "import { nip19 } from 'nostr-tools';"
        f"const id = '{eid}';"
        "console.log(JSON.stringify({note: nip19.noteEncode(id),"
        " nevent: nip19.neventEncode({id, relays: ['ws://hub.lan:7447'], kind: 1})}));"
    )
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run([node, "--input-type=module", "-e", script], cwd=JS,
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def test_note_and_nevent_from_nostr_tools():
    eid = "5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36"
    forms = nostr_tools_encode(eid)
    assert decode_event_id(forms["note"]) == eid
    assert decode_event_id(forms["nevent"]) == eid
    assert decode_event_id(eid.upper()) == eid
    assert decode_event_id(f"  {eid}\n") == eid


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "npub1" + "q" * 58, "note1qqqq",
                                 "nevent1qqqqqqqq", "x" * 5000])
def test_bad_ids_are_refused(bad):
    with pytest.raises(ValueError, match="not an event id"):
        decode_event_id(bad)


@given(st.text(max_size=200))
def test_any_text_gives_an_id_or_value_error(text):
    try:
        out = decode_event_id(text)
    except ValueError:
        return
    assert len(out) == 64 and int(out, 16) >= 0
