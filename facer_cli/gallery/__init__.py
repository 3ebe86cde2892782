"""Exact 1:N search over every template of one model: the core of `facer identify`.

**The scan** (`scanner`). Every template is kept as int8 codes (512 bytes a template, 512 MB at
one million) and scanned through ONNX Runtime's `MatMulInteger`, whose prepacked AVX2 kernel is
the fastest exact integer dot product this package already depends on (numpy has no integer
BLAS; float16 matmul in numpy is slower than float32; simsimd's and usearch's exact int8 scans
measured slower on this machine, see benchmarks/bench_identify.py). The probe is quantised
twice — its codes and the codes of what they miss — so both go through the same scan (two rows
cost about what one does: the gallery's memory is the bottleneck) and the probe's own rounding
hardly counts.

**The bound** (`quantise`). Every row gets a rigorous bound on how far its int8 score can be from
the exact one (Cauchy–Schwarz on what the codes lose, see `RowBounds`), so the rows that could
still be in the answer are known exactly (`search`); they, and only they, are re-scored in
float64 from the float32 vectors **read from the store** (a few dozen rows by id). The answer
equals exact float32 search — the same people, the same order, the same similarities.

**Freshness** (`index`). The store is the only truth. A per-model counter (kept by the store)
tells in one look-up whether and how the templates changed. New templates join a small float32
delta scanned with numpy; removed ones are masked; only when the delta or the mask grows large
is the index rebuilt. Every search reads its rows in one read transaction with the counter, so
it never mixes two states of the store. The store is read only through
`facer_cli.store.gallery_source.GallerySource`: no SQL here.

**The sidecar** (`sidecar`: `<db>.gallery-<hash>.bin`, 0600, written to a temp file and renamed)
holds the codes, ids, scales and error bounds, with a CRC-32, so a cold `facer identify` maps it
instead of reading every template. A missing, truncated, corrupt or foreign sidecar is rebuilt,
never trusted; a stale one is brought up to date from the store like a running index (or rebuilt).
With a master key it is sealed (AES-256-GCM) under the store's sidecar key and decrypted into
memory; a removal replaces that key, so no copy of a sidecar written before it opens again.

The open-set decision on the candidates (identified, unknown, ambiguous) is
`facer_cli.service.identify.decide`.
"""

from facer_cli.gallery.index import GalleryIndex
from facer_cli.gallery.quantise import (
    PROBE_ZERO_POINT,
    RowBounds,
    largest_error,
    quantise_probe,
    quantise_rows,
    score_bounds,
)
from facer_cli.gallery.scanner import Int8Scanner
from facer_cli.gallery.search import (
    Candidate,
    Delta,
    GalleryError,
    QuantisedGallery,
    SearchStats,
    candidate_rows,
    exact_search,
    search,
    search_batch,
)
from facer_cli.gallery.sidecar import HEADER_BYTES, sidecar_problem
from facer_cli.store.gallery_source import erase_sidecars, sidecar_path

__all__ = [
    "HEADER_BYTES",
    "PROBE_ZERO_POINT",
    "Candidate",
    "Delta",
    "GalleryError",
    "GalleryIndex",
    "Int8Scanner",
    "QuantisedGallery",
    "RowBounds",
    "SearchStats",
    "candidate_rows",
    "erase_sidecars",
    "exact_search",
    "largest_error",
    "quantise_probe",
    "quantise_rows",
    "score_bounds",
    "search",
    "search_batch",
    "sidecar_path",
    "sidecar_problem",
]
