"""Files facer writes (templates, embeddings, settings): private, whole, and never over another file.

Written to a temporary file beside the target (0600), flushed to disk, then renamed
into place: a full disk or a crash leaves no partial file, and a reader never sees one.
An existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from facer_cli.errors import OutputError, OutputExistsError


def with_suffix(path: Path | str, suffix: str) -> Path:
    """The path with `suffix` added when it has another (so the path reported is the path written)."""
    path = Path(path)
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


def write_private(path: Path | str, data: bytes, *, overwrite: bool = False) -> Path:
    """Write `data` to `path` atomically with mode 0600; `OutputError` if it exists (unless `overwrite`)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
