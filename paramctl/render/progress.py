"""The progress bar of long value scans: bytes done, on stderr, only for a person watching.

>>> import io
>>> env = Environment(io.StringIO(), io.StringIO(), stdout_isatty=False, stderr_isatty=False)
>>> with progress(env, 1 << 30, "statistics") as on_progress:
...     print(on_progress)
None
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from paramctl.render.engine import Environment

# Below this much reading a bar would only flicker.
PROGRESS_THRESHOLD = 256 << 20


@contextmanager
def progress(
    env: Environment, total: int, description: str, threshold: int = PROGRESS_THRESHOLD
) -> Iterator[Callable[[int], None] | None]:
    """A byte-counting progress bar on stderr, only for a person watching long work.

    Yields the callback to feed with byte counts, or ``None`` when no bar is shown (stderr
    is not a terminal, or the work is short).
    """
    if not env.stderr_isatty or total < threshold:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=env.err_console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)
