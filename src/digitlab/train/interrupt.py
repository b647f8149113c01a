"""Ctrl-C while a checkpoint is written: finish the writes, then stop.

Windows: signal.signal(SIGINT) works there too (Python turns the console's Ctrl-C event into
SIGINT in the main thread), and nothing here is POSIX-only."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def deferred_interrupt():
    """Hold back Ctrl-C (SIGINT) until the block is done, then raise it: a checkpoint being
    written is finished first. Outside the main thread signals cannot be caught; no effect."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
