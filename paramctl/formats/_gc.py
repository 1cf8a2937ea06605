"""Pausing the garbage collector while a reader builds many objects, kept apart from the
pickle readers that use it too, so that the registry can pause it for any format without
importing them.

>>> import gc
>>> with collection_paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the garbage collector for a block that builds many objects and no cycles.

    Reading a checkpoint makes millions of small objects (directory entries, unpickled
    records, entries); the collector would walk the growing heap again and again (it
    halves the time to read a 100,000-tensor file).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
