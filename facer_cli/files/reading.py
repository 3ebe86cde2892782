"""Read a user-named file without hanging, filling memory, or crashing on special files.

`Path.read_bytes()` blocks forever on a FIFO, reads `/dev/zero` until memory runs
out, and gives raw OS messages. `read_regular_file` opens without blocking, looks
at what the path really is (fstat, after following symlinks) and reads at most
`max_bytes`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from facer_cli.errors import FacerError

# Largest file facer reads as one input; a suggested default for a `max_file_bytes` setting.
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024

_KIND_NAMES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: Path | str, max_bytes: int, error_cls: type[FacerError]) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, or one `error_cls` naming the path."""
    fd = _open_without_blocking(Path(path), error_cls)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            if not os.access(path, os.R_OK | os.X_OK):
                raise error_cls(f"{path}: cannot read (permission denied)")
            raise error_cls(f"{path}: is a folder, not a regular file")
        if not stat.S_ISREG(info.st_mode):
            raise error_cls(f"{path}: not a regular file ({_kind_of(info.st_mode)})")
        if info.st_size > max_bytes:
            raise error_cls(_too_large(path, info.st_size, max_bytes))
        return _read_at_most(fd, Path(path), max_bytes, error_cls)
    finally:
        os.close(fd)


def _open_without_blocking(path: Path, error_cls: type[FacerError]) -> int:
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise error_cls(f"{path}: no such file") from None
    except OSError as exc:
        raise error_cls(_os_error_message(path, exc)) from None


def _read_at_most(fd: int, path: Path, max_bytes: int, error_cls: type[FacerError]) -> bytes:
    """Read to the end, but never past `max_bytes` (a file may grow after fstat)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK_BYTES, max_bytes + 1 - total))
        except OSError as exc:
            raise error_cls(_os_error_message(path, exc)) from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise error_cls(_too_large(path, None, max_bytes))


def _os_error_message(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: cannot read (permission denied)"
    if exc.errno == errno.ENXIO:  # opening a Unix socket
        return f"{path}: not a regular file (a socket)"
    if exc.errno == errno.ELOOP:
        return f"{path}: cannot read (too many levels of symbolic links)"
    return f"{path}: cannot read ({exc.strerror or exc})"


def _kind_of(mode: int) -> str:
    for test, name in _KIND_NAMES:
        if test(mode):
            return name
    return "not a file"


def _too_large(path: Path | str, size: int | None, max_bytes: int) -> str:
    size_text = f"{size:,} bytes" if size is not None else "larger than that"
    return f"{path}: the file is {size_text}, over the max_file_bytes limit of {max_bytes:,} bytes"
