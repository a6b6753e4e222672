"""The asyncio relay: WebSocket connections, subscriptions, limits, AUTH and the HTTP pages."""
