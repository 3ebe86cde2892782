"""The sidecar file (`<db>.gallery-<hash>.bin`, 0600, written to a temp file and renamed): the
codes, ids, scales and error bounds of one model's templates, with a CRC-32, so a cold
`facer identify` maps it instead of reading every template. A missing, truncated, corrupt or
foreign sidecar is rebuilt, never trusted; a stale one is brought up to date from the store
(`GalleryIndex`). Where it lives, and its erasure with a removal, are the store's
(`GallerySource.sidecar_path`, `facer_cli.store.gallery_source.erase_sidecars`).

After a 4096-byte header (magic, then JSON: format, model, dimension, rows, the store's stamp,
the highest id, the largest row norm, the CRC-32 of the rest), page-aligned sections: template
ids, user ids, scales, error bounds, and the codes dimension-major (`Layout`).

**Sealed** (a store read with a master key: `GallerySource.encrypted`), the same content — its
"image", header and sections — is built in anonymous memory and written encrypted (AES-256-GCM)
under the store's sidecar key (`GallerySource.sidecar_key`): a header in the clear (format 3, the
model, the shape, the stamp, the key's fingerprint; no code, id or norm), then the image in chunks
of `SEAL_CHUNK` bytes, each a random nonce, the ciphertext and its tag. Each chunk's associated
data is the sha256 of the clear header with the chunk's number and count, so a sidecar of another
model or stamp, a chunk moved, dropped or changed, or another store's file (another key) does not
open: refused and rebuilt, never garbage. It is decrypted into anonymous memory, never mapped from
a plain file; a removal replaces the key (`facer_cli.store.vault.Vault.rotate_sidecar_key`), so a
copy of a sidecar written before it no longer opens against the store.

The file's space is reserved before it is mapped (`reserve`): a write through a map to a page the
filesystem cannot back (a full disk) would kill the process with SIGBUS; a reservation that does
not fit is an `OSError` (ENOSPC) instead, and the index then keeps the gallery in memory
(`gallery_in_memory`). A temporary file carries the writer's pid in its name and is locked
(`flock`) while it is written; one whose writer is gone is removed the next time an index opens
(`remove_stale_temporaries`)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from facer_cli.gallery.quantise import max_norm, quantise_rows
from facer_cli.gallery.scanner import Int8Scanner
from facer_cli.gallery.search import GalleryError, QuantisedGallery
from facer_cli.store.crypto import NONCE_BYTES, TAG_BYTES, SidecarKey
from facer_cli.store.gallery_source import GallerySource, TemplateRow

FORMAT_VERSION = 2
# A sealed sidecar's header says this format; its image inside is a FORMAT_VERSION one.
SEALED_FORMAT = 3
# Bytes of the image sealed per chunk: a reader holds one chunk's ciphertext beside the image.
SEAL_CHUNK = 8 << 20
MAGIC = b"FACER-GALLERY\n"
HEADER_BYTES = 4096
ALIGN = 4096
# Templates read from the store per batch while a sidecar is written.
READ_CHUNK = 65_536
# Zeros written per call where the filesystem cannot reserve space itself.
ZERO_CHUNK = 1 << 20
# A temporary file whose name carries no pid (an earlier facer's) is removed once unlocked and this old.
UNNAMED_STALE_S = 3600.0


@dataclass(frozen=True)
class Layout:
    """Byte offsets of the sections after the header, each page-aligned."""

    rows: int
    dimension: int

    def sections(self) -> dict[str, tuple[int, np.dtype, tuple[int, ...]]]:
        shapes: list[tuple[str, str, tuple[int, ...]]] = [
            ("template_ids", "<i8", (self.rows,)),
            ("user_ids", "<i8", (self.rows,)),
            ("scales", "<f4", (self.rows,)),
            ("error_norms", "<f4", (self.rows,)),
            ("codes_by_dimension", "i1", (self.dimension, self.rows)),
        ]
        offset = HEADER_BYTES
        placed = {}
        for name, dtype, shape in shapes:
            placed[name] = (offset, np.dtype(dtype), shape)
            offset = _aligned(offset + np.dtype(dtype).itemsize * int(np.prod(shape)))
        return placed

    def total_bytes(self) -> int:
        offset, dtype, shape = self.sections()["codes_by_dimension"]
        return _aligned(offset + dtype.itemsize * int(np.prod(shape)))


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _views(buffer: Any, layout: Layout) -> dict[str, np.ndarray]:
    return {
        name: np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        for name, (offset, dtype, shape) in layout.sections().items()
    }


def _payload_crc(fd: int, start: int, end: int) -> int:
    """CRC-32 read with pread, not through the map: checking must not pull the file into our RSS."""
    crc, position = 0, start
    while position < end:
        block = os.pread(fd, min(16 << 20, end - position), position)
        if not block:
            break
        crc = zlib.crc32(block, crc)
        position += len(block)
    return crc


def write_gallery(source: GallerySource, model: str, fd: int) -> dict[str, Any]:
    """The sidecar's content for `model` into the open file `fd`; returns its header.

    Rows and stamp come from one read transaction, so they describe the same snapshot."""
    with source.read_transaction():
        stamp = source.stamp(model)
        rows, dimension = source.template_shape(model)
        layout = Layout(rows, dimension)
        reserve(fd, layout.total_bytes())
        max_row_norm, max_id = _fill(fd, source, model, layout) if rows else (0.0, 0)
    header = {
        **_image_header(model, layout, stamp, max_id, max_row_norm),
        "crc32": _payload_crc(fd, HEADER_BYTES, layout.total_bytes()),
    }
    os.pwrite(fd, _encode_header(header), 0)
    return header


def reserve(fd: int, size: int) -> None:
    """Make the file `size` bytes, every block allocated, before it is mapped: `OSError` (ENOSPC)
    now rather than SIGBUS at the first write to a page the filesystem cannot back. Where the
    filesystem cannot reserve space itself, zeros are written with plain writes."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except AttributeError:  # no posix_fallocate here (macOS)
        pass
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", -1)):
            raise
    zeros = bytes(min(size, ZERO_CHUNK))
    position = 0
    while position < size:
        position += os.pwrite(fd, zeros[: size - position], position)
    os.ftruncate(fd, size)


