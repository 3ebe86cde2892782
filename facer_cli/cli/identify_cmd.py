"""`facer identify`: who, of everyone enrolled, is this? Parse, call `Facer`, render."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facer_cli.cli.app import console, err_console, settings_for
from facer_cli.cli.bulk_cmd import AllFacesOption, CsvOption, EachOption, each_command, faces_command
from facer_cli.cli.enroll_cmd import (
    FrameReader,
    camera_source,
    explain_failure,
    explain_not_live,
    liveness_overrides,
    liveness_wanted,
)
from facer_cli.cli.errors import EXIT_AMBIGUOUS, EXIT_IDENTIFIED, EXIT_UNKNOWN_PERSON
from facer_cli.cli.options import (
    CameraOption,
    DbOption,
    DetSizeOption,
    DetThresholdOption,
    JsonOption,
    LivenessOption,
    MaxFramesOption,
    MinFramesOption,
    ModelOption,
    PitchOption,
    QualityOption,
    SourcesArgument,
    VerboseOption,
    YawOption,
    setting_option,
)
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.views import identify_view
from facer_cli.errors import LivenessError, TooFewFramesError

DECISION_EXIT = {"identified": EXIT_IDENTIFIED, "unknown": EXIT_UNKNOWN_PERSON, "ambiguous": EXIT_AMBIGUOUS}

TopOption = Annotated[Optional[int], setting_option("identify_top", "--top", shown=True)]
IdentifyThresholdOption = Annotated[Optional[float], setting_option("identify_threshold", "--identify-threshold")]
IdentifyMarginOption = Annotated[Optional[float], setting_option("identify_margin", "--identify-margin")]
IdentifyFramesOption = Annotated[Optional[int], setting_option("identify_frames", "--identify-frames")]


def identify_command(
    ctx: typer.Context,
    sources: SourcesArgument = None,
    camera: CameraOption = False,
    each: EachOption = False,
    all_faces: AllFacesOption = False,
    csv_output: CsvOption = False,
    identify_top: TopOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    identify_threshold: IdentifyThresholdOption = None,
    identify_margin: IdentifyMarginOption = None,
    identify_frames: IdentifyFramesOption = None,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
    liveness_flag: LivenessOption = None,
) -> None:
    """Who is this? Names the enrolled person, or says unknown or ambiguous.

    Searches every enrolled template of the current model; the attempt is recorded in the store's
    identify log.

    Exit 0 identified, 15 unknown, 16 ambiguous, 4 no usable probe, 6 store error, 13 not live
    (--liveness, or the liveness setting: "required" asks every identify for a challenge, so images
    are refused). --each: one answer per file (exit 0 all identified, else 4, 16 or 15 for the worst);
    --all-faces: every face of one photo, no name twice (docs/identify.md).
    In Python: Facer(settings).identify(paths), .identify_each(paths), .identify_faces(photo).
    """
    from facer_cli.service import Facer

    if each or all_faces:
        if each and all_faces:
            raise typer.BadParameter("give --each or --all-faces, not both")
        if camera or not sources:
            raise typer.BadParameter("--each and --all-faces take image files or folders, not --camera")
        bulk = Facer(settings_for(ctx, **liveness_overrides(liveness_flag)))
        if each:
            code = each_command(bulk, sources, json_output=json_output, csv_output=csv_output, verbose=verbose)
        else:
            code = faces_command(bulk, sources, json_output=json_output, verbose=verbose)
        raise typer.Exit(code)
    if csv_output:
        raise typer.BadParameter("--csv goes with --each")
    camera_source(camera, sources)
    facer = Facer(settings_for(ctx, **liveness_overrides(liveness_flag)))
    liveness = liveness_wanted(facer.settings, camera, liveness_flag)
    reader = FrameReader(facer, camera, sources, not json_output, liveness)
    with facer.open_store("write") as store:
        try:
            result = facer.identify(reader, store=store)
        except TooFewFramesError:
            explain_failure(reader.frames, json_output, verbose)
            raise
        except LivenessError as error:
            explain_not_live(error, json_output, verbose)
            raise
    for warning in result.warnings:
        err_console.print("[bold yellow]warning:[/] ", end="")
        err_console.print(literal(warning), soft_wrap=True)
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(identify_view(result, verbose))
    raise typer.Exit(DECISION_EXIT[result.decision])
