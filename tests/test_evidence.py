"""Evidence packages (observer/evidence.py): export, verify offline, and refuse every kind
of tampering with a reason that names the file."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from samizdat.cli import main
from samizdat.observer.evidence import ExportError, export, verify_package
from samizdat.observer.service import Observer
from tests.observer_fixture import build

OUT = Path(__file__).resolve().parents[1] / "test-output" / "observer"


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    d = tmp_path_factory.mktemp("evidence")
    arc = build(d / "data")
    with Observer(arc.data, create=False) as obs:
        report_zip = d / "report.zip"
        cluster_zip = d / "cluster.zip"
        export(obs, arc.reports["r1"].id, report_zip)
        export(obs, arc.cluster_id, cluster_zip)
        with pytest.raises(ExportError):
            export(obs, "0" * 64, d / "none.zip")
        with pytest.raises(ExportError):
            export(obs, "../../etc", d / "none.zip")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "evidence-report.zip").write_bytes(report_zip.read_bytes())
    (OUT / "evidence-cluster.zip").write_bytes(cluster_zip.read_bytes())
    return arc, report_zip, cluster_zip


def _files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path: Path, files: dict[str, bytes], fix_sums: bool = False) -> Path:
    if fix_sums:  # a forger who also rewrites SHA256SUMS: the signatures must still catch it
        files = dict(files)
        files["SHA256SUMS"] = "".join(
            f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(files.items())
            if k not in ("SHA256SUMS", "SIGNATURE.json")).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_round_trip(packages):
    arc, report_zip, cluster_zip = packages
    r1 = arc.reports["r1"]
    files = _files(report_zip)
    for name in ("README.md", "summary.html", "summary.pdf", "manifest.json", "SHA256SUMS",
                 "events/reports.jsonl", "events/labels.jsonl", "events/receipts.jsonl",
                 "events/receipt-leaves.jsonl", f"proofs/{r1.id}.json"):
        assert name in files, name
    assert any(n.startswith("media/") and n.endswith(".png") for n in files)
    assert files["summary.pdf"].startswith(b"%PDF") and b"OpenSans" in files["summary.pdf"]
    assert "Республика алаңы" in files["summary.html"].decode()
    assert json.loads(files["events/reports.jsonl"]) == r1.to_dict()
    proofs = json.loads(files[f"proofs/{r1.id}.json"])
    assert len(proofs) == 2 and {p["type"] for p in proofs} == {"samizdat-inclusion-proof"}
    # sha256sum -c format
    for line in files["SHA256SUMS"].decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(files[name]).hexdigest() == digest
    result = verify_package(report_zip)
    assert result.ok, result.problems
    assert result.checked["proofs"] >= 2 and result.checked["media files"] == 1
    assert r1.id in result.existed_by
    cluster = verify_package(cluster_zip)
    assert cluster.ok, cluster.problems
    assert len(json.loads(_files(cluster_zip)["manifest.json"])["reports"]) == 3
    res = CliRunner().invoke(main, ["verify-package", str(report_zip)])
    assert res.exit_code == 0, res.output
    assert "package verified" in res.output and "existed no later than" in res.output


def test_readme_snippets_work_with_standard_tools(packages, tmp_path, monkeypatch):
    """The README's Python snippets, run as a third party would, in the unpacked folder."""
    _, report_zip, _ = packages
    with zipfile.ZipFile(report_zip) as z:
        z.extractall(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    blocks = readme.split("```python\n")[1:]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block.split("```")[0], "README.md", "exec"), {})


def _fails(path: Path, name: str, reason: str) -> None:
    result = verify_package(path)
    assert not result.ok
    assert any(f == name and reason in r for f, r in result.problems), result.problems
    res = CliRunner().invoke(main, ["verify-package", str(path)])
    assert res.exit_code == 1
    assert name in res.output and "NOT verified" in res.output