def temporary_prefix(target: Path) -> str:
    """The name a temporary file of `target` starts with: hidden, with the writer's pid."""
    return f".{target.name}.{os.getpid()}."


def build_sidecar(source: GallerySource, model: str, target: Path) -> dict[str, Any]:
    """Write the sidecar for `model` atomically (temp file + rename, 0600); return its header. The
    temporary file is locked while it is written (see `remove_stale_temporaries`)."""
    return _write_atomically(target, lambda fd: write_gallery(source, model, fd))


Written = TypeVar("Written")


def _write_atomically(target: Path, write: Callable[[int], Written]) -> Written:
    """`write(fd)` into a new temporary file beside `target` (0600, locked while written), fsynced
    and renamed onto `target`; on any error the temporary file is removed."""
    fd, temp_name = tempfile.mkstemp(prefix=temporary_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        written = write(fd)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp_name)
        raise
    os.close(fd)
    os.replace(temp_name, target)
    return written


def remove_stale_temporaries(target: Path) -> int:
    """Remove the temporary files of `target` (`.<name>.<pid>.<random>.tmp`) that no live process is
    writing: its pid is gone, and no process holds its lock. A file from an earlier facer (no pid in
    its name) goes once unlocked and untouched for `UNNAMED_STALE_S`. Returns how many were removed."""
    removed = 0
    pattern = re.compile(re.escape(f".{target.name}.") + r"(?:(\d+)\.)?[^.]+\.tmp")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        path = target.parent / name
        if match.group(1) is not None and _alive(int(match.group(1))):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer holds it
            if match.group(1) is None and time.time() - os.fstat(fd).st_mtime < UNNAMED_STALE_S:
                continue
            os.unlink(path)
            removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _fill(fd: int, source: GallerySource, model: str, layout: Layout) -> tuple[float, int]:
    with mmap.mmap(fd, layout.total_bytes()) as buffer:
        return _fill_buffer(buffer, source, model, layout)


