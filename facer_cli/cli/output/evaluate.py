"""The views of `facer evaluate`: the verification figures per protocol, the identify (1:N)
protocol and the facer.toml lines to paste; `--liveness`'s per-video outcomes, APCER and BPCER.

A view is a list of parts to print in order; plain strings are facer.toml lines, which
`print_all` prints unwrapped so they paste as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.text import Text

from facer_cli.cli.output.text import (
    DECISION,
    FIXED,
    KEY,
    WRAP,
    Column,
    FitTable,
    literal,
    number,
    wrap_at_spaces,
)
from facer_cli.evaluation.intervals import fraction

if TYPE_CHECKING:
    from facer_cli.evaluation import Evaluation
    from facer_cli.evaluation.liveness import LivenessEvaluation, Rate

SHOWN_FAILURES = 5


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _rate_cell(rate: float | None, count: int, total: int) -> str:
    return "–" if rate is None else f"{_pct(rate)} ({count}/{total})"


def _ci_cell(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"{_pct(ci[0])} – {_pct(ci[1])}"


def _target(rate: float) -> str:
    """A target as a percentage, as short as it is exact: 0.001 → "0.1%"."""
    return f"{rate * 100:.3g}%"


def _scores_cell(summary: Any) -> str:
    if summary.min is None:
        return "–"
    return f"{summary.min:.3f} / {summary.mean:.3f} / {summary.max:.3f}"


class Footnotes:
    """Numbered notes below the tables: the row a note is about carries its number, "[1]"."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def mark(self, notes: list[str]) -> str:
        """ " [1][2]" for these notes (empty for none); their lines are kept for `parts`."""
        marks = ""
        for note in notes:
            self.lines.append(note)
            marks += f"[{len(self.lines)}]"
        return f" {marks}" if marks else ""

    def parts(self, start: int = 0) -> list[RenderableType | str]:
        return [literal(f"[{n}] {line}", "yellow") for n, line in enumerate(self.lines[start:], start + 1)]


# A section row: its name in the figure column, what it counts in the first value column.
Row = tuple[str, str, str]  # (figure, value, style)
SECTION = "bold"


