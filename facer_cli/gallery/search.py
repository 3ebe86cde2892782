"""The exact 1:N search: one int8 scan for all probes, then each probe's exact float64 re-score
of the rows its bounds keep (`candidate_rows`), together with the exact scores of the delta
(templates added since the quantised part was built). The answer equals float32 brute force
(`exact_search`): the same people, the same order, the same similarities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from facer_cli.gallery.quantise import (
    SCORE_SLACK,
    QuantisedProbe,
    RowBounds,
    approximate_scores,
    largest_error,
    max_norm,
    quantise_probe,
    quantise_rows,
)
from facer_cli.gallery.scanner import Int8Scanner, ScanWork


class GalleryError(Exception):
    """The store cannot be indexed (a malformed template row)."""


class _Resync(GalleryError):
    """The index and the store disagree: rebuild from the store and search again."""


# -- results --------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A person's best template against the probe."""

    user_id: int
    template_id: int
    similarity: float
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.name,
            "user_id": self.user_id,
            "template_id": self.template_id,
            "similarity": round(self.similarity, 6),
        }


# -- the searched gallery -----------------------------------------------------------------
Fetch = Callable[[np.ndarray], np.ndarray]  # row numbers (sorted) -> their float32 vectors


@dataclass
class QuantisedGallery:
    """What `search` needs: ids, int8 codes (dimension-major, for the scanner) with their scales
    and error bounds, which rows are alive, and where the exact vectors come from."""

    template_ids: np.ndarray  # int64 [N]
    user_ids: np.ndarray  # int64 [N]
    scales: np.ndarray  # float32 [N]
    error_norms: np.ndarray  # float32 [N]
    codes_by_dimension: np.ndarray  # int8 [D, N]
    max_row_norm: float
    vectors: np.ndarray | None = None  # float32 [N, D], when held in memory (tests, small galleries)
    alive: np.ndarray | None = None  # bool [N]; None: every row
    scanner: Int8Scanner | None = None
    work: ScanWork = field(default_factory=ScanWork, repr=False, compare=False)

    @classmethod
    def from_vectors(cls, template_ids: Any, user_ids: Any, vectors: np.ndarray) -> QuantisedGallery:
        """In memory, for tests and small galleries."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        quantised = quantise_rows(rows)
        return cls(
            template_ids=np.asarray(template_ids, dtype=np.int64),
            user_ids=np.asarray(user_ids, dtype=np.int64),
            scales=quantised.scales,
            error_norms=quantised.error_norms,
            codes_by_dimension=np.ascontiguousarray(quantised.codes.T),
            max_row_norm=max_norm(rows),
            vectors=rows,
        )

    def __len__(self) -> int:
        return int(self.template_ids.shape[0])

    @property
    def live(self) -> int:
        return len(self) if self.alive is None else int(self.alive.sum())

    def scan(self, probe_codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if self.scanner is None:
            self.scanner = Int8Scanner(self.codes_by_dimension)
        return self.scanner.dots(probe_codes, out)

    @cached_property
    def largest_error(self) -> float:
        """The largest |e| over the rows (`RowBounds`), found once per gallery."""
        return largest_error(self.error_norms)

    def fetch(self, rows: np.ndarray) -> np.ndarray:
        assert self.vectors is not None, "a gallery without vectors needs a fetch function"
        return np.asarray(self.vectors[rows], dtype=np.float32)


@dataclass
class Delta:
    """Templates added since the quantised part was built: float32, scanned exactly."""

    template_ids: np.ndarray
    user_ids: np.ndarray
    vectors: np.ndarray  # float32 [m, D]

    @classmethod
    def empty(cls, dimension: int) -> Delta:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, dimension), np.float32))

    def __len__(self) -> int:
        return int(self.template_ids.shape[0])


@dataclass
class SearchStats:
    """How much work the last search did: rows scanned, and rows re-scored exactly."""

    scanned: int = 0
    delta: int = 0
    rescored: int = 0


# -- search ---------------------------------------------------------------------------
def search(gallery: QuantisedGallery, probe: np.ndarray, top_k: int = 5) -> list[Candidate]:
    """The top_k people (best template each) by exact similarity to `probe`."""
    return search_batch(gallery, np.asarray(probe, dtype=np.float32)[None, :], top_k)[0]


def search_batch(
    gallery: QuantisedGallery | None,
    probes: np.ndarray,
    top_k: int = 5,
    *,
    delta: Delta | None = None,
    fetch: Fetch | None = None,
    stats: SearchStats | None = None,
) -> list[list[Candidate]]:
    """One int8 scan for all probes (two code rows each), then each probe's exact re-score of
    the rows its bounds keep, together with the exact scores of the delta."""
    probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
    stats = stats if stats is not None else SearchStats()
    base = gallery if gallery is not None and len(gallery) and gallery.live else None
    has_delta = delta is not None and len(delta) > 0
    if top_k <= 0 or (base is None and not has_delta):
        return [[] for _ in probes]
    all_dots = None
    quantised: list[QuantisedProbe] = []
    work = None
    if base is not None:
        quantised = [quantise_probe(p) for p in probes]
        work = base.work.for_rows(len(base)) if len(probes) == 1 else None
        all_dots = base.scan(np.concatenate([q.codes for q in quantised]), None if work is None else work.dots)
        stats.scanned += len(base) * len(probes)
    delta_scores = None
    if has_delta:
        assert delta is not None
        delta_scores = delta.vectors.astype(np.float64) @ probes.astype(np.float64).T  # [m, k]
        stats.delta += len(delta) * len(probes)
    results = []
    for index, probe in enumerate(probes):
        extra: dict[int, tuple[float, int]] = {}  # user -> (exact score, template id), from the delta
        if delta_scores is not None and delta is not None:
            for user, template, score in zip(delta.user_ids, delta.template_ids, delta_scores[:, index], strict=True):
                key = (float(score), -int(template))
                if int(user) not in extra or key > (extra[int(user)][0], -extra[int(user)][1]):
                    extra[int(user)] = (float(score), int(template))
        found: list[tuple[float, int, int]] = [(s, t, u) for u, (s, t) in extra.items()]
        if base is not None and all_dots is not None:
            approx = approximate_scores(
                all_dots[2 * index : 2 * index + 2],
                quantised[index],
                base.scales,
                None if work is None else (work.approx, work.part),
            )
            bounds = RowBounds.of(quantised[index], base.error_norms, base.largest_error, base.max_row_norm)
            if base.alive is not None:
                approx[~base.alive] = -np.inf
            rows = candidate_rows(approx, bounds, base.user_ids, top_k, {u: s for u, (s, _) in extra.items()})
            vectors = fetch(rows) if fetch is not None else base.fetch(rows)
            exact = vectors.astype(np.float64) @ probe.astype(np.float64)
            stats.rescored += len(rows)
            # A row outside its own bound: the codes do not describe the row the store holds.
            if np.any(np.abs(exact - approx[rows]) > bounds.at(rows) + SCORE_SLACK):
                raise _Resync("a template's codes do not match the store")
            found += zip(exact.tolist(), base.template_ids[rows].tolist(), base.user_ids[rows].tolist(), strict=True)
        results.append(best_per_person(found, top_k))
    return results


def best_per_person(scored: Sequence[tuple[float, int, int]], top_k: int) -> list[Candidate]:
    """(score, template id, user id) -> the top_k people, best template each; ties to the older template."""
    seen: set[int] = set()
    found: list[Candidate] = []
    for score, template, user in sorted(scored, key=lambda item: (-item[0], item[1])):
        if user in seen:
            continue
        seen.add(user)
        found.append(Candidate(user_id=int(user), template_id=int(template), similarity=float(score)))
        if len(found) == top_k:
            break
    return found


def candidate_rows(
    approx: np.ndarray,
    bounds: RowBounds,
    user_ids: np.ndarray,
    top_k: int,
    known: dict[int, float] | None = None,
) -> np.ndarray:
    """Every row that could hold the best template of one of the top_k people, in row order.

    Let T be the top_k-th largest, over distinct people, of a person's best lower bound (`known`:
    exact scores of people outside these rows, the delta). Then top_k people score at least T, so
    a row whose upper bound is below T is either not its person's best or its person is not in
    the top_k: dropping it changes nothing. (Masked rows have approx -inf.)

    T is found without sorting the gallery: the rows whose lower bound reaches a cut near the top
    are taken, the cut lowered until they hold top_k people; T over them is exact, since every
    person whose best lower bound is at least the cut (so at least T) is among them."""
    known = known or {}
    total = approx.shape[0]
    # The cut is guessed from a sample of the lower bounds (so that at least 64 rows, and top_k + 1
    # sampled ones, reach it), checked on every row, and lowered while the rows that reach it hold
    # fewer than top_k people. `near` the cut are also all the rows whose upper bound reaches T
    # (T >= cut), so one pass over the gallery usually serves both.
    stride = max(1, total // 8192)
    sampled = np.arange(0, total, stride)
    lower = bounds.lower(approx, sampled)
    sample = np.sort(lower[np.isfinite(lower)])[::-1]
    position = max(max(64, 16 * top_k) // stride, top_k)
    while True:
        everything = position >= sample.shape[0]
        cut = -np.inf if everything else float(sample[position])
        near = bounds.near(approx, cut) if not everything else np.flatnonzero(np.isfinite(approx))
        lowers = bounds.lower(approx, near)
        reaching = lowers >= cut
        users = user_ids[near[reaching]]
        present = set(np.unique(users).tolist())
        people = len(present) + sum(1 for u, v in known.items() if v >= cut and u not in present)
        if people >= top_k or everything:
            break
        position *= 4
    threshold = _kth_person_lower_bound(lowers[reaching], users, top_k, {u: v for u, v in known.items() if v >= cut})
    if threshold is None:  # fewer than top_k people in the whole gallery: all of them
        return np.flatnonzero(np.isfinite(approx))
    return near[bounds.upper(approx, near) >= threshold]


def _kth_person_lower_bound(
    lower: np.ndarray, user_ids: np.ndarray, top_k: int, known: dict[int, float]
) -> float | None:
    if known:
        lower = np.concatenate([lower, np.fromiter(known.values(), np.float64, len(known))])
        user_ids = np.concatenate([user_ids, np.fromiter(known.keys(), np.int64, len(known))])
    if lower.shape[0] < top_k:
        return None
    order = np.lexsort((-lower, user_ids))  # per person, best lower bound first
    users = user_ids[order]
    first_of_person = np.ones(order.shape[0], dtype=bool)
    first_of_person[1:] = users[1:] != users[:-1]
    per_person = lower[order][first_of_person]
    if per_person.shape[0] < top_k:
        return None
    return float(np.partition(per_person, per_person.shape[0] - top_k)[per_person.shape[0] - top_k])


def exact_search(
    template_ids: np.ndarray, user_ids: np.ndarray, vectors: np.ndarray, probe: np.ndarray, top_k: int
) -> list[Candidate]:
    """Reference: float64 brute force over float32 rows (for tests and the benchmark)."""
    scores = np.asarray(vectors, dtype=np.float64) @ np.asarray(probe, dtype=np.float64)
    order = np.lexsort((template_ids, -scores))
    seen: set[int] = set()
    found: list[Candidate] = []
    for i in order:
        if int(user_ids[i]) in seen:
            continue
        seen.add(int(user_ids[i]))
        found.append(Candidate(int(user_ids[i]), int(template_ids[i]), float(scores[i])))
        if len(found) == top_k:
            break
    return found