def _fill_buffer(buffer: mmap.mmap, source: GallerySource, model: str, layout: Layout) -> tuple[float, int]:
    views = _views(buffer, layout)
    start, largest, newest = 0, 0.0, 0
    try:
        for batch in source.template_batches(model, READ_CHUNK):
            stop = start + len(batch)
            if stop > layout.rows:
                raise GalleryError("the store changed while it was read")
            vectors = decode_templates(batch, layout.dimension)
            quantised = quantise_rows(vectors)
            views["template_ids"][start:stop] = [row[0] for row in batch]
            views["user_ids"][start:stop] = [row[1] for row in batch]
            views["scales"][start:stop] = quantised.scales
            views["error_norms"][start:stop] = quantised.error_norms
            views["codes_by_dimension"][:, start:stop] = quantised.codes.T
            largest = max(largest, max_norm(vectors))
            newest = int(batch[-1][0])
            start = stop
    finally:
        del views  # an error's traceback keeps this frame: the map must close all the same
    buffer.flush()
    if start != layout.rows:
        raise GalleryError("the store changed while it was read")
    return largest, newest


def decode_templates(batch: Sequence[TemplateRow], dimension: int) -> np.ndarray:
    """float32 vectors of (id, user_id, dimension, vector) rows, each checked."""
    for row in batch:
        if row[2] != dimension or not isinstance(row[3], bytes) or len(row[3]) != 4 * dimension:
            raise GalleryError(f"template {row[0]} does not hold {dimension} float32 values: the store is corrupt")
    vectors = np.frombuffer(b"".join(row[3] for row in batch), dtype="<f4").reshape(len(batch), dimension)
    if not np.isfinite(vectors).all():
        raise GalleryError("a template holds NaN or infinity: the store is corrupt")
    return vectors.astype(np.float32)


def _encode_header(header: dict[str, Any]) -> bytes:
    text = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
    if len(text) > HEADER_BYTES:
        raise GalleryError("the model fingerprint is too long for the sidecar header")
    return text.ljust(HEADER_BYTES, b"\0")


def read_header(fd: int) -> dict[str, Any] | None:
    """The header, or None when it is not one this version wrote (a sealed sidecar's is not)."""
    return _parse_header(os.pread(fd, HEADER_BYTES, 0), FORMAT_VERSION)


def _parse_header(raw: bytes, format_version: int) -> dict[str, Any] | None:
    if len(raw) != HEADER_BYTES or not raw.startswith(MAGIC):
        return None
    try:
        header = json.loads(raw[len(MAGIC) :].split(b"\n", 1)[0])
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == format_version else None


def sidecar_problem(fd: int, model: str, key: SidecarKey | None = None) -> str | None:
    """Why the sidecar cannot be used for `model` at all, or None when it can (it may be stale).
    With `key`, a sealed sidecar, checked by decrypting it whole."""
    if key is not None:
        opened = open_sealed(fd, model, key)
        if isinstance(opened, str):
            return opened
        opened[0].close()
        return None
    header = read_header(fd)
    if header is None:
        return "no valid header"
    if header.get("model") != model:
        return "made for another model"
    try:
        layout = Layout(int(header["rows"]), int(header["dimension"]))
        size = os.fstat(fd).st_size
        if size != layout.total_bytes():
            return f"truncated or padded: {size} bytes instead of {layout.total_bytes()}"
        if _payload_crc(fd, HEADER_BYTES, size) != header["crc32"]:
            return "checksum mismatch: corrupt"
        if not isinstance(header["stamp"], dict):
            return "malformed header"
        int(header["max_id"]), float(header["max_row_norm"])
    except (KeyError, TypeError, ValueError):
        return "malformed header"
    return None


def gallery_in_memory(source: GallerySource, model: str, threads: int | None) -> tuple[QuantisedGallery, dict]:
    """The gallery and header `write_gallery` and `map_gallery` would make, built in anonymous memory
    (no file): where no file can be written (a full disk), or none may (a master key and no sidecar
    key), the index still answers."""
    image, header = gallery_image(source, model)
    with image:
        return _gallery_of(image, header, threads), header


def gallery_image(source: GallerySource, model: str) -> tuple[mmap.mmap, dict[str, Any]]:
    """What a plain sidecar file holds (header and sections, no CRC-32), for `model`, in anonymous
    memory (the caller closes it), and its header: rows and stamp from one read transaction."""
    with source.read_transaction():
        stamp = source.stamp(model)
        rows, dimension = source.template_shape(model)
        layout = Layout(rows, dimension)
        image = mmap.mmap(-1, layout.total_bytes())
        try:
            max_row_norm, max_id = _fill_buffer(image, source, model, layout) if rows else (0.0, 0)
        except BaseException:
            image.close()
            raise
    header = _image_header(model, layout, stamp, max_id, max_row_norm)
    image[:HEADER_BYTES] = _encode_header(header)
    return image, header


