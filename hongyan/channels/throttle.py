"""The send-rate limit every carrier channel holds to, over all its links."""
from __future__ import annotations


class TokenBucket:
    """A smooth rate limit shared by all links of one channel.

    The bucket holds at most 20 ms worth of tokens, so a channel never bursts
    a whole second's allowance at once: at 200/s that is 4 PDUs in a row.
    ``slow_down`` halves the rate for a while when the gateway answers
    "flow control"; the full rate comes back once the gateway stays quiet.
    """

    __slots__ = ("base", "rate", "capacity", "tokens", "stamp", "slow_until", "last_cut", "hold")

    def __init__(self, rate: float, now: float, hold: float = 5.0) -> None:
        self.base = float(max(rate, 1))
        self.hold = hold
        self.slow_until = 0.0
        self.last_cut = -1e9
        self._set_rate(self.base)
        self.tokens = self.capacity
        self.stamp = now

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 0.02)

    def take(self, want: int, now: float) -> int:
        if self.rate != self.base and now >= self.slow_until:
            self._set_rate(self.base)
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.capacity:
            tokens = self.capacity
        n = int(tokens)
        if n > want:
            n = want
        self.tokens = tokens - n
        return n

    def give_back(self, n: int) -> None:
        self.tokens = min(self.capacity, self.tokens + n)

    def wait_time(self) -> float:
        # At least 1 ms: waking more often only costs loop iterations and
        # leaves each write with fewer PDUs in it.
        return max(0.001, (1.0 - self.tokens) / self.rate)

    def slow_down(self, now: float) -> None:
        # A full window can come back as flow control all at once; that is
        # one signal, not 64, so the rate is cut at most twice a second.
        if now - self.last_cut >= 0.5:
            self.last_cut = now
            self._set_rate(max(self.base / 64, self.rate / 2, 1.0))
            self.tokens = min(self.tokens, self.capacity)
        self.slow_until = now + self.hold
