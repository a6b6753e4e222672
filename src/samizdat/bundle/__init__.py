"""Sneakernet bundles: carry the news as files when no link exists.

A bundle is a zstd stream of the events as JSON lines (what ``strfry export`` writes),
plus skippable frames for a part header, media blobs and a manifest signed by the
exporting hub. docs/bundle-format.md describes the format; this package is pure file
work over the store's public methods:

- :mod:`.frames`, :mod:`.format`: frame walking and the format's rules and limits;
- :mod:`.writer`, :mod:`.exporter`: store → bundle;
- :mod:`.reader`, :mod:`.verify`, :mod:`.importer`: bundle or JSONL dump → store;
- :mod:`.state`: the compact "what do I have" file for ``export --for``.
"""

from .errors import BundleError
from .exporter import export_bundle
from .importer import ImportReport, import_files
from .state import HubState, decode_state, encode_state, read_state, write_state
from .writer import BundleWriter

__all__ = [
    "BundleError",
    "BundleWriter",
    "HubState",
    "ImportReport",
    "decode_state",
    "encode_state",
    "export_bundle",
    "import_files",
    "read_state",
    "write_state",
]
