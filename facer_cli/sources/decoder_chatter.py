"""Decoder chatter: what C decoders print on file descriptor 2, captured while they run.

libjpeg, libpng and OpenCV write warnings ("Corrupt JPEG data: ...") straight to fd 2; facer
turns them into its own errors instead (`facer_cli.sources.images`). fd 2 is one per process, so
decodes share a capture window: the first points fd 2 at an in-memory file, later ones join,
and the last one out puts fd 2 back and writes back what was not decoder chatter (another
thread's log line). Decodes therefore run side by side, each on its own core.

A decode reads what was written while it ran. Nothing (the usual case) means it was clean:
decoders write as they go, before they return. Chatter written while it ran alone is its
own. Chatter written while another decode ran too could be either's: that decode runs again
alone (`exclusive`), so every verdict is the decode's own. A window takes no newcomers once
it is `WINDOW_S` old, so other output is held back at most that long plus one decode.

This module imports nothing heavy: `facer_cli.entry` asks it where the terminal's fd 2 is.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")

WINDOW_S = 0.25
MAX_CHATTER_BYTES = 65536
MAX_HELD_BYTES = 1 << 20  # other output held in one window, written back when it closes

_CHATTER = re.compile(
    r"^(\[ ?(ERROR|WARN|INFO|DEBUG)|Corrupt JPEG data|Premature end of JPEG|Invalid |Inconsistent progression|"
    r"Unsupported |Bogus |Application transferred|Warning|libpng |libtiff|TIFF|JPEG|WebP|GIF|.*: (Warning|Error)|"
    r"OpenCV)",
)


class _Window:
    """fd 2 pointed at an in-memory file, for as long as some decode runs."""

    def __init__(self) -> None:
        if sys.stderr is not None:
            sys.stderr.flush()
        self.capture = _anonymous_file()
        self.saved = _duplicate_stderr()
        os.dup2(self.capture, 2)
        self.opened = time.monotonic()
        self.running = 0
        self.joined = 0  # decodes that ever joined: a decode that sees it unchanged ran alone

    def written(self) -> int:
        return os.fstat(self.capture).st_size

    def read(self, start: int, end: int, limit: int) -> str:
        return os.pread(self.capture, min(end - start, limit), start).decode("utf-8", "replace")

    def close(self) -> None:
        try:
            _restore_stderr(self.saved)
            _, other = split_chatter(self.read(0, self.written(), MAX_HELD_BYTES))
            if other and self.saved is not None:
                os.write(2, other.encode())
        finally:
            if self.saved is not None:
                os.close(self.saved)
            os.close(self.capture)


_state = threading.Condition()
_window: _Window | None = None
_exclusive = False
_exclusive_waiting = 0  # decodes waiting to run alone go first: no new window opens meanwhile


def original_stderr_fd() -> int:
    """Where fd 2 pointed before a capture window opened (the terminal), for last words."""
    window = _window
    if window is not None and window.saved is not None:
        return window.saved
    return 2


def run_captured(work: Callable[[], T]) -> tuple[T, list[str]]:
    """`work()` (a decode) with fd 2 captured; its result and the decoder chatter it caused."""
    result, chatter, certain = _run_shared(work)
    if certain:
        return result, chatter
    return _run_alone(work)


def _run_shared(work: Callable[[], T]) -> tuple[T, list[str], bool]:
    global _window
    with _state:
        while (
            _exclusive or _exclusive_waiting or (_window is not None and time.monotonic() - _window.opened > WINDOW_S)
        ):
            _state.wait()
        if _window is None:
            _window = _Window()
        window = _window
        alone_at_start = window.running == 0
        window.running += 1
        window.joined += 1
        joined = window.joined
        start = window.written()
    try:
        result = work()
    finally:
        with _state:
            end = window.written()
            chatter, _ = split_chatter(window.read(start, end, MAX_CHATTER_BYTES)) if end > start else ([], "")
            certain = not chatter or (alone_at_start and window.joined == joined)
            window.running -= 1
            if window.running == 0:
                _window = None
                _state.notify_all()
                window.close()
    return result, chatter, certain


def _run_alone(work: Callable[[], T]) -> tuple[T, list[str]]:
    global _exclusive, _exclusive_waiting
    with _state:
        _exclusive_waiting += 1
        while _exclusive or _window is not None:
            _state.wait()
        _exclusive_waiting -= 1
        _exclusive = True
    try:
        window = _Window()
        try:
            result = work()
        finally:
            chatter, _ = split_chatter(window.read(0, window.written(), MAX_CHATTER_BYTES))
            window.close()
    finally:
        with _state:
            _exclusive = False
            _state.notify_all()
    return result, chatter


def split_chatter(text: str) -> tuple[list[str], str]:
    """Decoder lines, and the rest as text (to be written back where it was going)."""
    chatter: list[str] = []
    other: list[str] = []
    previous = other
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith((">", " ", "\t")):  # OpenCV continues an assertion message on lines like these
            previous.append(line)
            continue
        previous = chatter if _CHATTER.match(line) else other
        previous.append(line)
    return chatter, "".join(line + "\n" for line in other)


def _duplicate_stderr() -> int | None:
    try:
        return os.dup(2)
    except OSError:  # a daemon started with fd 2 closed
        return None


def _restore_stderr(saved: int | None) -> None:
    if saved is None:
        os.close(2)
    else:
        os.dup2(saved, 2)


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("facer-decoder-stderr", getattr(os, "MFD_CLOEXEC", 0))
    fd, path = tempfile.mkstemp(prefix="facer-decoder-stderr-")
    os.unlink(path)
    return fd
