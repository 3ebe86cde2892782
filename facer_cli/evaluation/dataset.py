"""Labelled faces for `facer evaluate`: identity folders or a CSV of pairs.

- **Identity folders**: DATA holds one subfolder per identity; every image
  under a subfolder (searched recursively) is that identity. Every unordered
  pair of images is a pair: genuine within a folder, impostor across folders.
- **CSV of pairs**: rows `path_a,path_b,same`, where `same` is 1/0, yes/no or
  true/false (any case). Paths are relative to the CSV's folder (absolute
  paths work too). A first row whose third field is `same` is a header; blank
  lines and lines starting with `#` are skipped.

Each distinct image appears once in `images`; pairs refer to it by index.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facer_cli.errors import InputError
from facer_cli.sources.images import is_image_path

TRUE_WORDS = frozenset({"1", "yes", "true"})
FALSE_WORDS = frozenset({"0", "no", "false"})


def parse_same(text: str) -> bool | None:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


@dataclass
class Dataset:
    """Distinct images, their identity (folders) and the pairs to score."""

    source: Path
    kind: str  # "folders" or "csv"
    images: list[Path]
    labels: np.ndarray | None = None  # identity index per image (folders only)
    identities: list[str] = field(default_factory=list)
    pair_a: np.ndarray | None = None  # CSV only: explicit pairs
    pair_b: np.ndarray | None = None
    pair_same: np.ndarray | None = None
    ignored: list[Path] = field(default_factory=list)

    @property
    def by_identity(self) -> dict[str, list[int]]:
        if self.labels is None:
            return {}
        return {name: [int(i) for i in np.nonzero(self.labels == k)[0]] for k, name in enumerate(self.identities)}

    @property
    def pair_counts(self) -> tuple[int, int]:
        """(genuine, impostor) pairs."""
        if self.labels is not None:
            sizes = np.bincount(self.labels, minlength=len(self.identities))
            genuine = int((sizes * (sizes - 1) // 2).sum())
            n = len(self.images)
            return genuine, n * (n - 1) // 2 - genuine
        same = self.pair_same if self.pair_same is not None else np.zeros(0, bool)
        return int(same.sum()), int((~same).sum())

    def to_dict(self) -> dict:
        genuine, impostor = self.pair_counts
        data = {
            "source": str(self.source),
            "kind": self.kind,
            "images": len(self.images),
            "genuine_pairs": genuine,
            "impostor_pairs": impostor,
        }
        if self.kind == "folders":
            data["identities"] = {name: len(rows) for name, rows in self.by_identity.items()}
        if self.ignored:
            data["ignored"] = [str(p) for p in self.ignored]
        return data


def load_dataset(path: Path | str) -> Dataset:
    """Identity folders or a CSV of pairs; `InputError` with one line saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        return load_folders(path)
    if path.is_file():
        return load_pairs_csv(path)
    raise InputError(f"{path}: no such folder or CSV file")


def load_folders(root: Path) -> Dataset:
    images: list[Path] = []
    labels: list[int] = []
    identities: list[str] = []
    ignored: list[Path] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            ignored.append(entry)  # loose files have no identity
            continue
        found = sorted(p for p in entry.rglob("*") if p.is_file() and is_image_path(p))
        if not found:
            continue
        identities.append(entry.name)
        images.extend(found)
        labels.extend([len(identities) - 1] * len(found))
    if not images:
        raise InputError(
            f"{root}: no identity folders with images (expected one subfolder per identity, "
            "or a CSV of pairs path_a,path_b,same)"
        )
    return Dataset(root, "folders", images, np.array(labels, dtype=np.int64), identities, ignored=ignored)


def load_pairs_csv(path: Path) -> Dataset:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file (expected rows path_a,path_b,same)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    base = path.parent
    index: dict[Path, int] = {}
    images: list[Path] = []
    pair_a: list[int] = []
    pair_b: list[int] = []
    pair_same: list[bool] = []
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise InputError(f"{path}: not a valid CSV file ({exc})") from None
    first = True
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if first and len(cells) == 3 and cells[2].lower() == "same":
            first = False
            continue  # header
        first = False
        if len(cells) != 3:
            raise InputError(
                f"{path} line {line}: expected 3 columns path_a,path_b,same, got {len(cells)}: {','.join(row)!r}"
            )
        same = parse_same(cells[2])
        if same is None:
            raise InputError(f"{path} line {line}: same = {cells[2]!r} is not one of 1/0, yes/no, true/false")
        ids = []
        for cell in cells[:2]:
            if not cell:
                raise InputError(f"{path} line {line}: an image path is empty")
            image = Path(cell).expanduser()
            image = image if image.is_absolute() else base / image
            if not image.is_file():
                raise InputError(f"{path} line {line}: {cell}: no such file (relative paths start at {base})")
            key = image.resolve()
            if key not in index:
                index[key] = len(images)
                images.append(image)
            ids.append(index[key])
        pair_a.append(ids[0])
        pair_b.append(ids[1])
        pair_same.append(same)
    if not pair_a:
        raise InputError(f"{path}: no pairs (expected rows path_a,path_b,same)")
    return Dataset(
        path,
        "csv",
        images,
        pair_a=np.array(pair_a, dtype=np.int64),
        pair_b=np.array(pair_b, dtype=np.int64),
        pair_same=np.array(pair_same, dtype=bool),
    )