def test_tampering_is_caught(packages, tmp_path):
    arc, report_zip, _ = packages
    r1 = arc.reports["r1"]
    orig = _files(report_zip)
    media = next(n for n in orig if n.startswith("media/"))
    proof = f"proofs/{r1.id}.json"

    # a flipped byte in a photo
    f = dict(orig)
    b = bytearray(f[media])
    b[len(b) // 2] ^= 1
    f[media] = bytes(b)
    _fails(_write(tmp_path / "media.zip", f), media, "differs from SHA256SUMS")
    _fails(_write(tmp_path / "media2.zip", f, fix_sums=True), media, "does not hash to its name")

    # an altered report text, even with SHA256SUMS rewritten to match
    f = dict(orig)
    ev = json.loads(f["events/reports.jsonl"])
    ev["content"] = ev["content"].replace("полиция", "армия")
    f["events/reports.jsonl"] = (json.dumps(ev, ensure_ascii=False) + "\n").encode()
    _fails(_write(tmp_path / "event.zip", f), "events/reports.jsonl", "differs from SHA256SUMS")
    _fails(_write(tmp_path / "event2.zip", f, fix_sums=True), "events/reports.jsonl",
           "event id does not match")

    # an altered Merkle path in a proof
    f = dict(orig)
    docs = json.loads(f[proof])
    docs[0]["path"][0]["hash"] = "00" * 32
    f[proof] = json.dumps(docs).encode()
    _fails(_write(tmp_path / "proof.zip", f, fix_sums=True), proof,
           "does not lead to the receipt's root")

    # a leaf list with an id swapped
    f = dict(orig)
    lines = f["events/receipt-leaves.jsonl"].decode().splitlines()
    leaf = json.loads(lines[0])
    leaf["content"] = leaf["content"][::-1]
    lines[0] = json.dumps(leaf)
    f["events/receipt-leaves.jsonl"] = ("\n".join(lines) + "\n").encode()
    _fails(_write(tmp_path / "leaves.zip", f, fix_sums=True), "events/receipt-leaves.jsonl",
           "line 1")

    # a removed file
    f = dict(orig)
    del f[media]
    _fails(_write(tmp_path / "removed.zip", f), media, "missing from the package")
    del f["events/receipts.jsonl"]
    _fails(_write(tmp_path / "removed2.zip", f, fix_sums=True), proof, "is not in")

    # an added file that SHA256SUMS does not list
    f = dict(orig)
    f["media/extra.txt"] = b"planted"
    _fails(_write(tmp_path / "added.zip", f), "media/extra.txt", "not listed in SHA256SUMS")

    # zip names that would write outside the folder when unpacked
    for bad in ("../evil.txt", "/etc/evil", "media/../../evil", "a\\..\\evil"):
        f = dict(orig)
        f[bad] = b"x"
        _fails(_write(tmp_path / "traversal.zip", f, fix_sums=True), bad, "unsafe file name")

    # not a zip at all
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    assert not verify_package(junk).ok


def test_the_observer_signs_the_whole_package(packages, tmp_path):
    """SHA256SUMS alone lets a forger drop a report and rewrite the lists; the observer's
    signature over SHA256SUMS does not."""
    from coincurve import PrivateKey

    from samizdat.nostr.event import sign_event
    from samizdat.nostr.keys import npub, pubkey_of, read_hub_key

    arc, report_zip, _ = packages
    observer = pubkey_of(read_hub_key(arc.data))
    ok = verify_package(report_zip, signer=observer)
    assert ok.ok and ok.signer == observer, ok.problems
    res = CliRunner().invoke(main, ["verify-package", str(report_zip), "--signer",
                                    npub(observer)])
    assert res.exit_code == 0 and f"signed by observer {npub(observer)}" in res.output

    orig = _files(report_zip)
    # leave the labels out and rewrite manifest-free lists consistently: the signature
    # no longer covers SHA256SUMS
    assert "events/labels.jsonl" in orig
    dropped = {k: v for k, v in orig.items()
               if k not in ("events/labels.jsonl", "SHA256SUMS")}
    _fails(_write(tmp_path / "dropped.zip", dropped, fix_sums=True), "SIGNATURE.json",
           "does not sign this SHA256SUMS")
    # unsigned
    unsigned = {k: v for k, v in orig.items() if k != "SIGNATURE.json"}
    _fails(_write(tmp_path / "unsigned.zip", unsigned), "SIGNATURE.json", "not signed")
    # re-signed by someone else: valid on its own, refused when the observer is known
    forger = PrivateKey()
    digest = hashlib.sha256(orig["SHA256SUMS"]).hexdigest()
    fake = sign_event(forger, 21211, "x", [["x", digest]])
    resigned = {**orig, "SIGNATURE.json": json.dumps(fake.to_dict()).encode()}
    path = _write(tmp_path / "resigned.zip", resigned)
    assert verify_package(path).signer == pubkey_of(forger)
    bad = verify_package(path, signer=observer)
    assert not bad.ok and any("not by the expected" in r for _, r in bad.problems)
    res = CliRunner().invoke(main, ["verify-package", str(path), "--signer", npub(observer)])
    assert res.exit_code == 1 and "not by the expected" in res.output
