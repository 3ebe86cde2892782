"""Option declarations shared by the commands. Options named after a setting override it by
themselves (see `app.flag_overrides`); most are hidden from `--help` and shown, with the values in
effect and where each comes from, by `facer CMD --help-settings`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from facer_cli.settings import SETTING_INFOS

if TYPE_CHECKING:
    from facer_cli.settings import LoadedSettings
    from facer_cli.store import Mode


def shown_value(value: Any, secret: bool = False) -> str:
    """A setting's value as facer.toml spells it (a secret only as "(set)")."""
    if value is None:
        return "not set"
    if secret:
        return "(set)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def setting_help(name: str, text: str | None = None) -> str:
    """The option's help, then the setting it overrides and the built-in value (the value in effect,
    which facer.toml or FACER_* may change, is shown by --help-settings)."""
    info = SETTING_INFOS[name]
    default = shown_value(info.default) if name != "db" else "facer.db in the per-user data folder"
    return f"{text or info.description} [setting {name}, built-in: {default}]".replace("[", r"\[")


def setting_option(name: str, *flags: str, help: str | None = None, shown: bool = False) -> Any:
    """An option overriding setting `name`: listed by --help-settings; `shown` also in --help."""
    return typer.Option(
        *flags,
        help=setting_help(name, help),
        show_default=False,
        hidden=not shown,
        rich_help_panel=None if shown else "Settings",
    )


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of tables.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Full reasons, every camera frame.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]
ModelOption = Annotated[Optional[str], setting_option("model_name", "--model")]
DetSizeOption = Annotated[Optional[int], setting_option("det_size", "--det-size")]
DetThresholdOption = Annotated[Optional[float], setting_option("detection_threshold", "--detection-threshold")]
YawOption = Annotated[Optional[float], setting_option("pose_yaw_limit", "--pose-yaw-limit")]
PitchOption = Annotated[Optional[float], setting_option("pose_pitch_limit", "--pose-pitch-limit")]
QualityOption = Annotated[Optional[float], setting_option("min_quality_score", "--min-quality-score")]
MaxFramesOption = Annotated[Optional[int], setting_option("max_frames", "--max-frames")]
MinFramesOption = Annotated[Optional[int], setting_option("min_valid_frames", "--min-valid-frames")]
DbOption = Annotated[Optional[Path], setting_option("db", "--db", help="SQLite file or postgresql:// URL.", shown=True)]
CameraOption = Annotated[
    bool,
    typer.Option(
        "--camera",
        help="Use a camera: SOURCES is its index, a video or URL.",
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
        help=setting_help("liveness", "Ask for a head-turn challenge during a --camera capture."),
        show_default=False,
    ),
]
UserArgument = Annotated[str, typer.Argument(help="The user's name.", show_default=False)]
ReplaceOption = Annotated[bool, typer.Option("--replace", help="Replace their template(s).")]
AddOption = Annotated[bool, typer.Option("--add", help="Add another template.")]
AllowLookalikeOption = Annotated[
    bool,
    typer.Option(
        "--allow-lookalike",
        help="Store a look-alike too (recorded).",
    ),
]
AllowPathNameOption = Annotated[
    bool,
    typer.Option(
        "--allow-path-name",
        help="Accept a name that looks like a path.",
    ),
]


AllowDifferentFaceOption = Annotated[
    bool,
    typer.Option(
        "--allow-different-face",
        help="With --add/--replace: accept a changed face (recorded).",
    ),
]


def enroll_mode(replace: bool, add: bool) -> "Mode":
    if replace and add:
        raise typer.BadParameter("give --replace or --add, not both")
    return "replace" if replace else "add" if add else "new"


# --- `facer CMD --help-settings`: the setting options, with the values in effect -------------------

HELP_SETTINGS = "--help-settings"
# Options that override a setting under another parameter name (the command passes them on itself).
SETTING_ALIASES = {
    "liveness_flag": "liveness",
    "host": "server_host",
    "port": "server_port",
    "concurrency": "server_concurrency",
}


def setting_of(param: Any) -> str | None:
    """The setting a command's option overrides, or None."""
    if getattr(param, "param_type_name", None) != "option":
        return None
    name = SETTING_ALIASES.get(param.name or "", param.name)
    return name if name in SETTING_INFOS else None


def setting_params(command: Any) -> list[Any]:
    """The command's options that override a setting, in the order it declares them."""
    return [param for param in command.params if setting_of(param)]


def add_help_settings(command: Any) -> None:
    """Give a command with setting options `--help-settings`; its --help says that they are there."""
    from typer.core import TyperOption

    params = setting_params(command)
    if not params or any(HELP_SETTINGS in param.opts for param in command.params):
        return
    flags = [param.opts[0] for param in params if param.hidden] or [param.opts[0] for param in params]
    some = ", ".join(sorted(flags, key=len)[:2]) + (f", … {len(flags)} in all" if len(flags) > 2 else "")
    command.params.append(
        TyperOption(
            param_decls=[HELP_SETTINGS],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_print_setting_options,
            help=f"The setting options ({some}) and their values in effect.",
        )
    )


def _print_setting_options(ctx: Any, param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from rich.console import Console

    from facer_cli.settings import load_settings

    config = getattr(ctx.find_root().obj, "config", None)  # the global --config (`app.AppState`)
    Console(highlight=False).print(setting_options_view(ctx, setting_params(ctx.command), load_settings(config)))
    ctx.exit(0)


def origin_label(origin: str) -> str:
    """Where a value comes from, in words: "built-in", "from facer.toml", "from FACER_DET_SIZE"."""
    if origin == "default":
        return "built-in"
    if origin.startswith("FACER_") or origin == "flag":
        return f"from {origin}"
    path = Path(origin)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        home = str(Path.home())
        shown = "~" + origin[len(home) :] if origin.startswith(home + "/") else origin
    return f"from {shown}"


def setting_options_view(ctx: Any, params: list[Any], loaded: "LoadedSettings") -> Any:
    """Each setting option, the value in effect (and the built-in one when it differs), and what it means."""
    from rich import box
    from rich.console import Group
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    values = loaded.settings.as_dict()
    table = Table(highlight=False, show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(ratio=10)
    for param in params:
        name = setting_of(param)
        assert name is not None
        info = SETTING_INFOS[name]
        flags = "/".join(param.opts + param.secondary_opts)
        metavar = "" if param.is_flag else " " + param.make_metavar(ctx)
        value = values[name]
        if name == "db":
            from facer_cli.store.urls import describe_db

            value = describe_db(value, loaded.settings.db_path)  # a PostgreSQL URL without its password
        origin = origin_label(loaded.origins.get(name, "default"))
        if origin != "built-in":
            origin += f" (built-in: {shown_value(info.default, info.secret)})"
        effect = Text.assemble((shown_value(value, info.secret), "bold"), f"  {origin}")
        meaning = Text(f"{info.description} Setting {name}.", style="dim")
        table.add_row(flags + metavar, Text("\n").join([effect, meaning]))
    intro = Text.assemble(
        (ctx.command_path, "bold"),
        ": each option below overrides its setting for one run. Without it, the value in effect applies: "
        "the built-in one, else facer.toml's, else a FACER_<NAME> variable's (the later wins). "
        "Every setting: facer config show.",
    )
    if loaded.config_file is not None:
        intro.append(f"\nSettings file: {loaded.config_file}")
    panel = Panel(table, border_style="dim", title="Setting options", title_align="left", box=box.ROUNDED)
    return Group(Padding(intro, 1), panel)
