"""Option declarations shared by the commands. Options named after a setting override it by
themselves (see `app.flag_overrides`); their help shows the setting's default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from facer_cli.settings import SETTING_INFOS

if TYPE_CHECKING:
    from facer_cli.store import Mode


def setting_help(name: str, text: str | None = None) -> str:
    info = SETTING_INFOS[name]
    default = "per-user data folder" if info.default is None else info.default
    return f"{text or info.description} [default: {default}, setting {name}]".replace("[", r"\[")


def setting_option(name: str, *flags: str, help: str | None = None) -> Any:
    return typer.Option(*flags, help=setting_help(name, help), show_default=False, rich_help_panel="Settings")


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of tables.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Full reasons in the tables, and every camera frame.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]
ModelOption = Annotated[Optional[str], setting_option("model_name", "--model")]
DetSizeOption = Annotated[Optional[int], setting_option("det_size", "--det-size")]
DetThresholdOption = Annotated[Optional[float], setting_option("detection_threshold", "--detection-threshold")]
YawOption = Annotated[Optional[float], setting_option("pose_yaw_limit", "--pose-yaw-limit")]
PitchOption = Annotated[Optional[float], setting_option("pose_pitch_limit", "--pose-pitch-limit")]
QualityOption = Annotated[Optional[float], setting_option("min_quality_score", "--min-quality-score")]
MaxFramesOption = Annotated[Optional[int], setting_option("max_frames", "--max-frames")]
MinFramesOption = Annotated[Optional[int], setting_option("min_valid_frames", "--min-valid-frames")]
DbOption = Annotated[
    Optional[Path],
    typer.Option(
        "--db",
        help=r"SQLite database. \[default: FACER_DB or the db setting, else facer.db in the "
        r"per-user data folder (see `facer config show`)]",
    ),
]
CameraOption = Annotated[
    bool,
    typer.Option(
        "--camera",
        help="Capture from a camera instead of images. The one argument after it, if any, is the source: "
        "a camera index (default: camera_index), a video file or a stream URL.",
    ),
]
SourcesArgument = Annotated[
    Optional[List[str]],
    typer.Argument(
        help="Images and folders; with --camera, the camera index, video file or stream URL.", show_default=False
    ),
]
LivenessOption = Annotated[
    Optional[bool],
    typer.Option(
        "--liveness/--no-liveness",
        help="Ask for a random head-turn challenge during the --camera capture and refuse a print, a screen or "
        "a face that does not follow it (exit 13); images cannot answer one. "
        + setting_help("liveness", "Overrides the liveness setting for this run."),
        show_default=False,
    ),
]
UserArgument = Annotated[str, typer.Argument(help="The user's name.", show_default=False)]
ReplaceOption = Annotated[bool, typer.Option("--replace", help="The user exists: replace their template(s).")]
AddOption = Annotated[bool, typer.Option("--add", help="The user exists: add this as another template.")]
AllowLookalikeOption = Annotated[
    bool,
    typer.Option(
        "--allow-lookalike",
        help="Store it even when the template matches another enrolled person at or above identify_threshold "
        "(a look-alike, not the same person twice); the pair is recorded.",
    ),
]


def enroll_mode(replace: bool, add: bool) -> "Mode":
    if replace and add:
        raise typer.BadParameter("give --replace or --add, not both")
    return "replace" if replace else "add" if add else "new"
