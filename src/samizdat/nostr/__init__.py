"""Pure Nostr protocol code: events, filters, messages. Imports nothing from the I/O layers."""