def _metric_rows(m: Any, notes: Footnotes | None) -> list[Row]:
    """One protocol's column. `notes`: where the recommendation's notes go (None: this column's
    recommendation is not the one printed, so an unsupported value says so in the cell)."""
    current = m.current
    g, i = current.genuine, current.impostor
    rows: list[Row] = [
        ("pairs (genuine / impostor)", f"{m.pairs} ({g.total} / {i.total})", ""),
        ("system", "every pair: people let in or turned away", SECTION),
        ("FTA: genuine pairs not acquired", _rate_cell(current.fta_genuine, g.no_score, g.total), ""),
        ("FTA: impostor pairs not acquired", _rate_cell(current.fta_impostor, i.no_score, i.total), ""),
        ("FAR = FMR × (1 − FTA)", _rate_cell(current.far, i.match, i.total), ""),
        ("  FAR 95% interval", _ci_cell(current.far_ci), ""),
        ("FRR = FTA + FNMR × (1 − FTA)", _rate_cell(current.frr, g.no_match, g.total), ""),
        ("  FRR 95% interval", _ci_cell(current.frr_ci), ""),
        ("model", "acquired pairs: how often the model errs", SECTION),
        ("FMR: impostor ≥ high", _rate_cell(current.fmr, i.match, i.acquired), ""),
        ("  FMR 95% interval", _ci_cell(current.fmr_ci), ""),
        ("FNMR: genuine < low", _rate_cell(current.fnmr, g.no_match_acquired, g.acquired), ""),
        ("  FNMR 95% interval", _ci_cell(current.fnmr_ci), ""),
        ("uncertain: genuine", _rate_cell(current.genuine_uncertain, g.uncertain, g.acquired), ""),
        ("uncertain: impostor", _rate_cell(current.impostor_uncertain, i.uncertain, i.acquired), ""),
        ("accuracy", _rate_cell(current.accuracy, current.correct, current.acquired), ""),
        (
            "EER (threshold)",
            f"– ({m.eer.note})" if m.eer.rate is None else f"{_pct(m.eer.rate)} (at {m.eer.threshold:.4f})",
            "",
        ),
    ]
    for point in m.tar_at_far:
        cell = (
            f"{_rate_cell(point.tar, point.accepted, point.genuine_pairs)} at ≥ {point.threshold:.4f}"
            if point.supported
            else f"– ({point.note})"
        )
        rows.append((f"TAR @ FMR {_target(point.far)}", cell, ""))
    best = m.best
    rows.append(
        (
            "best-accuracy threshold",
            "–" if best is None else f"{best.threshold:.4f}: {_rate_cell(best.accuracy, best.correct, best.acquired)}",
            "",
        )
    )
    r = m.recommendation
    rows.append(("recommended", "for facer.toml, from the targets", SECTION))
    high = "–"
    if r.threshold_high is not None and r.far_at_high is not None and r.far_ci_at_high is not None:
        high = (
            f"{r.threshold_high:.4f}: FMR {_rate_cell(r.far_at_high, r.accepted_at_high, r.impostor_acquired)}, "
            f"≤ {_pct(r.far_ci_at_high[1])} at 95%; TAR "
            f"{_rate_cell(r.tar_at_high, r.genuine_at_high, r.genuine_acquired)}"
        )
        if notes is None and not r.far_supported:
            high += " (not supported)"
    if notes is not None:
        high += notes.mark(r.high_notes)
    rows.append((f"high for FAR ≤ {_target(r.target_far)}", high, ""))
    low = "–"
    if r.threshold_low is not None and r.frr_at_low is not None and r.frr_ci_at_low is not None:
        low = (
            f"{r.threshold_low:.4f}: FRR {_rate_cell(r.frr_at_low, r.rejected_at_low, r.genuine_pairs)}, "
            f"≤ {_pct(r.frr_ci_at_low[1])} at 95%"
        )
        if notes is None and not r.frr_supported:
            low += " (not supported)"
    if notes is not None:
        low += notes.mark(r.low_notes)
    rows.append((f"low for FRR ≤ {_target(r.target_frr)}", low, ""))
    rows.append(("scores", "acquired pairs", SECTION))
    rows.append(("genuine min / mean / max", _scores_cell(m.genuine), ""))
    rows.append(("impostor min / mean / max", _scores_cell(m.impostor), ""))
    return rows


def acquisition_view(result: "Evaluation") -> list[RenderableType | str]:
    """The images that failed to acquire, why, and the FTA by reason (ISO/IEC 19795-1)."""
    acquisition = result.acquisition
    failed = len(acquisition.failed)
    line = f"failure to acquire (FTA): {_pct(acquisition.fta)} of images ({failed}/{acquisition.images})"
    if not failed:
        return [literal(line + ": every image has a usable face")]
    unusable = FitTable(
        [Column("image", KEY), Column("reason", DECISION)],
        title=f"{failed} image(s) without a usable face: not acquired, so their pairs are not compared",
        title_style="yellow",
    )
    for item in acquisition.failed:
        unusable.add_row(literal(item.path), literal(item.reason))
    reasons = FitTable([Column("FTA by reason", KEY), Column("images", FIXED, justify="right")])
    for group, count in acquisition.by_reason():
        reasons.add_row(literal(group), _rate_cell(count / acquisition.images, count, acquisition.images))
    parts: list[RenderableType | str] = [unusable, literal(line, "yellow"), reasons]
    if any(len(item.groups) > 1 for item in acquisition.failed):
        parts.append(Text("an image refused for several reasons counts under each", "dim"))
    return parts