def _image_header(model: str, layout: Layout, stamp: dict, max_id: int, max_row_norm: float) -> dict[str, Any]:
    """The header of a plain sidecar (a file's, or a sealed one's image), without the file's CRC-32."""
    return {
        "format": FORMAT_VERSION,
        "model": model,
        "dimension": layout.dimension,
        "rows": layout.rows,
        "stamp": stamp,
        "max_id": max_id,
        "max_row_norm": max_row_norm,
    }


# -- sealed sidecars (a store read with a master key) --------------------------------------
def build_sealed_sidecar(
    source: GallerySource, model: str, target: Path, key: SidecarKey, threads: int | None
) -> tuple[QuantisedGallery, dict[str, Any], OSError | None]:
    """The gallery of `model` built in memory from the store, and its sidecar written sealed with
    `key` atomically (temp file + rename, 0600): (gallery, header, why no file was written — a
    full disk, a read-only folder — or None). The plain codes never reach a file."""
    image, header = gallery_image(source, model)
    with image:
        problem: OSError | None = None
        try:
            _write_atomically(target, lambda fd: write_sealed(fd, image, header, key))
        except OSError as exc:
            problem = exc
        return _gallery_of(image, header, threads), header, problem


def _sealed_header(header: dict[str, Any], key: SidecarKey, chunk: int) -> dict[str, Any]:
    return {
        "format": SEALED_FORMAT,
        "model": header["model"],
        "dimension": header["dimension"],
        "rows": header["rows"],
        "stamp": header["stamp"],
        "key": key.fingerprint,
        "chunk": chunk,
    }


