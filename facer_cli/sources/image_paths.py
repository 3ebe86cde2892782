"""Which image files a list of paths names: the one folder policy every command follows.

- A file named directly is always taken, in the order given — also a missing or
  unreadable one, which then gets its own error row while the others go on.
- A folder gives the images inside it (recursively, by image suffix, sorted by
  path); `per_folder` keeps the first ones of each folder (a template takes
  `max_images`; `inspect` shows them all).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from facer_cli.errors import InputError
from facer_cli.sources.images import is_image_path


def images_in_folder(folder: Path) -> list[Path]:
    """Image files below a folder, sorted by path. A folder that cannot be listed (no permission)
    is kept as an entry of its own, so it gets a "cannot read" row instead of vanishing."""
    found: list[Path] = []
    unreadable: list[Path] = []

    def note(error: OSError) -> None:
        unreadable.append(Path(error.filename))

    for root, _dirs, files in os.walk(folder, onerror=note, followlinks=False):
        found.extend(Path(root) / name for name in files if is_image_path(Path(name)))
    return sorted([path for path in found if _is_file(path)] + unreadable)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the system allows
        return False


def left_out(paths: Iterable[Path | str], per_folder: int) -> list[tuple[str, int, list[Path]]]:
    """Each folder named that holds more than `per_folder` images: the folder as given, how many it
    holds, and the images `image_paths` leaves out of it."""
    found = []
    for raw in paths:
        if Path(raw).is_dir():
            images = images_in_folder(Path(raw))
            if len(images) > per_folder:
                found.append((str(raw), len(images), images[per_folder:]))
    return found


def image_paths(paths: Iterable[Path | str], per_folder: int | None = None) -> list[Path]:
    """Files named directly (all, in order) plus the images of each folder (first `per_folder` of each)."""
    named = [Path(raw) for raw in paths]
    found: list[Path] = []
    for path in named:
        if path.is_dir():
            found.extend(images_in_folder(path)[:per_folder])
        else:
            found.append(path)
    if not found:
        raise InputError("no image files found in " + ", ".join(str(p) for p in named))
    return found