def evaluation_view(result: "Evaluation") -> list[RenderableType | str]:
    """Tables and lines to print, in order; plain strings are facer.toml lines (printed unwrapped)."""
    dataset = result.dataset
    genuine, impostor = dataset.pair_counts
    what = (
        f"{len(dataset.identities)} identities (folders)"
        if dataset.kind == "folders"
        else f"{genuine + impostor} pairs (CSV)"
    )
    parts: list[RenderableType | str] = [
        literal(f"{dataset.source}: {result.images} images, {what}, model {result.model}")
    ]
    if dataset.ignored:
        parts.append(Text(f"ignored {len(dataset.ignored)} file(s) outside identity folders", "yellow"))
    parts.extend(acquisition_view(result))
    figures = FitTable(
        # Each protocol's column keeps 18 characters before the figure names wrap (two fit in 60).
        [Column("figure", WRAP), *(Column(p.label, WRAP, min_width=18) for p in result.protocols)],
        title=f"at cosine_threshold_high {result.threshold_high:g} / cosine_threshold_low {result.threshold_low:g}",
        box=box.HEAVY_HEAD,
        pad_edge=True,
    )
    source = result.recommended_from
    notes = Footnotes()
    columns = [_metric_rows(p.metrics, notes if p is source else None) for p in result.protocols]
    for index, (name, _, style) in enumerate(columns[0]):
        if style == SECTION:  # the section's name, and what it counts once, beside it
            figures.add_row(Text(name, SECTION), Text(columns[0][index][1], "dim"))
        else:
            figures.add_row(name, *[column[index][1] for column in columns])
    parts.append(figures)
    for p in result.protocols:
        if p.enroll is not None:
            e = p.enroll
            line = f"enroll: {e.templates} template(s) of {e.k} image(s) from {len(e.identities)} identities"
            if e.skipped:
                line += f"; {len(e.skipped)} with ≤ {e.k} images are probes only ({', '.join(e.skipped)})"
            parts.append(literal(line))
            for failure in e.failures[:SHOWN_FAILURES]:
                parts.append(literal(f"  template of {failure.identity} not built: {failure.reason}", "yellow"))
            if len(e.failures) > SHOWN_FAILURES:
                parts.append(
                    Text(
                        f"  and {len(e.failures) - SHOWN_FAILURES} more templates not built (--json lists them)",
                        "yellow",
                    )
                )
    recommendation = source.metrics.recommendation
    if len(result.protocols) > 1:
        parts.append(literal(f"notes [n] are about the {source.label} column, whose thresholds are the ones offered"))
    parts.extend(notes.parts())
    toml = recommendation.toml()
    if toml:
        parts.append(
            Text(
                f"facer.toml, from the {source.label} protocol (FAR ≤ {_target(result.target_far)}, "
                f"FRR ≤ {_target(result.target_frr)}, each within its 95% upper bound):",
                "bold",
            )
        )
        parts.extend(toml.splitlines())
    if not recommendation.high_line or not recommendation.low_line:
        missing = [
            name
            for name, shown in (
                ("cosine_threshold_high", recommendation.high_line),
                ("cosine_threshold_low", recommendation.low_line),
            )
            if not shown
        ]
        parts.append(
            Text(
                f"no {' or '.join(missing)} to paste: these pairs do not support the target (see the notes above)",
                "bold yellow",
            )
        )
    if result.identify is not None:
        parts.extend(identify_evaluation_view(result.identify, notes))
    parts.append(
        Text(
            f"{result.images} images in {result.embed_seconds:.1f} s "
            f"({result.images_per_second:.1f} images/s, {result.workers} worker(s))",
            "dim",
        )
    )
    return parts


