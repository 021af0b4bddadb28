"""Random fault injection settings (the HTTP layer applies the faults)."""

from __future__ import annotations

import random
import threading

FAULT_ERRORS: dict[str, str] = {
    "500": "Internal Server Error",
    "502": "Bad Gateway",
    "503": "Service Unavailable",
    "504": "Gateway Timeout",
    "429": "Too Many Requests",
}
FAULT_KINDS: frozenset[str] = frozenset({*FAULT_ERRORS, "drop", "lost", "delay", "slow", "raw"})


class FaultConfig:
    """Random fault injection: a fraction ``rate`` of requests get a fault picked by weight.

    The choice sequence is deterministic for a given ``seed`` (a fresh config restarts it).
    """

    def __init__(
        self,
        rate: float = 0.0,
        kinds: dict[str, float] | None = None,
        seed: int | None = None,
        retry_after: int = 1,
        delay: float = 0.0,
    ) -> None:
        self.rate = rate
        self.kinds = dict(kinds) if kinds else {"500": 1.0, "502": 1.0, "503": 1.0, "429": 1.0}
        unknown = set(self.kinds) - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.seed = seed
        self.retry_after = retry_after
        self.delay = delay
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def pick(self) -> str | None:
        """The fault for the next request, or None."""
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            return self._rng.choices(list(self.kinds), weights=list(self.kinds.values()))[0]

    def __repr__(self) -> str:
        return f"FaultConfig(rate={self.rate}, kinds={self.kinds}, seed={self.seed})"
