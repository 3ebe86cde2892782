"""`GalleryIndex`: one model's templates, searchable, kept in step with the store.

The store is the only truth. Its stamp of the model's templates (`GallerySource.stamp`: per model,
inserts, deletes and reused ids, counted by the store) tells in one look-up whether and how the
templates changed. New templates join a small float32 delta scanned exactly; removed ones are
masked; only when the delta or the mask grows large is the index rebuilt and its sidecar
rewritten. Every search reads its rows in one read transaction with the stamp, so it never
mixes two states of the store.

With a master key (`GallerySource.encrypted`) no int8 code is written in the clear anywhere: the
sidecar is sealed with the store's sidecar key, read in the same read transaction as the stamp
(`sidecar.build_sealed_sidecar`, `sidecar.sealed_gallery`); with no sidecar key, no file, or a
full disk, the index is kept in memory — never in a temporary file."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import numpy as np

from facer_cli.gallery.search import Candidate, Delta, QuantisedGallery, SearchStats, _Resync, search_batch
from facer_cli.gallery.sidecar import (
    build_sealed_sidecar,
    build_sidecar,
    decode_templates,
    gallery_in_memory,
    map_gallery,
    read_header,
    remove_stale_temporaries,
    sealed_gallery,
    sidecar_problem,
    write_gallery,
)
from facer_cli.store.gallery_source import GallerySource, SQLiteGallerySource

log = logging.getLogger("facer.gallery")
# The errors of a full disk or quota: the sidecar is only a cache, so the index goes on without it.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

# The delta (new templates, scanned exactly) and the masked (removed) rows may grow to this
# before the index is rebuilt and its sidecar rewritten.
DELTA_MIN = 4096
DELTA_FRACTION = 0.05
DEAD_FRACTION = 0.10
# A process that opens the index and finds more new templates than this since the sidecar was
# written rewrites it, so the next cold start maps them instead of reading them from the store.
REWRITE_MIN = 1024
REWRITE_FRACTION = 0.01


class GalleryIndex:
    """The current model's templates, searchable, kept in step with the store. Thread-safe.

    >>> index = GalleryIndex.open("facer.db", engine.fingerprint)
    >>> people = index.search(probe, top_k=5)          # catches up with the store first (cheap)
    >>> decision, reason = decide(people, threshold, margin)   # facer_cli.service.identify

    The store is read through a `GallerySource` only (given, or SQLite's for a path), which the
    index owns: `close` closes it."""

    def __init__(self, source: GallerySource, model: str, threads: int | None = None):
        self.source = source
        self.model = model
        self.threads = threads
        self.sidecar: Path | None = source.sidecar_path(model)  # None: the source keeps no file
        # With a master key: the sidecar sealed, or no file at all (`_rebuild_sealed`).
        self.encrypted = bool(source.encrypted)
        self.lock = threading.RLock()
        self.stamp: dict[str, Any] = {}
        self.rebuilds = 0  # how many times this process built the quantised part from the store
        self.catch_ups = 0  # how many times it applied the store's changes incrementally
        self.gallery: QuantisedGallery | None = None
        self.delta = Delta.empty(0)
        self.dimension = 0
        self.max_id = 0
        self.persistent = True  # False: the sidecar could not be written beside the store
        # Why the last rebuild wrote no file at all (a full disk): said once in the log.
        self.in_memory: str | None = None
        self.stats = SearchStats()
        # time.monotonic() when the index was last seen to match the store (None: not yet).
        self.synced_at: float | None = None

    @classmethod
    def open(cls, store: GallerySource | Path | str, model: str, threads: int | None = None) -> GalleryIndex:
        """The index of `model`'s templates in `store`: a `GallerySource`, or the path of an SQLite
        store (opened read-only)."""
        source = SQLiteGallerySource(store) if isinstance(store, (str, os.PathLike)) else store
        index = cls(source, model, threads)
        if index.sidecar is not None:
            remove_stale_temporaries(index.sidecar)  # left by a process killed while it wrote one
        try:
            with index.lock, source.read_transaction():
                index._sync(source.stamp(model))
                index.synced_at = time.monotonic()
        except BaseException:
            source.close()
            raise
        return index

    def close(self) -> None:
        with self.lock:
            self._release()
            self.source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """Live templates: the quantised part less the removed rows, plus the delta."""
        return (0 if self.gallery is None else self.gallery.live) + len(self.delta)

    # -- keeping up with the store ----------------------------------------------
    def refresh(self) -> bool:
        """Catch up with the store; True when the templates had changed."""
        with self.lock, self.source.read_transaction():
            return self._refresh()

    def _refresh(self) -> bool:
        stamp = self.source.stamp(self.model)
        if stamp == self.stamp:
            self.synced_at = time.monotonic()
            return False
        self._sync(stamp)
        self.synced_at = time.monotonic()
        return True

    def changes_behind(self) -> int:
        """Inserts and deletes the store holds that the index has not caught up with yet (one
        look-up of the store's stamp; 0 also marks the index as matching the store now). -1 when
        the store's counters cannot say (the index catches up by rebuilding)."""
        with self.lock, self.source.read_transaction():
            stamp = self.source.stamp(self.model)
            if stamp == self.stamp:
                self.synced_at = time.monotonic()
                return 0
            if "inserts" not in stamp or "inserts" not in self.stamp:
                return -1
            inserted = stamp["inserts"] - self.stamp["inserts"]
            deleted = stamp["deletes"] - self.stamp["deletes"]
            return max(1, max(0, inserted) + max(0, deleted))  # 1 at least: the stamps differ

    def _sync(self, stamp: dict[str, Any]) -> None:
        """Bring the index to `stamp` (inside a read transaction): the sidecar when it is valid,
        then the changes since it was written; a rebuild when that cannot be done exactly."""
        cold = self.gallery is None
        if cold:
            self._map_sidecar()
        if self.gallery is not None and self._catch_up(stamp):
            if not cold or len(self.delta) <= max(REWRITE_MIN, REWRITE_FRACTION * len(self.gallery)):
                return
        self._rebuild()

    def _map_sidecar(self) -> bool:
        if self.sidecar is None:
            return False
        key = self.source.sidecar_key() if self.encrypted else None
        if self.encrypted and key is None:
            return False  # nothing to open a sealed sidecar with, and a plain one is not used
        try:
            fd = os.open(self.sidecar, os.O_RDONLY)
        except OSError:
            return False
        try:
            if key is not None:
                opened = sealed_gallery(fd, self.model, key, self.threads)
                if isinstance(opened, str):
                    log.debug("facer: the identify sidecar %s is not used (%s): rebuilt", self.sidecar, opened)
                    return False
                self._adopt(*opened)
                return True
            if sidecar_problem(fd, self.model) is not None:
                return False
            header = read_header(fd)
            assert header is not None
            self._install(fd, header)
        finally:
            os.close(fd)  # the map keeps the inode; a later rename does not disturb it
        return True

    def _install(self, fd: int, header: dict[str, Any]) -> None:
        self._adopt(map_gallery(fd, header, self.threads), header)

    def _adopt(self, gallery: QuantisedGallery, header: dict[str, Any]) -> None:
        self._release()
        self.gallery = gallery
        self.dimension = int(header["dimension"])
        self.delta = Delta.empty(self.dimension)
        self.stamp = dict(header["stamp"])
        self.max_id = int(header["max_id"])

    def _rebuild(self) -> None:
        """Write the sidecar from the store (in the current read transaction) and map it. Where no
        file can be written beside the store, the same content goes to an unnamed temporary file;
        where that cannot be written either (a full disk: its space is reserved before it is
        mapped, so this is an `OSError`, never SIGBUS), the index is built in memory — the sidecar
        is only a cache — and the log says so once. With a master key: `_rebuild_sealed`."""
        self._release()
        self.rebuilds += 1
        if self.encrypted:
            self._rebuild_sealed()
            return
        problem: OSError | None = None
        if self.sidecar is not None:
            try:
                build_sidecar(self.source, self.model, self.sidecar)
                self.persistent = True
                if self._map_sidecar():
                    self.in_memory = None
                    return
            except OSError as exc:
                problem = exc
        self.persistent = False
        where = "in a temporary file"
        try:
            with tempfile.TemporaryFile() as scratch:
                header = write_gallery(self.source, self.model, scratch.fileno())
                self._install(scratch.fileno(), header)
        except OSError as exc:
            problem = problem or exc
            where = "in memory"
            self._adopt(*gallery_in_memory(self.source, self.model, self.threads))
        self._say_full(problem, where)

    def _rebuild_sealed(self) -> None:
        """With a master key: the gallery built in memory from the store and its sidecar written
        sealed with the store's sidecar key (read in the current read transaction, so a removal
        that committed before it is seen together with its new key). With no sidecar key (a store
        of an earlier facer, or removed by a command without the key) or no file (a full disk, a
        read-only folder, PostgreSQL), it stays in memory: a temporary file would hold the codes
        in the clear."""
        key = self.source.sidecar_key() if self.sidecar is not None else None
        if self.sidecar is None or key is None:
            self.persistent = False
            self.in_memory = None
            self._adopt(*gallery_in_memory(self.source, self.model, self.threads))
            return
        gallery, header, problem = build_sealed_sidecar(self.source, self.model, self.sidecar, key, self.threads)
        self._adopt(gallery, header)
        self.persistent = problem is None
        self._say_full(problem, "in memory")

    def _say_full(self, problem: OSError | None, where: str) -> None:
        """A full disk (not a read-only one: no sidecar is expected there) is said once in the log."""
        if problem is None or problem.errno not in FULL:
            self.in_memory = None
            return
        reason = f"{problem.strerror or problem}; kept {where}"
        if self.in_memory != reason:
            log.warning(
                "facer: the identify index could not be written beside the store (%s): searches still "
                "answer, and the index is rebuilt from the store when this process starts again",
                reason,
            )
        self.in_memory = reason

    def _catch_up(self, stamp: dict[str, Any]) -> bool:
        """Apply the store's inserts and deletes since `self.stamp`; False when that cannot be done
        exactly (no counter, an id reused, a row updated) or is too much: the caller rebuilds.

        With no reused id, every template inserted since has an id above `max_id`: those still
        there are read; the others were inserted and deleted in between. So the deletes counted
        must be the known rows now missing plus those: anything else means a rebuild."""
        if stamp == self.stamp:
            return True
        if "inserts" not in stamp or "inserts" not in self.stamp or self.gallery is None:
            return False
        inserted = stamp["inserts"] - self.stamp["inserts"]
        deleted = stamp["deletes"] - self.stamp["deletes"]
        if inserted < 0 or deleted < 0 or stamp.get("reused") != self.stamp.get("reused"):
            return False
        gallery = self.gallery
        limit = max(DELTA_MIN, int(DELTA_FRACTION * len(gallery)))
        if len(self.delta) + inserted > limit:
            return False
        new_rows = self.source.templates_after(self.model, self.max_id, inserted + 1)
        if len(new_rows) > inserted:
            return False
        transient = inserted - len(new_rows)  # inserted and deleted again since
        alive, delta = gallery.alive, self.delta
        if deleted > transient:
            present = self.source.template_ids_through(self.model, self.max_id)  # the ids still there
            alive_base = np.isin(gallery.template_ids, present, assume_unique=True)
            was_alive = gallery.alive if gallery.alive is not None else np.ones(len(gallery), bool)
            gone_base = int((was_alive & ~alive_base).sum())
            alive_base &= was_alive
            keep = np.isin(delta.template_ids, present, assume_unique=True)
            if gone_base + int((~keep).sum()) + transient != deleted:
                return False
            if len(gallery) - int(alive_base.sum()) > DEAD_FRACTION * len(gallery):
                return False
            alive = None if alive_base.all() else alive_base
            delta = Delta(delta.template_ids[keep], delta.user_ids[keep], delta.vectors[keep])
        elif deleted != transient:
            return False
        if new_rows:
            dimension = self.dimension or int(new_rows[0][2])
            vectors = decode_templates(new_rows, dimension)
            self.dimension = dimension
            delta = Delta(
                np.concatenate([delta.template_ids, [row[0] for row in new_rows]]).astype(np.int64),
                np.concatenate([delta.user_ids, [row[1] for row in new_rows]]).astype(np.int64),
                np.concatenate([delta.vectors.reshape(-1, dimension), vectors]),
            )
            self.max_id = int(new_rows[-1][0])
        gallery.alive, self.delta = alive, delta
        self.stamp = dict(stamp)
        self.catch_ups += 1
        return True

    def _release(self) -> None:
        self.gallery = None

    # -- searching ---------------------------------------------------------------
    def search(self, probe: np.ndarray, top_k: int = 5, refresh: bool = True) -> list[Candidate]:
        return self.search_batch(np.asarray(probe, dtype=np.float32)[None, :], top_k, refresh)[0]

    def search_batch(self, probes: np.ndarray, top_k: int = 5, refresh: bool = True) -> list[list[Candidate]]:
        """The top_k people for each probe, exactly, named as the store names them now."""
        with self.lock, self.source.read_transaction():
            if refresh:
                self._refresh()
            self.stats = SearchStats()
            try:
                results = search_batch(
                    self.gallery, probes, top_k, delta=self.delta, fetch=self._fetch, stats=self.stats
                )
            except _Resync:
                self._rebuild()
                results = search_batch(
                    self.gallery, probes, top_k, delta=self.delta, fetch=self._fetch, stats=self.stats
                )
            names = self._names({c.user_id for found in results for c in found})
        return [[_named(c, names) for c in found] for found in results]

    def _fetch(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of these rows of the quantised part, from the store itself."""
        assert self.gallery is not None
        ids = self.gallery.template_ids[rows].tolist()
        found = self.source.vectors(self.model, ids)
        if len(found) != len(ids) or any(len(found[i]) != 4 * self.dimension for i in ids):
            raise _Resync("a template of the index is missing from the store")
        return np.frombuffer(b"".join(found[i] for i in ids), dtype="<f4").reshape(len(ids), self.dimension)

    def _names(self, user_ids: set[int]) -> dict[int, str]:
        """Names are read at answer time, so a rename never needs a rebuild."""
        if not user_ids:
            return {}
        return self.source.user_names(user_ids)


def _named(candidate: Candidate, names: dict[int, str]) -> Candidate:
    return Candidate(candidate.user_id, candidate.template_id, candidate.similarity, names.get(candidate.user_id))
