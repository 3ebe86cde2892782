"""`facer evaluate --plot FILE.png`: the ROC curve and the score histograms, thresholds marked.

matplotlib is an optional extra (`pip install 'facer[plot]'`), imported only
here and only when a plot is asked for. No pyplot: a bare Agg canvas, so no
global backend is chosen for the caller and no window ever opens. The figure
has a fixed size: FIGURE_INCHES at DPI pixels per inch (1200 × 500 pixels).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facer_cli.errors import MissingExtraError, OutputError
from facer_cli.evaluation.runner import Evaluation

if TYPE_CHECKING:
    from facer_cli.evaluation.liveness import LivenessEvaluation

FIGURE_INCHES = (12.0, 5.0)
DPI = 100
FIGURE_PIXELS = (int(FIGURE_INCHES[0] * DPI), int(FIGURE_INCHES[1] * DPI))  # width, height
COLORS = {"pairs": "tab:blue", "enroll": "tab:orange"}
INSTALL_HINT = "the ROC plot needs matplotlib: pip install 'facer[plot]'"
MAX_CURVE_POINTS = 5000


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError(INSTALL_HINT, extra="plot") from None
    return Figure, FigureCanvasAgg


def check_available() -> None:
    """Fail before the (long) evaluation rather than after it."""
    _matplotlib()


def save_plot(evaluation: Evaluation, path: Path | str) -> Path:
    """Left: ROC on acquired pairs (TAR against FMR, FMR on a log axis). Right: score histograms with the thresholds."""
    Figure, FigureCanvasAgg = _matplotlib()
    path = Path(path)
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    roc, hist = figure.subplots(1, 2)
    _draw_roc(roc, evaluation)
    _draw_histograms(hist, evaluation)
    figure.suptitle(
        f"facer evaluate {evaluation.dataset.source.name}: {evaluation.images} images, model {evaluation.model}",
        fontsize=11,
    )
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    try:
        figure.savefig(path, format="png", dpi=DPI)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _draw_roc(ax, evaluation: Evaluation) -> None:
    floor = None
    for result in evaluation.protocols:
        curve = result.metrics.curve()
        if curve is None:
            continue
        impostors = result.metrics.impostor.count - result.metrics.impostor.no_score
        lowest = 0.5 / impostors  # FMR 0 is drawn here: half of the smallest measurable FMR
        floor = lowest if floor is None else min(floor, lowest)
        keep = _thin(len(curve.far))
        far = np.maximum(curve.far[keep], lowest)
        tar = curve.tar[keep]
        color = COLORS.get(result.name)
        eer = result.metrics.eer.rate
        label = f"{result.label}" + (f", EER {eer:.2%}" if eer is not None else "")
        ax.step(far, tar, where="post", color=color, label=label)
        current = result.metrics.current
        if current.fmr is not None and current.genuine.acquired:
            ax.plot(
                max(current.fmr, lowest),
                current.genuine.match / current.genuine.acquired,
                "o",
                color=color,
                markersize=6,
                label=f"{result.label} at high = {current.threshold_high:g}",
            )
    if floor is None:
        ax.text(0.5, 0.5, "no ROC: needs genuine and impostor pairs", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.5, 1.0)
    ax.set_ylim(0.0, 1.02)
    for far in (1e-3, 1e-2, 1e-1):
        if far > floor:
            ax.axvline(far, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlabel("FMR (acquired impostor pairs accepted; 0 drawn at ½ ÷ those pairs)")
    ax.set_ylabel("TAR = 1 − FNMR (acquired genuine pairs accepted)")
    ax.set_title("ROC on acquired pairs: accept iff score ≥ threshold")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def _thin(count: int, most: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Vertex indexes to draw: all of them, or log-spaced ones (dense where FAR is low) and the last."""
    if count <= most:
        return np.arange(count)
    return np.unique(np.concatenate([[0], np.geomspace(1, count - 1, most).astype(np.int64), [count - 1]]))


def _draw_histograms(ax, evaluation: Evaluation) -> None:
    result = evaluation.recommended_from
    metrics = result.metrics
    genuine = metrics.genuine_scores[~np.isnan(metrics.genuine_scores)]
    impostor = metrics.impostor_scores[~np.isnan(metrics.impostor_scores)]
    both = np.concatenate([genuine, impostor])
    if len(both) == 0:
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        return
    low_edge = min(-0.2, float(both.min()))
    bins = np.linspace(low_edge, 1.0, 61)
    for scores, name, color in ((impostor, "impostor", "tab:red"), (genuine, "genuine", "tab:green")):
        if len(scores):
            ax.hist(scores, bins=bins, density=True, alpha=0.5, color=color, label=f"{name} ({len(scores)})")
    lines = [
        (evaluation.threshold_high, "k", "-", f"high {evaluation.threshold_high:g} (current)"),
        (evaluation.threshold_low, "k", "--", f"low {evaluation.threshold_low:g} (current)"),
    ]
    recommendation = metrics.recommendation
    if recommendation.threshold_high is not None:
        lines.append(
            (
                recommendation.threshold_high,
                "tab:purple",
                "-",
                f"high {recommendation.threshold_high:.4f} (FAR ≤ {recommendation.target_far:g})",
            )
        )
    if recommendation.threshold_low is not None:
        lines.append(
            (
                recommendation.threshold_low,
                "tab:purple",
                "--",
                f"low {recommendation.threshold_low:.4f} (FRR ≤ {recommendation.target_frr:g})",
            )
        )
    if metrics.eer.threshold is not None:
        lines.append((metrics.eer.threshold, "tab:gray", ":", f"EER threshold {metrics.eer.threshold:.4f}"))
    for x, color, style, label in lines:
        ax.axvline(x, color=color, linestyle=style, linewidth=1.2, label=label)
    ax.set_xlim(low_edge, 1.0)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"scores, {result.label} protocol")
    ax.legend(loc="upper left", fontsize=8)


def save_liveness_plot(evaluation: "LivenessEvaluation", path: Path | str) -> Path:
    """The parallax residual of every live and attack video side by side, the threshold marked
    (`facer evaluate --liveness DIR --plot FILE.png`). Videos without a residual (no turn made) are counted
    in the title, not drawn."""
    Figure, FigureCanvasAgg = _matplotlib()
    path = Path(path)
    figure = Figure(figsize=(FIGURE_INCHES[0] / 2, FIGURE_INCHES[1]), dpi=DPI)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    kinds = ["live", *evaluation.species]
    residuals = {
        kind: [v.parallax for v in evaluation.videos if v.kind == kind and v.parallax is not None] for kind in kinds
    }
    drawn = [r for values in residuals.values() for r in values]
    top = max([evaluation.threshold * 2, *drawn]) * 1.05
    bins = np.linspace(0.0, top, 41)
    for kind in kinds:
        if residuals[kind]:
            color = "tab:green" if kind == "live" else None
            ax.hist(residuals[kind], bins=bins, alpha=0.5, color=color, label=f"{kind} ({len(residuals[kind])})")
    ax.axvline(evaluation.threshold, color="k", linestyle="--", label=f"threshold {evaluation.threshold:g}")
    missing = sum(v.parallax is None for v in evaluation.videos)
    ax.set_xlabel("parallax residual (inter-ocular distances): live heads high, flat surfaces low")
    ax.set_ylabel("videos")
    ax.set_title(f"liveness: {len(evaluation.videos)} videos" + (f", {missing} without a turn" if missing else ""))
    ax.legend(fontsize=8)
    return _save(figure, path)
