"""Rate-limited :class:`~pilotkit.events.StageProgress` events."""

from __future__ import annotations

import time
from collections.abc import Callable

from pilotkit.api import Event, StageProgress


class Progress:
    """Emits ``StageProgress`` for one step of staging, at most every 1% or 0.5 s.

    The first update and the last (``done == total``) are always emitted.
    """

    def __init__(
        self,
        emit: Callable[[Event], None],
        pilot: str,
        image: str,
        total: int | None,
        message: str,
        *,
        interval: float = 0.5,
        fraction: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._pilot = pilot
        self._image = image
        self.total = total
        self.message = message
        self._interval = interval
        self._step = max(1, int(total * fraction)) if total else None
        self._clock = clock
        self._last_done: int | None = None
        self._last_time = 0.0
        self.emitted = 0

    def update(self, done: int) -> None:
        """Report ``done`` bytes so far; emitted only when due."""
        now = self._clock()
        if done == self._last_done:
            return
        due = (
            self._last_done is None
            or done == self.total
            or (self._step is not None and done - self._last_done >= self._step)
            or now - self._last_time >= self._interval
        )
        if not due:
            return
        self._last_done = done
        self._last_time = now
        self.emitted += 1
        self._emit(
            StageProgress(pilot=self._pilot, image=self._image, done=done, total=self.total, message=self.message)
        )