def identify_evaluation_view(outcome: Any, notes: Footnotes | None = None) -> list[RenderableType | str]:
    """The identify protocol's table, notes and facer.toml lines (notes numbered after `notes`')."""
    notes = notes or Footnotes()
    first = len(notes.lines)
    mated, non_mated = outcome.mated, outcome.non_mated
    counts = outcome.counts(outcome.threshold, outcome.margin)
    m, n = counts["mated"], counts["non_mated"]
    table = FitTable(
        [Column("figure", WRAP), Column("value", WRAP)],
        title=f"identify (1:N) at identify_threshold {outcome.threshold:g} / identify_margin {outcome.margin:g}",
        box=box.HEAVY_HEAD,
        pad_edge=True,
    )
    mated_missed = len(mated) - len(outcome.mated_acquired)
    strangers_missed = len(non_mated) - len(outcome.non_mated_acquired)
    rows = [
        ("gallery", f"{outcome.templates} template(s) of k={outcome.k} image(s), {len(outcome.enrolled)} identities"),
        (
            "searches (mated / non-mated)",
            f"{len(mated)} / {len(non_mated)} ({len(outcome.kept_out)} identities kept out)",
        ),
        ("FTA: mated searches not acquired", _rate_cell(fraction(mated_missed, len(mated)), mated_missed, len(mated))),
        (
            "FTA: non-mated searches not acquired",
            _rate_cell(fraction(strangers_missed, len(non_mated)), strangers_missed, len(non_mated)),
        ),
        ("rank-1 identification rate", _rate_cell(outcome.rank1, sum(s.best == s.mate for s in mated), len(mated))),
        (
            "FPIR: stranger named",
            _rate_cell(outcome.fpir(outcome.threshold), n["identified"] + n["ambiguous"], len(non_mated)),
        ),
        (
            "FNIR: mate missed at rank 1",
            _rate_cell(
                outcome.fnir(outcome.threshold),
                len(mated) - sum(s.best == s.mate and s.best_score >= outcome.threshold for s in mated),
                len(mated),
            ),
        ),
        (
            "ambiguous (all searches)",
            _rate_cell(
                outcome.ambiguous_rate(outcome.threshold, outcome.margin),
                m["ambiguous"] + n["ambiguous"],
                len(mated) + len(non_mated),
            ),
        ),
        (
            "mated: right / wrong / unknown / ambiguous",
            f"{m['identified_right']} / {m['identified_wrong']} / {m['unknown']} / {m['ambiguous']}",
        ),
        ("non-mated: named / unknown / ambiguous", f"{n['identified']} / {n['unknown']} / {n['ambiguous']}"),
    ]
    for point in outcome.fnir_at_fpir:
        if point.supported:
            missed = len(mated) - sum(s.best == s.mate and s.best_score >= point.threshold for s in mated)
            cell = f"{_rate_cell(point.fnir, missed, len(mated))} at ≥ {point.threshold:.4f}"
        else:
            cell = f"– ({point.to_dict()['note']})"
        rows.append((f"FNIR @ FPIR {_target(point.fpir)}", cell))
    threshold = "–"
    if outcome.recommended_threshold is not None and outcome.fpir_ci_at_threshold is not None:
        acquired = len(outcome.non_mated_acquired)
        threshold = (
            f"{outcome.recommended_threshold:.4f}: FPIR "
            f"{_rate_cell(fraction(outcome.named_at_threshold, acquired), outcome.named_at_threshold, acquired)}, "
            f"≤ {_pct(outcome.fpir_ci_at_threshold[1])} at 95%"
        )
    rows.append(
        (
            f"identify_threshold for FPIR ≤ {_target(outcome.target_fpir)}",
            threshold + notes.mark(outcome.threshold_notes),
        )
    )
    margin = "–"
    if outcome.recommended_margin is not None:
        acquired = len(outcome.mated_acquired)
        margin = (
            f"{outcome.recommended_margin:.4f}: named wrongly "
            f"{_rate_cell(fraction(outcome.wrong_at_margin, acquired), outcome.wrong_at_margin, acquired)}"
        )
    rows.append(("identify_margin", margin + notes.mark(outcome.margin_notes)))
    for name, value in rows:
        table.add_row(name, value)
    parts: list[RenderableType | str] = [table]
    for failure in outcome.failures:
        parts.append(literal(f"  template of {failure} not built: its images are non-mated searches", "yellow"))
    parts.extend(notes.parts(first))
    toml = outcome.toml()
    if toml:
        parts.append(Text(f"facer.toml, from the identify protocol (FPIR ≤ {_target(outcome.target_fpir)}):", "bold"))
        parts.extend(toml.splitlines())
    if not outcome.threshold_line:
        parts.append(
            Text(
                "no identify_threshold to paste: these searches do not support the target (see the notes above)",
                "bold yellow",
            )
        )
    return parts


