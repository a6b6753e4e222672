"""Blossom media store: content-addressed blobs on disk, served on the hub's port.

``auth`` and ``media`` are pure (no I/O); ``store`` does the disk work; ``http`` adds
the aiohttp routes (``add_blob_routes``).
"""
