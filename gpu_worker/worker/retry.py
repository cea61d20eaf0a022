"""Retry policy: a value object, not loop code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_receives: int = 3
    base_delay_s: float = 30.0
    max_delay_s: float = 900.0

    def delay_s(self, receive_count: int) -> int:
        """Exponential backoff for the next delivery: base, 2*base, 4*base, ... capped."""
        return int(min(self.max_delay_s, self.base_delay_s * 2 ** max(0, receive_count - 1)))

    def exhausted(self, receive_count: int) -> bool:
        return receive_count >= self.max_receives
