"""Frame sources: image files and folders (cameras and video come through OpenCV)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from facer_cli.errors import InputError
from facer_cli.images import is_image_path


def image_files(paths: Iterable[Path | str], limit: int | None = None) -> list[Path]:
    """Files named directly, plus the images inside folders (recursively, sorted by path).

    A file named directly is always taken (a bad one gets its own error later);
    inside folders only names with an image suffix count. `limit` keeps the first ones.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p)))
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    if not found:
        raise InputError("no image files found in " + ", ".join(str(p) for p in paths))
    return found[:limit] if limit is not None else found
