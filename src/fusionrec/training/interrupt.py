"""Stopping a training run cleanly: a flag the trainer reads between steps, raised by SIGINT / SIGTERM.

The first signal only raises the flag (the trainer finishes its step, restores the best weights and returns, so the
caller still evaluates and saves); a second one is handled as if fusionrec had never been there: the previous handler
is put back and the signal delivered again (Ctrl-C twice raises KeyboardInterrupt, a second SIGTERM terminates).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set once a stop is asked for; ``reason`` names why (``"SIGINT"``, ``"SIGTERM"``, or the caller's word)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str = "requested") -> None:
        if self.reason is None:
            self.reason = reason

    def clear(self) -> None:
        self.reason = None


@contextmanager
def stop_on_signals(stop: StopRequest, signals: tuple[int, ...] = STOP_SIGNALS, log=None) -> Iterator[StopRequest]:
    """While the block runs, the first of ``signals`` raises ``stop``; the previous handlers come back afterwards.

    Outside the main thread (where Python cannot install handlers) this does nothing. A signal the process ignores
    (SIG_IGN) or one whose handler was not installed from Python stays as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    log = log or _stderr
    previous = {}
    for signum in signals:
        handler = signal.getsignal(signum)
        if handler is not None and handler is not signal.SIG_IGN:
            previous[signum] = handler

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    def on_signal(signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if stop.requested:  # the second one: abort as if we were not here
            restore()
            signal.raise_signal(signum)
            return
        stop.request(name)
        log(f"{name}: stopping after this step, then evaluating and saving the best weights so far "
            "(send it again to abort at once)")

    for signum in list(previous):
        signal.signal(signum, on_signal)
    try:
        yield stop
    finally:
        restore()


def _stderr(msg: str) -> None:
    print(f"\n{msg}", file=sys.stderr, flush=True)
