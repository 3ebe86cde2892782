"""Ctrl-C, from the console script's first line to the command's last.

While modules load, arguments are parsed or the process winds down, an interrupt exits at once
with one line and 130 (nothing is open that needs closing: the store survives even SIGKILL).
While a command runs (`unwinding_on_interrupt`), it raises KeyboardInterrupt instead, so
transactions roll back and temporary files are removed; the command's error handling prints the
line (`facer_cli.cli.app.FacerGroup`). One that lands inside an import (a native module's
initialisation may abort on an exception) or where Python cannot raise (a weakref callback,
`__del__`) exits at once too.

Both the console script (`facer_cli.entry`) and the command line (`facer_cli.cli.app`) use this
module; it imports nothing heavy: keep it that way.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

# No `typing` import: it would lengthen the start-up before the handler is installed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Iterator, NoReturn

EXIT_INTERRUPTED = 130
_installed = False
_unwinding = False
received = False


def exit_interrupted() -> NoReturn:
    """One line on stderr, exit 130, now."""
    # Where fd 2 really goes, even while a decode has it captured (`facer_cli.sources.decoder_chatter`; it
    # may be half loaded, when the interrupt came while it was being imported).
    original_stderr_fd = getattr(sys.modules.get("facer_cli.sources.decoder_chatter"), "original_stderr_fd", None)
    try:
        os.write(original_stderr_fd() if original_stderr_fd else 2, b"interrupted\n")
    finally:
        os._exit(EXIT_INTERRUPTED)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global received, _unwinding
    received = True
    if _unwinding and not _importing(frame):
        _unwinding = False  # a second Ctrl-C while unwinding exits at once
        raise KeyboardInterrupt
    exit_interrupted()


def _importing(frame: FrameType | None) -> bool:
    # A KeyboardInterrupt inside an import can reach a native module's initialisation, and some
    # of those abort the process on any Python exception (onnx's nanobind: "terminate called
    # after throwing an instance of 'nanobind::python_error'", exit -6, or a crash).
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    # A KeyboardInterrupt raised while a weakref callback or `__del__` ran (one of importlib's
    # module-lock callbacks, during an import inside a command) cannot unwind anything: Python
    # would print "Exception ignored" with a traceback and let the command go on.
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        exit_interrupted()
    _default_unraisablehook(unraisable)


_default_unraisablehook = sys.unraisablehook


def install() -> None:
    """Ctrl-C exits at once with one line, until `unwinding_on_interrupt` says otherwise."""
    global _installed
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _on_unraisable
    _installed = True


def installed() -> bool:
    return _installed


@contextmanager
def unwinding_on_interrupt() -> Iterator[None]:
    """Inside: Ctrl-C raises KeyboardInterrupt (when `install` ran; else Python's default applies)."""
    global _unwinding
    _unwinding = _installed
    try:
        yield
    finally:
        _unwinding = False


def stop_unwinding() -> None:
    """From now on Ctrl-C exits at once (called once an interrupt is being reported)."""
    global _unwinding
    _unwinding = False
