"""`facer config show|init`: the effective settings and where each came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facer_cli.cli.app import console, loaded_settings
from facer_cli.cli.identify_cmd import (
    IdentifyFramesOption,
    IdentifyMarginOption,
    IdentifyThresholdOption,
    TopOption,
)
from facer_cli.cli.options import (
    DbOption,
    DetSizeOption,
    DetThresholdOption,
    ForceOption,
    JsonOption,
    MaxFramesOption,
    MinFramesOption,
    ModelOption,
    PitchOption,
    QualityOption,
    YawOption,
    setting_option,
)
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.views import config_meanings, config_view
from facer_cli.settings import (
    CONFIG_FILE_NAME,
    SECRET_SETTINGS,
    SETTING_INFOS,
    changed_settings,
    example_config_text,
    toml_value,
)
from facer_cli.store.urls import describe_db, redact_url

config_app = typer.Typer(help="Show the effective settings or write a facer.toml.", no_args_is_help=True)

# The setting flags of the other commands, for `config show` to show what they do. Parameters
# named after a setting apply by themselves (`app.flag_overrides`); serve's --host, --port and
# --concurrency are named server_* here so that they do too. (--liveness/--no-liveness asks for a
# challenge on one run and changes no setting.) tests/test_config_cmd.py keeps the list complete.
HostOption = Annotated[Optional[str], setting_option("server_host", "--host")]
PortOption = Annotated[Optional[int], setting_option("server_port", "--port")]
ConcurrencyOption = Annotated[Optional[int], setting_option("server_concurrency", "--concurrency")]
ApiKeyOption = Annotated[Optional[str], setting_option("api_key", "--api-key")]
WorkersOption = Annotated[Optional[int], setting_option("workers", "--workers")]
MetricsOption = Annotated[Optional[bool], setting_option("metrics", "--metrics/--no-metrics")]
LogFormatOption = Annotated[Optional[str], setting_option("log_format", "--log-format")]


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    json_output: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also what each setting means.")] = False,
    changed: Annotated[
        bool, typer.Option("--changed", help="Only the values that differ from the built-in defaults.")
    ] = False,
    db: DbOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    identify_threshold: IdentifyThresholdOption = None,
    identify_margin: IdentifyMarginOption = None,
    identify_frames: IdentifyFramesOption = None,
    identify_top: TopOption = None,
    workers: WorkersOption = None,
    server_host: HostOption = None,
    server_port: PortOption = None,
    server_concurrency: ConcurrencyOption = None,
    api_key: ApiKeyOption = None,
    metrics: MetricsOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Print every setting, its value as facer.toml spells it and where it came from (default,
    facer.toml, FACER_*, flag). Accepts the commands' setting flags, to show what one does.
    In Python: facer_cli.load_settings()."""
    loaded = loaded_settings(ctx)
    values = loaded.settings.as_dict()
    names = changed_settings(loaded.settings) if changed else list(values)
    for name in SECRET_SETTINGS:
        if values.get(name) is not None:
            values[name] = "(set)"
    if values.get("db") is not None:
        values["db"] = redact_url(values["db"])  # a PostgreSQL URL's password is never shown
    from facer_cli.cli.output.views import encryption_line
    from facer_cli.store.crypto import encryption_info

    encryption = encryption_info(loaded.settings)
    if json_output:
        print_json(
            {
                "config_file": None if loaded.config_file is None else str(loaded.config_file),
                "settings": {name: {"value": values[name], "source": loaded.origins[name]} for name in names},
                "db_path": describe_db(loaded.settings.db, loaded.settings.db_path),
                "encryption": encryption,
            }
        )
        return
    shown = {
        name: "(set)" if name in SECRET_SETTINGS and values[name] is not None else toml_value(values[name])
        for name in names
    }
    console.print(config_view(loaded, shown, changed_only=changed))
    console.print(literal(f"encryption at rest: {encryption_line(encryption)}"))
    if verbose:
        console.print(config_meanings({name: SETTING_INFOS[name].description for name in names}))


@config_app.command("init")
def config_init(
    ctx: typer.Context,
    path: Annotated[
        Optional[Path],
        typer.Argument(readable=False, help="Where to write (default: ./facer.toml).", show_default=False),
    ] = None,
    force: ForceOption = False,
) -> None:
    """Write a facer.toml (mode 0600): every setting with its meaning and built-in default as
    comments; the effective values that differ from the defaults (from FACER_* or a facer.toml
    already read) as active lines."""
    from facer_cli.files.writing import write_private

    settings = loaded_settings(ctx).settings
    written = write_private(path or Path(CONFIG_FILE_NAME), example_config_text(settings).encode(), overwrite=force)
    changed = changed_settings(settings)
    console.print(
        literal(
            f"wrote {written}: "
            + (
                f"{len(changed)} value(s) differ from the defaults ({', '.join(changed)})"
                if changed
                else "all defaults"
            )
        )
    )
