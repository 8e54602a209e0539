"""The machine's capacity: how many jobs may run their containers at once.

On AWS a job waits in ``Starting`` until instances are free; here the instances are this machine's
cores. Twenty training jobs started together on two cores would each get a tenth of a core and
thrash the caches; waiting their turn, they finish sooner, and each one's timings stay meaningful.
Endpoints are not counted: their instances sit idle between requests.
"""

from __future__ import annotations

import threading


class Capacity:
    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._running = 0
        self._changed = threading.Condition()

    def acquire(self, cancelled: threading.Event) -> bool:
        """Wait for a free slot; False (and no slot) if ``cancelled`` is set first."""
        with self._changed:
            while self._running >= self.slots:
                if cancelled.is_set():
                    return False
                self._changed.wait(0.2)  # also notices a cancellation
            if cancelled.is_set():
                return False
            self._running += 1
            return True

    def release(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify()

    @property
    def running(self) -> int:
        with self._changed:
            return self._running
