"""`facer evaluate`: what the thresholds mean on your own faces."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from facer_cli.cli.app import console, err_console, settings_for
from facer_cli.cli.options import (
    DetSizeOption,
    DetThresholdOption,
    JsonOption,
    ModelOption,
    PitchOption,
    QualityOption,
    YawOption,
)
from facer_cli.cli.output.evaluate import evaluation_view, print_all
from facer_cli.cli.output.text import literal, print_json

PROGRESS_FROM = 5


def check_plot(plot: Path) -> None:
    """Before the (long) evaluation: a .png name in a folder that exists, and matplotlib installed."""
    from facer_cli.errors import OutputError, UsageError
    from facer_cli.evaluation.plot import check_available

    if plot.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG image: give a file name ending in .png, not {plot.name!r}")
    if not plot.parent.is_dir():
        raise OutputError(f"cannot write {plot}: there is no folder {plot.parent}")
    check_available()


class Protocol(str, Enum):
    pairs = "pairs"
    enroll = "enroll"
    identify = "identify"


def evaluate_command(
    ctx: typer.Context,
    data: Annotated[
        Optional[Path],
        typer.Argument(
            readable=False,
            help="A folder with one subfolder per identity, or a CSV of pairs path_a,path_b,same.",
            show_default=False,
        ),
    ] = None,
    liveness_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--liveness",
            help="Evaluate the liveness check instead, on a folder of live/ and attack/ videos.",
            show_default=False,
        ),
    ] = None,
    target_far: Annotated[
        float,
        typer.Option("--target-far", help="FAR (impostors let in) for cosine_threshold_high."),
    ] = 1e-3,
    target_frr: Annotated[
        float,
        typer.Option("--target-frr", help="FRR (genuine users turned away) for cosine_threshold_low."),
    ] = 1e-2,
    protocol: Annotated[
        Protocol,
        typer.Option(
            "--protocol",
            metavar="PROTOCOL",
            help="pairs (image against image), enroll (k-image templates against images) or identify (1:N); "
            "the last two beside pairs.",
        ),
    ] = Protocol.pairs,
    target_fpir: Annotated[
        float,
        typer.Option(
            "--target-fpir",
            help="FPIR (strangers named as someone) for identify_threshold.",
        ),
    ] = 1e-2,
    enroll_images: Annotated[
        Optional[int],
        typer.Option("-k", "--enroll-images", help="Images per template (default: min_valid_frames)."),
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help="Save the ROC curve and score histograms to this PNG (needs facer\\[plot]).",
        ),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Processes analysing images (default: one per core).")
    ] = None,
    allow_below_floor: Annotated[
        bool,
        typer.Option(
            "--allow-below-floor",
            help="Let cosine_threshold_high go below the model's safe floor (0.30): see docs/evaluate.md.",
        ),
    ] = False,
    json_output: JsonOption = False,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """What the thresholds mean on your own faces: FAR, FRR, EER and thresholds for facer.toml.

    With --liveness DIR: APCER and BPCER of the liveness check (docs/liveness.md). Exit 0 when it ran,
    2 for a bad option, 4 when DATA cannot be used. More: docs/evaluate.md.
    In Python: Facer(settings).evaluate(data).
    """
    from rich.progress import Progress

    from facer_cli.errors import UsageError
    from facer_cli.evaluation import evaluate, load_dataset
    from facer_cli.evaluation.runner import available_cores

    settings = settings_for(ctx)
    if liveness_dir is not None:
        if data is not None:
            raise UsageError("give DATA (faces) or --liveness DIR (videos), not both")
        from facer_cli.cli.output.evaluate import liveness_evaluation_view
        from facer_cli.evaluation.liveness import evaluate_liveness

        if plot is not None:
            check_plot(plot)
        evaluation = evaluate_liveness(liveness_dir, settings)
        if plot is not None:
            from facer_cli.evaluation.plot import save_liveness_plot

            save_liveness_plot(evaluation, plot)
        if json_output:
            print_json({**evaluation.to_dict(), "plot": None if plot is None else str(plot)})
        else:
            print_all(console, liveness_evaluation_view(evaluation))
            if plot is not None:
                console.print(literal(f"plot saved to {plot}"))
        return
    if data is None:
        raise UsageError("give DATA: a folder of identity folders or a CSV of pairs (or --liveness DIR)")
    if plot is not None:
        check_plot(plot)
    dataset = load_dataset(data)
    arguments: dict[str, Any] = dict(
        protocol=protocol.value,
        k=enroll_images,
        target_far=target_far,
        target_frr=target_frr,
        workers=workers,
        allow_below_floor=allow_below_floor,
        target_fpir=target_fpir,
    )
    if json_output or len(dataset.images) < PROGRESS_FROM or not err_console.is_terminal:
        result = evaluate(dataset, settings, **arguments)  # type: ignore[arg-type]
    else:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(
                f"analysing {len(dataset.images)} images on {workers or available_cores()} worker(s)",
                total=len(dataset.images),
            )
            result = evaluate(
                dataset,
                settings,
                progress=lambda n: progress.advance(task, n),  # type: ignore[arg-type]
                **arguments,
            )
    if plot is not None:
        from facer_cli.evaluation.plot import save_plot

        save_plot(result, plot)
    if json_output:
        print_json({**result.to_dict(), "plot": None if plot is None else str(plot)})
        return
    print_all(console, evaluation_view(result))
    if plot is not None:
        console.print(literal(f"plot saved to {plot}"))