def print_all(console: Console, parts: Iterable[RenderableType | str]) -> None:
    for part in parts:
        if isinstance(part, str):  # facer.toml lines: never wrapped inside, so they paste as they are
            for line in toml_lines(part, console.width):
                console.print(line, soft_wrap=True, markup=False, highlight=False)
        else:
            console.print(part)


def toml_lines(line: str, width: int) -> list[str]:
    """A facer.toml line as it is when it fits `width`; else its trailing comment goes above it, as
    comment lines wrapped at spaces (`# not measured: … searches`), so it still pastes as it is."""
    setting, mark, comment = line.partition("  # ")
    if cell_len(line) <= width or not mark:
        return [line]
    wrapped = wrap_at_spaces(Text(comment), max(width - 2, 1))
    return [f"# {part.plain}" for part in wrapped] + [setting]


# -- evaluate --liveness ----------------------------------------------------------
def _pad_cell(rate: "Rate") -> str:
    """ "3.57 % (1/28) [0.09-18.35 %]": the rate, the counts and the 95 % Clopper-Pearson interval."""
    if rate.rate is None:
        return "–"
    return f"{rate.rate:.2%} ({rate.errors}/{rate.total}) [{rate.low:.2%}–{rate.high:.2%}]"


def liveness_evaluation_view(result: "LivenessEvaluation") -> list[RenderableType | str]:
    """Per-video outcomes, APCER per attack kind and BPCER with their intervals, and the trade-off."""
    live, attacks = len(result.live), len(result.videos) - len(result.live)
    parts: list[RenderableType | str] = [
        literal(
            f"{result.folder}: {live} live and {attacks} attack video(s), frames every {result.frame_interval_ms:g} ms, "
            f"parallax threshold {result.threshold:g} IOD (liveness_parallax_min)"
        )
    ]
    # Narrower than the table, the challenge column goes, then kind, then parallax.
    videos = FitTable(
        [
            Column("video", KEY),
            Column("kind", FIXED, drop=2),
            Column("challenge", WRAP, drop=1),
            Column("parallax", FIXED, drop=3, justify="right"),
            Column("verdict", DECISION),
        ]
    )
    for v in result.videos:
        expected = v.live == (v.kind == "live")
        verdict = literal(("live" if v.live else f"not live: {v.reason}"), "green" if expected else "bold red")
        videos.add_row(literal(v.path), literal(v.kind), " ".join(v.challenge), number(v.parallax, ".3f"), verdict)
    parts.append(videos)
    current = result.current
    figures = FitTable(
        [Column("figure", WRAP), Column("rate (errors/videos) [95 % CI]", WRAP)],
        title="ISO/IEC 30107-3, with 95 % Clopper–Pearson intervals",
        box=box.HEAVY_HEAD,
        pad_edge=True,
    )
    figures.add_row("BPCER: live refused", _pad_cell(current.bpcer))
    for kind, rate in current.apcer.items():
        figures.add_row(f"APCER {kind}: attacks accepted", _pad_cell(rate))
    if len(current.apcer) > 1:
        worst = current.apcer_max
        figures.add_row("APCER, worst kind", "–" if worst is None else f"{worst:.2%}")
    parts.append(figures)
    kinds = list(current.apcer)
    sweep = FitTable(
        [
            Column("threshold", KEY, justify="right"),
            Column("BPCER", WRAP, justify="right"),
            *(Column(f"APCER {kind}", WRAP, justify="right") for kind in kinds),
        ],
        title="trade-off over the parallax threshold",
    )
    for point in result.tradeoff:
        mark = " ←" if point.threshold == result.threshold else ""
        sweep.add_row(
            f"{point.threshold:.3f}{mark}",
            _rate_cell(point.bpcer.rate, point.bpcer.errors, point.bpcer.total),
            *[_rate_cell(point.apcer[k].rate, point.apcer[k].errors, point.apcer[k].total) for k in kinds],
        )
    parts.append(sweep)
    parts.append(
        Text(
            "A video is accepted at a threshold when it made every move in time as one face and its parallax "
            "statistic reaches it; with few videos the intervals, not the rates, say what is known.",
            "dim",
        )
    )
    return parts
