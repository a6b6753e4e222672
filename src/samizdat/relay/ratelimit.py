"""Token buckets for per-connection and per-IP limits."""

from __future__ import annotations

import time


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; a rate of 0 means unlimited."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class PerIP:
    """Shared state of all connections from one address."""

    __slots__ = ("connections", "events")

    def __init__(self, rate: float, burst: int):
        self.events = TokenBucket(rate, burst)
        self.connections = 0
