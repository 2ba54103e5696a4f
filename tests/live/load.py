"""Constant request load through the edge, bounded in count and time, on 127.0.0.1 only.

Used by the deploy tests and the deploy benchmark: every request is recorded with its time,
outcome and the version that answered, so a test can count failures, measure the longest error
window and see when a new version took over.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Sample:
    at: float  # when the answer (or the error) came
    ok: bool
    status: int
    version: str
    error: str = ""
    sent: float = 0.0  # when the request went out


@dataclass
class Load:
    """`threads` workers, each pacing itself to rate/threads requests per second."""

    send: callable  # () -> (status, version); raises on transport errors
    rate: float = 60.0
    threads: int = 6
    max_seconds: float = 600.0
    max_requests: int = 60_000
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _work(self) -> None:
        interval = self.threads / self.rate
        started = time.monotonic()
        next_at = started
        while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
            with self._lock:
                if len(self.samples) >= self.max_requests:
                    return
            sent = time.monotonic()
            try:
                status, version = self.send()
                sample = Sample(time.monotonic(), 200 <= status < 400, status, version, sent=sent)
            except Exception as err:  # noqa: BLE001 - every transport error is a failed request
                sample = Sample(time.monotonic(), False, 0, "", f"{type(err).__name__}: {err}", sent=sent)
            with self._lock:
                self.samples.append(sample)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> "Load":
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    # -- results -------------------------------------------------------------------------------
    def between(self, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if start <= s.at <= end]

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def achieved_rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        times = sorted(s.at for s in self.samples)
        return (len(times) - 1) / (times[-1] - times[0])

    def resolution(self) -> float:
        """Seconds between two requests: how finely this load can see a window open and close."""
        rate = self.achieved_rate()
        return 1.0 / rate if rate else self.threads / self.rate

    def longest_error_window(self) -> float:
        """Seconds from the first failure of a streak to the sending of the request that succeeded
        next, the longest streak. The window ends when the service took a request again, so a slow
        answer on a busy machine does not stretch it."""
        longest, streak_start = 0.0, None
        for sample in sorted(self.samples, key=lambda s: s.at):
            if not sample.ok and streak_start is None:
                streak_start = sample.at
            elif sample.ok and streak_start is not None:
                longest = max(longest, sample.sent - streak_start)
                streak_start = None
        if streak_start is not None:
            longest = max(longest, self.samples[-1].at - streak_start)
        return longest
