"""Hub receipts: signed commitments (Merkle roots) to the event ids a hub stored in a time
window, inclusion proofs, and OpenTimestamps anchoring (docs/report-format.md)."""
