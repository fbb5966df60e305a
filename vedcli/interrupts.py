"""Ctrl-C in the `ved` command, at any moment.

While ved starts (Python imports torch, a model is read: nothing is written yet), Ctrl-C ends the process at once:
"Interrupted." on stderr and exit code 130, whatever Python was doing. A KeyboardInterrupt raised in the middle of an
import can be lost (a finaliser or a library that catches everything swallows it, and the run goes on) or turn into
another error; ending the process cannot. Once a command starts its work, Ctrl-C is Python's KeyboardInterrupt
again, so the command stops cleanly: output files closed with whole lines kept, training saving its last step.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that Ctrl-C ended

_previous: list[Any] = []  # the handler `starting` replaced, restored by `started`


def starting() -> None:
    """From now until `started`, Ctrl-C ends the process at once. Does nothing outside the main thread (signal
    handlers live there) or when SIGINT is ignored (a background job: it stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if current in (signal.SIG_IGN, _exit_at_once):
        return
    _previous[:] = [current]
    signal.signal(signal.SIGINT, _exit_at_once)


def started() -> None:
    """Ctrl-C raises KeyboardInterrupt again (the handler from before `starting`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _exit_at_once:
        previous = _previous[0] if _previous and _previous[0] is not None else None  # None: set outside Python
        signal.signal(signal.SIGINT, previous or signal.default_int_handler)


def _exit_at_once(signum: int, frame: Any) -> None:
    try:
        os.write(2, b"Interrupted.\n")
    except OSError:
        pass
    os._exit(EXIT_INTERRUPTED)