def _sealed_sizes(rows: int, dimension: int, chunk: int) -> tuple[int, int, int]:
    """(the image's bytes, its chunks, the sealed file's bytes)."""
    image = Layout(rows, dimension).total_bytes()
    chunks = -(-image // chunk)
    return image, chunks, HEADER_BYTES + image + chunks * (NONCE_BYTES + TAG_BYTES)


def _chunk_aad(digest: bytes, index: int, count: int) -> bytes:
    return b"facer/sidecar\0" + digest + index.to_bytes(8, "little") + count.to_bytes(8, "little")


def write_sealed(fd: int, image: mmap.mmap, header: dict[str, Any], key: SidecarKey) -> dict[str, Any]:
    """`image` (from `gallery_image`) sealed with `key` into the open file `fd`, its space reserved
    first (`OSError`, ENOSPC, on a full disk); returns the clear header written."""
    outer = _sealed_header(header, key, SEAL_CHUNK)
    raw = _encode_header(outer)
    size, count, total = _sealed_sizes(int(header["rows"]), int(header["dimension"]), SEAL_CHUNK)
    if len(image) != size:
        raise GalleryError("the sidecar's image does not match its header")
    reserve(fd, total)
    digest = hashlib.sha256(raw).digest()
    sealed = bytearray(min(SEAL_CHUNK, size) + TAG_BYTES)
    position = HEADER_BYTES
    with memoryview(image) as plain, memoryview(sealed) as out:
        for index in range(count):
            start = index * SEAL_CHUNK
            length = min(SEAL_CHUNK, size - start)
            nonce = os.urandom(NONCE_BYTES)
            key.seal_into(
                nonce, plain[start : start + length], _chunk_aad(digest, index, count), out[: length + TAG_BYTES]
            )
            _pwrite_all(fd, nonce, position)
            _pwrite_all(fd, out[: length + TAG_BYTES], position + NONCE_BYTES)
            position += NONCE_BYTES + length + TAG_BYTES
    _pwrite_all(fd, raw, 0)
    return outer


def _pwrite_all(fd: int, data: bytes | memoryview, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view, position = view[written:], position + written


def open_sealed(fd: int, model: str, key: SidecarKey) -> tuple[mmap.mmap, dict[str, Any]] | str:
    """A sealed sidecar's image decrypted into anonymous memory (the caller closes it) and its
    header; or why it cannot be used: not sealed, another model, another key (written before a
    removal, by another store, or under another master key), the wrong size, or a chunk that does
    not decrypt (damaged, or moved)."""
    raw = os.pread(fd, HEADER_BYTES, 0)
    outer = _parse_header(raw, SEALED_FORMAT)
    if outer is None:
        return "not a sealed sidecar"
    if outer.get("model") != model:
        return "made for another model"
    if outer.get("key") != key.fingerprint:
        return "sealed with another key (written before a removal, by another store, or under another master key)"
    try:
        rows, dimension, chunk = int(outer["rows"]), int(outer["dimension"]), int(outer["chunk"])
        if rows < 0 or dimension < 0 or chunk <= 0 or not isinstance(outer["stamp"], dict):
            return "malformed header"
    except (KeyError, TypeError, ValueError):
        return "malformed header"
    size, count, total = _sealed_sizes(rows, dimension, chunk)
    if os.fstat(fd).st_size != total:
        return f"truncated or padded: {os.fstat(fd).st_size} bytes instead of {total}"
    digest = hashlib.sha256(raw).digest()
    image = mmap.mmap(-1, size)
    sealed = bytearray(min(chunk, size) + TAG_BYTES)
    position, opened = HEADER_BYTES, True
    with memoryview(image) as plain, memoryview(sealed) as into:
        for index in range(count):
            start = index * chunk
            length = min(chunk, size - start)
            nonce = os.pread(fd, NONCE_BYTES, position)
            body = into[: length + TAG_BYTES]
            if len(nonce) != NONCE_BYTES or os.preadv(fd, [body], position + NONCE_BYTES) != len(body):
                opened = False
            elif not key.open_into(nonce, body, _chunk_aad(digest, index, count), plain[start : start + length]):
                opened = False
            del body
            if not opened:
                break
            position += NONCE_BYTES + length + TAG_BYTES
    if not opened:
        image.close()
        return "does not decrypt: damaged"
    header = _parse_header(image[:HEADER_BYTES], FORMAT_VERSION)
    if header is None or any(header.get(name) != outer[name] for name in ("model", "rows", "dimension", "stamp")):
        image.close()
        return "its content does not match its header"
    try:
        int(header["max_id"]), float(header["max_row_norm"])
    except (KeyError, TypeError, ValueError):
        image.close()
        return "malformed header"
    return image, header


def sealed_gallery(
    fd: int, model: str, key: SidecarKey, threads: int | None
) -> tuple[QuantisedGallery, dict[str, Any]] | str:
    """The gallery of a sealed sidecar and its header (decrypted in memory, which is then let go:
    the scanner keeps its own copy of the codes), or why it cannot be used (`open_sealed`)."""
    opened = open_sealed(fd, model, key)
    if isinstance(opened, str):
        return opened
    image, header = opened
    with image:
        return _gallery_of(image, header, threads), header


def map_gallery(fd: int, header: dict[str, Any], threads: int | None) -> QuantisedGallery:
    """The gallery of a checked sidecar: the scanner packs its own copy of the codes, the small
    per-row arrays are copied, and the map is closed — the process keeps nothing of the file, so
    `erase_sidecars` can wipe it under a running index."""
    layout = Layout(int(header["rows"]), int(header["dimension"]))
    with mmap.mmap(fd, layout.total_bytes(), access=mmap.ACCESS_READ) as buffer:
        return _gallery_of(buffer, header, threads)


def _gallery_of(buffer: mmap.mmap, header: dict[str, Any], threads: int | None) -> QuantisedGallery:
    layout = Layout(int(header["rows"]), int(header["dimension"]))
    views = _views(buffer, layout)
    gallery = QuantisedGallery(
        template_ids=views["template_ids"].copy(),
        user_ids=views["user_ids"].copy(),
        scales=views["scales"].copy(),
        error_norms=views["error_norms"].copy(),
        codes_by_dimension=np.empty((layout.dimension, 0), np.int8),  # held by the scanner only
        max_row_norm=float(header["max_row_norm"]),
    )
    if layout.rows:
        gallery.scanner = Int8Scanner(views["codes_by_dimension"], threads)
    del views
    return gallery
