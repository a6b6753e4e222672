"""`samizdat demo scenario`: the fabricated blackout, ingested, is judged right by the
observer: every planted case raises its flag, no honest report gets a warning, and the
scenario is the same for the same seed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("PIL")
pytest.importorskip("imagehash")

from samizdat.cli import main
from samizdat.observer.ingest import ingest
from samizdat.observer.scenario import build, bundle_files
from samizdat.observer.service import Observer


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenario")
    started = time.monotonic()
    key = build(root / "out", seed=7)
    with Observer(root / "observer") as obs:
        report = ingest(obs, [str(p) for p in bundle_files(root / "out")],
                        reference=root / "out" / "reference")
        seconds = time.monotonic() - started
        yield key, obs, report, seconds


def test_every_planted_case_is_flagged_with_its_code(scenario):
    key, obs, _, _ = scenario
    assert {p["flag"] for p in key["planted"]} == {
        "recycled-media", "time-contradiction", "place-contradiction", "sybil-burst"}
    for case in key["planted"]:
        v = obs.check(case["report"])
        assert v.found and v.signature_valid is not False
        flags = {f.code: f for f in v.flags}
        assert case["flag"] in flags, (case["case"], [f.as_json() for f in v.flags])
        assert flags[case["flag"]].severity == "warning"
        assert case["report"] in flags[case["flag"]].evidence
        # the planted report has receipts (it is the claim, not the bounding, that is off)
        assert v.receipts and "no-receipt" not in flags


def test_planted_cases_carry_their_evidence(scenario):
    key, obs, _, _ = scenario
    cases = {p["flag"]: p for p in key["planted"]}
    recycled = obs.check(cases["recycled-media"]["report"])
    flag = next(f for f in recycled.flags if f.code == "recycled-media")
    assert cases["recycled-media"]["source_report"] in flag.evidence
    sources = {m.source for c in recycled.media for m in c.matches}
    assert sources == {"archive", "reference"}

    sybil = obs.check(cases["sybil-burst"]["report"])
    flag = next(f for f in sybil.flags if f.code == "sybil-burst")
    assert set(cases["sybil-burst"]["sybil_keys"]) <= set(flag.evidence)
    assert sybil.corroborations == 15 + 2  # the burst and two real witnesses

    far = obs.check(cases["place-contradiction"]["report"])
    assert far.place_checks and all(p.distance_km > 500 for p in far.place_checks)
    assert len({p.hub for p in far.place_checks}) == 3

    late = obs.check(cases["time-contradiction"]["report"])
    assert late.claimed_time > late.existed_by + 2 * 3600


def test_no_honest_report_gets_a_warning(scenario):
    key, obs, _, _ = scenario
    assert len(key["honest"]) >= 30
    planted = {p["report"] for p in key["planted"]}
    assert not planted & set(key["honest"])
    for rid in key["honest"]:
        v = obs.check(rid)
        assert v.found and v.receipts, rid
        warnings = [f.as_json() for f in v.flags if f.severity != "info"]
        assert not warnings, (rid, warnings)
    for info in key["expected_info"]:
        v = obs.check(info["report"])
        assert info["flag"] in {f.code for f in v.flags if f.severity == "info"}


def test_receipts_and_leaf_lists_are_the_hubs_and_all_check(scenario):
    key, obs, report, seconds = scenario
    idx = report.index
    n_receipts = sum(h["receipts"] for h in key["hubs"])
    assert idx.receipts == n_receipts and idx.leaves_accepted == n_receipts
    assert idx.leaves_refused == 0
    # reports travelled: a blackout report is in receipts of all three hubs
    hubs = {h["pubkey"] for h in key["hubs"]}
    spread = [len({r.hub for r in obs.receipts_for(rid)}) for rid in key["honest"]]
    assert max(spread) == 3 and sum(s >= 2 for s in spread) >= len(spread) // 2
    assert {r.hub for rid in key["honest"] for r in obs.receipts_for(rid)} == hubs
    assert seconds < 30


def test_same_seed_same_scenario(tmp_path):
    a = build(tmp_path / "a", seed=11)
    b = build(tmp_path / "b", seed=11)
    assert a == b
    assert (tmp_path / "a" / "scenario.json").read_bytes() == \
        (tmp_path / "b" / "scenario.json").read_bytes()
    c = build(tmp_path / "c", seed=12)
    assert c["planted"][0]["report"] != a["planted"][0]["report"]
    with pytest.raises(FileExistsError):
        build(tmp_path / "a", seed=11)


def test_demo_scenario_command(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "scenario", "--out", str(out), "--seed", "2",
                                    "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout[res.stdout.index("{"):])
    assert all(p["flagged"] for p in doc["check"]["planted"])
    assert doc["check"]["honest_warned"] == []
    assert (out / "observer-data" / "events.sqlite3").exists()
    assert len(list((out / "bundles").glob("hub-*.bundle"))) == 3
    # running it again replaces the earlier scenario; a foreign directory is refused
    res = CliRunner().invoke(main, ["demo", "scenario", "--out", str(out), "--seed", "2",
                                    "--no-ingest"])
    assert res.exit_code == 0, res.output
    assert not (out / "observer-data").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    res = CliRunner().invoke(main, ["demo", "scenario", "--out", str(other)])
    assert res.exit_code == 1 and "other than a demo scenario" in res.output
    assert (other / "mine.txt").read_text() == "keep"


def test_without_the_observer_extra_the_demo_says_what_to_install(tmp_path):
    """A hub installed with `make run` has no Pillow or imagehash: the demo must say how to
    get them, not die with a traceback. (Simulated by making their import fail.)"""
    code = ("import sys; sys.modules['PIL'] = None; sys.modules['imagehash'] = None\n"
            "from samizdat.cli import main\n"
            f"main(['demo', 'scenario', '--out', {str(tmp_path / 'demo')!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "pip install 'samizdat[observer]'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "demo").exists()
