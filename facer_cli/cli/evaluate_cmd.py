"""`facer evaluate DATA`: accuracy, FAR/FRR and recommended thresholds on labelled faces."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import RenderableType
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from facer_cli.cli.app import (
    DetSizeOption, DetThresholdOption, JsonOption, ModelOption, PitchOption, QualityOption, YawOption,
    app, console, err_console, print_json, settings_for,
)
from facer_cli.errors import ConfigError
from facer_cli.evaluation.dataset import load_dataset
from facer_cli.evaluation.metrics import Metrics
from facer_cli.evaluation.runner import Evaluation, available_cores, evaluate

PROGRESS_FROM = 5
SHOWN_FAILURES = 5


class Protocol(str, Enum):
    pairs = "pairs"
    enroll = "enroll"


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="A folder with one subfolder per identity, or a CSV of pairs path_a,path_b,same.")],
    target_far: Annotated[float, typer.Option("--target-far", help="FAR the recommended cosine_threshold_high must keep (impostors let in).")] = 1e-3,
    target_frr: Annotated[float, typer.Option("--target-frr", help="FRR the recommended cosine_threshold_low must keep (genuine users turned away).")] = 1e-2,
    protocol: Annotated[Protocol, typer.Option("--protocol", help="pairs: image against image. enroll: templates from k images against single images (identity folders), beside pairs.")] = Protocol.pairs,
    enroll_images: Annotated[Optional[int], typer.Option("-k", "--enroll-images", help="Images per enrolled template (default: min_valid_frames).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Save the ROC curve and score histograms to this PNG (needs matplotlib: pip install 'facer\\[plot]').", dir_okay=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes analysing images (default: the number of cores).")] = None,
    json_output: JsonOption = False,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """What the thresholds mean on your own faces: accuracy, FAR, FRR, EER, TAR@FAR and thresholds to paste into facer.toml."""
    settings = settings_for(ctx)
    if plot is not None:
        from facer_cli.evaluation.plot import check_available

        if plot.suffix.lower() != ".png":
            raise ConfigError(f"--plot writes a PNG image: give a file name ending in .png, not {plot.name!r}")
        check_available()
    dataset = load_dataset(data)
    arguments = dict(
        protocol=protocol.value, k=enroll_images, target_far=target_far, target_frr=target_frr, workers=workers,
    )
    if json_output or len(dataset.images) < PROGRESS_FROM:
        result = evaluate(dataset, settings, **arguments)
    else:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(
                f"analysing {len(dataset.images)} images on {workers or available_cores()} worker(s)",
                total=len(dataset.images),
            )
            result = evaluate(dataset, settings, progress=lambda n: progress.advance(task, n), **arguments)
    if plot is not None:
        from facer_cli.evaluation.plot import save_plot

        save_plot(result, plot)
    if json_output:
        print_json({**result.to_dict(), "plot": None if plot is None else str(plot)})
        return
    for part in render_evaluation(result):
        if isinstance(part, str):  # facer.toml lines: never wrapped, so they paste as they are
            console.print(part, soft_wrap=True, markup=False)
        else:
            console.print(part)
    if plot is not None:
        console.print(f"plot saved to {plot}")


# -- rendering (from the same dataclasses as the JSON) --------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _of(count: int, total: int) -> str:
    return f"{count}/{total}"


def _rate_cell(rate: float | None, count: int, total: int) -> str:
    return "–" if rate is None else f"{_pct(rate)} ({_of(count, total)})"


def _scores_cell(summary) -> str:
    if summary.min is None:
        return "–"
    text = f"{summary.min:.3f} / {summary.mean:.3f} / {summary.max:.3f}"
    return text + (f" ({summary.no_score} without score)" if summary.no_score else "")


def _rows(m: Metrics) -> list[tuple[str, str]]:
    current = m.current
    g, i = current.genuine, current.impostor
    rows = [
        ("pairs (genuine / impostor)", f"{m.pairs} ({m.genuine.count} / {m.impostor.count})"),
        ("accuracy", _rate_cell(current.accuracy, g.match + i.no_match - i.no_score, g.total + i.total)),
        ("FAR: impostor ≥ high", _rate_cell(current.far, i.match, i.total)),
        ("FRR: genuine < low or no face", _rate_cell(current.frr, g.no_match, g.total)),
        ("uncertain: genuine", _rate_cell(current.genuine_uncertain, g.uncertain, g.total)),
        ("uncertain: impostor", _rate_cell(current.impostor_uncertain, i.uncertain, i.total)),
        ("pairs without a score (g / i)", f"{g.no_score} / {i.no_score}"),
        ("EER (threshold)", f"– ({m.eer.note})" if m.eer.rate is None else f"{_pct(m.eer.rate)} ({m.eer.threshold:.4f})"),
    ]
    for point in m.tar_at_far:
        cell = f"{_pct(point.tar)} (≥ {point.threshold:.4f})" if point.supported else f"– ({point.note})"
        rows.append((f"TAR @ FAR {point.far:g}", cell))
    best = m.best
    rows.append(("best-accuracy threshold", "–" if best is None else f"{best.threshold:.4f} ({_pct(best.accuracy)})"))
    r = m.recommendation
    rows.append((
        f"high for FAR ≤ {r.target_far:g}",
        "–" if r.threshold_high is None else
        f"{r.threshold_high:.4f} (FAR {_pct(r.far_at_high)}, TAR {_pct(r.tar_at_high)})" + ("" if r.far_supported else " *"),
    ))
    rows.append((
        f"low for FRR ≤ {r.target_frr:g}",
        "–" if r.threshold_low is None else
        f"{r.threshold_low:.4f} (FRR {_pct(r.frr_at_low)})" + ("" if r.frr_supported else " *"),
    ))
    rows.append(("genuine scores min / mean / max", _scores_cell(m.genuine)))
    rows.append(("impostor scores min / mean / max", _scores_cell(m.impostor)))
    return rows


def figures_table(result: Evaluation) -> Table:
    table = Table(
        title=f"at cosine_threshold_high {result.threshold_high:g} / cosine_threshold_low {result.threshold_low:g}",
        header_style="bold",
    )
    table.add_column("figure")
    columns = [_rows(p.metrics) for p in result.protocols]
    for p in result.protocols:
        table.add_column(p.label, overflow="fold")
    for index, (name, _) in enumerate(columns[0]):
        table.add_row(name, *[column[index][1] for column in columns])
    return table


def unusable_table(result: Evaluation) -> Table:
    table = Table(title=f"{len(result.unusable)} image(s) without a usable face: their pairs count as rejected",
                  header_style="bold", title_style="yellow")
    table.add_column("image", overflow="fold")
    table.add_column("reason", overflow="fold")
    for item in result.unusable:
        table.add_row(item.path, item.reason)
    return table


def render_evaluation(result: Evaluation) -> list[RenderableType | str]:
    """Tables and lines to print, in order; plain strings are facer.toml lines."""
    dataset = result.dataset
    genuine, impostor = dataset.pair_counts
    what = (
        f"{len(dataset.identities)} identities (folders)" if dataset.kind == "folders" else f"{genuine + impostor} pairs (CSV)"
    )
    parts: list[RenderableType | str] = [Text(f"{dataset.source}: {result.images} images, {what}, model {result.model}")]
    if dataset.ignored:
        parts.append(Text(f"ignored {len(dataset.ignored)} file(s) outside identity folders", "yellow"))
    if result.unusable:
        parts.append(unusable_table(result))
    parts.append(figures_table(result))
    for p in result.protocols:
        if p.enroll is not None:
            e = p.enroll
            line = f"enroll: {e.templates} template(s) of {e.k} image(s) from {len(e.identities)} identities"
            if e.skipped:
                line += f"; {len(e.skipped)} with ≤ {e.k} images are probes only ({', '.join(e.skipped)})"
            parts.append(Text(line))
            for failure in e.failures[:SHOWN_FAILURES]:
                parts.append(Text(f"  template of {failure.identity} not built: {failure.reason}", "yellow"))
            if len(e.failures) > SHOWN_FAILURES:
                parts.append(Text(f"  and {len(e.failures) - SHOWN_FAILURES} more templates not built (--json lists them)", "yellow"))
    source = result.recommended_from
    for note in source.metrics.recommendation.notes:
        parts.append(Text(f"* {note}", "yellow"))
    toml = source.metrics.recommendation.toml()
    if toml:
        parts.append(Text(
            f"facer.toml, from the {source.label} protocol (FAR ≤ {result.target_far:g}, FRR ≤ {result.target_frr:g}):",
            "bold",
        ))
        parts.extend(toml.splitlines())
    parts.append(Text(
        f"{result.images} images in {result.embed_seconds:.1f} s "
        f"({result.images_per_second:.1f} images/s, {result.workers} worker(s))",
        "dim",
    ))
    return parts

