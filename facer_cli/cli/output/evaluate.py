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


def _scores_cell(summary: Any) -> str:
    if summary.min is None:
        return "–"
    text = f"{summary.min:.3f} / {summary.mean:.3f} / {summary.max:.3f}"
    return text + (f" ({summary.no_score} without score)" if summary.no_score else "")


def _metric_rows(m: Any) -> list[tuple[str, str]]:
    current = m.current
    g, i = current.genuine, current.impostor
    rows = [
        ("pairs (genuine / impostor)", f"{m.pairs} ({m.genuine.count} / {m.impostor.count})"),
        ("accuracy", _rate_cell(current.accuracy, g.match + i.no_match - i.no_score, g.total + i.total)),
        ("FAR: impostor ≥ high", _rate_cell(current.far, i.match, i.total)),
        ("  FAR 95% interval", _ci_cell(current.far_ci)),
        ("FRR: genuine < low or no face", _rate_cell(current.frr, g.no_match, g.total)),
        ("  FRR 95% interval", _ci_cell(current.frr_ci)),
        ("uncertain: genuine", _rate_cell(current.genuine_uncertain, g.uncertain, g.total)),
        ("uncertain: impostor", _rate_cell(current.impostor_uncertain, i.uncertain, i.total)),
        ("pairs without a score (g / i)", f"{g.no_score} / {i.no_score}"),
        (
            "EER (threshold)",
            f"– ({m.eer.note})" if m.eer.rate is None else f"{_pct(m.eer.rate)} ({m.eer.threshold:.4f})",
        ),
    ]
    for point in m.tar_at_far:
        cell = f"{_pct(point.tar)} (≥ {point.threshold:.4f})" if point.supported else f"– ({point.note})"
        rows.append((f"TAR @ FAR {point.far:g}", cell))
    best = m.best
    rows.append(("best-accuracy threshold", "–" if best is None else f"{best.threshold:.4f} ({_pct(best.accuracy)})"))
    r = m.recommendation
    high = "–"
    if r.threshold_high is not None and r.far_at_high is not None and r.far_ci_at_high is not None:
        high = (
            f"{r.threshold_high:.4f} (FAR {_pct(r.far_at_high)}, ≤ {_pct(r.far_ci_at_high[1])} at 95%, "
            f"TAR {_pct(r.tar_at_high)})" + ("" if r.far_supported else " *")
        )
    rows.append((f"high for FAR ≤ {r.target_far:g}", high))
    low = "–"
    if r.threshold_low is not None and r.frr_at_low is not None and r.frr_ci_at_low is not None:
        low = f"{r.threshold_low:.4f} (FRR {_pct(r.frr_at_low)}, ≤ {_pct(r.frr_ci_at_low[1])} at 95%)" + (
            "" if r.frr_supported else " *"
        )
    rows.append((f"low for FRR ≤ {r.target_frr:g}", low))
    rows.append(("genuine scores min / mean / max", _scores_cell(m.genuine)))
    rows.append(("impostor scores min / mean / max", _scores_cell(m.impostor)))
    return rows


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
    if result.unusable:
        unusable = FitTable(
            [Column("image", KEY), Column("reason", DECISION)],
            title=f"{len(result.unusable)} image(s) without a usable face: their pairs count as rejected",
            title_style="yellow",
        )
        for item in result.unusable:
            unusable.add_row(literal(item.path), literal(item.reason))
        parts.append(unusable)
    figures = FitTable(
        [Column("figure", WRAP), *(Column(p.label, WRAP) for p in result.protocols)],
        title=f"at cosine_threshold_high {result.threshold_high:g} / cosine_threshold_low {result.threshold_low:g}",
        box=box.HEAVY_HEAD,
        pad_edge=True,
    )
    columns = [_metric_rows(p.metrics) for p in result.protocols]
    for index, (name, _) in enumerate(columns[0]):
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
    source = result.recommended_from
    recommendation = source.metrics.recommendation
    for note in recommendation.notes:
        parts.append(literal(f"* {note}", "yellow"))
    toml = recommendation.toml()
    if toml:
        parts.append(
            Text(
                f"facer.toml, from the {source.label} protocol (FAR ≤ {result.target_far:g}, FRR ≤ {result.target_frr:g}"
                ", each within its 95% upper bound):",
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
                f"no {' or '.join(missing)} to paste: these pairs do not support the target (see * above)",
                "bold yellow",
            )
        )
    if result.identify is not None:
        parts.extend(identify_evaluation_view(result.identify))
    parts.append(
        Text(
            f"{result.images} images in {result.embed_seconds:.1f} s "
            f"({result.images_per_second:.1f} images/s, {result.workers} worker(s))",
            "dim",
        )
    )
    return parts


def identify_evaluation_view(outcome: Any) -> list[RenderableType | str]:
    """The identify protocol's table, notes and facer.toml lines."""
    mated, non_mated = outcome.mated, outcome.non_mated
    counts = outcome.counts(outcome.threshold, outcome.margin)
    m, n = counts["mated"], counts["non_mated"]
    table = FitTable(
        [Column("figure", WRAP), Column("value", WRAP)],
        title=f"identify (1:N) at identify_threshold {outcome.threshold:g} / identify_margin {outcome.margin:g}",
        box=box.HEAVY_HEAD,
        pad_edge=True,
    )
    rows = [
        ("gallery", f"{outcome.templates} template(s) of k={outcome.k} image(s), {len(outcome.enrolled)} identities"),
        (
            "searches (mated / non-mated)",
            f"{len(mated)} / {len(non_mated)} ({len(outcome.kept_out)} identities kept out)",
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
        rows.append(
            (
                f"FNIR @ FPIR {point.fpir:g}",
                f"{_pct(point.fnir)} (≥ {point.threshold:.4f})"
                if point.supported
                else f"– ({point.to_dict()['note']})",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    parts: list[RenderableType | str] = [table]
    for failure in outcome.failures:
        parts.append(literal(f"  template of {failure} not built: its images are non-mated searches", "yellow"))
    for note in outcome.notes:
        parts.append(literal(f"* {note}", "yellow"))
    toml = outcome.toml()
    if toml:
        parts.append(Text(f"facer.toml, from the identify protocol (FPIR ≤ {outcome.target_fpir:g}):", "bold"))
        parts.extend(toml.splitlines())
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
