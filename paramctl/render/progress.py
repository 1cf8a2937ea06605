"""The progress bar of long work on values: bytes done of bytes total, the rate and the time
left, on stderr, only for a person watching.

The bar appears once the work has run for :data:`DELAY` seconds, so quick runs print
nothing, and it is erased when the work ends. Until the first bytes are done (or the work
says it has begun) it pulses: loading torch takes a second or more. One bar per command.

>>> import io
>>> env = Environment(io.StringIO(), io.StringIO(), stdout_isatty=False, stderr_isatty=False)
>>> with progress(env, 1 << 30, "statistics") as on_progress:
...     print(on_progress)
None
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from paramctl.render.engine import Environment

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, Task

# Below this much work a bar would only flicker.
PROGRESS_THRESHOLD = 16 << 20
# Work that ends sooner shows no bar at all.
DELAY = 0.5


def _speed_column() -> ProgressColumn:
    """The rate in the binary units the sizes use (Rich's own column speaks MB/s)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from paramctl.units import format_bytes

    class BinarySpeed(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            rate = "?" if speed is None else f"{format_bytes(int(speed))}/s"
            return Text(rate, style="progress.data.speed")

    return BinarySpeed()


class Bar:
    """A Rich progress bar that starts after ``delay`` seconds unless the work is done."""

    def __init__(self, env: Environment, total: int, description: str, delay: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        # The console says it is a terminal because the environment found stderr to be one.
        console = Console(file=env.stderr, stderr=True, force_terminal=env.stderr_isatty, highlight=False)
        self.bar: Progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _speed_column(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        # Not started, the bar pulses: it waits (for torch to load, for the first bytes).
        self.task = self.bar.add_task(description, total=total, start=False)
        self._started = False
        self._lock = threading.Lock()
        self._state = "waiting"  # then "shown", and "done" at the end
        self._timer = threading.Timer(delay, self._show)
        self._timer.daemon = True

    def _show(self) -> None:
        with self._lock:
            if self._state == "waiting":
                self.bar.start()
                self._state = "shown"

    def __call__(self, done: int) -> None:
        """Count ``done`` more bytes."""
        self._start()
        self.bar.advance(self.task, done)

    def describe(self, text: str) -> None:
        """Say what the work does now it has begun (after ``loading torch``: ``writing``)."""
        self.bar.update(self.task, description=text)
        self._start()

    def _start(self) -> None:
        # The rate and the time left count from here, not from the wait before.
        if not self._started:
            self.bar.start_task(self.task)
            self._started = True

    def __enter__(self) -> Bar:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            if self._state == "shown":
                self.bar.stop()
            self._state = "done"


@contextmanager
def progress(
    env: Environment,
    total: int,
    description: str,
    threshold: int = PROGRESS_THRESHOLD,
    delay: float | None = None,
) -> Iterator[Bar | None]:
    """A byte-counting progress bar on stderr, only for a person watching long work.

    Yields the bar, a callback to feed with byte counts (``describe`` changes its text), or
    ``None`` when no bar can be shown (stderr is not a terminal, or there is less than
    ``threshold`` to do).
    """
    if not env.stderr_isatty or total < threshold:
        yield None
        return
    with Bar(env, total, description, DELAY if delay is None else delay) as shown:
        yield shown
