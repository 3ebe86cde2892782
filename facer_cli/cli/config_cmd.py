"""`facer config show|init`: the effective settings and where each came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facer_cli.cli.app import console, loaded_settings
from facer_cli.cli.options import ForceOption, JsonOption
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.views import config_meanings, config_view
from facer_cli.settings import CONFIG_FILE_NAME, SECRET_SETTINGS, SETTING_INFOS, settings_as_toml_dict

config_app = typer.Typer(help="Show the effective settings or write a facer.toml.", no_args_is_help=True)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    json_output: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also what each setting means.")] = False,
) -> None:
    """Print every setting, its value and where it came from (default, facer.toml, FACER_*, flag).
    In Python: facer_cli.load_settings()."""
    loaded = loaded_settings(ctx)
    values = loaded.settings.as_dict()
    for name in SECRET_SETTINGS:
        if values.get(name) is not None:
            values[name] = "(set)"
    descriptions = {name: info.description for name, info in SETTING_INFOS.items()}
    if json_output:
        print_json(
            {
                "config_file": None if loaded.config_file is None else str(loaded.config_file),
                "settings": {name: {"value": values[name], "source": loaded.origins[name]} for name in values},
                "db_path": str(loaded.settings.db_path),
            }
        )
        return
    console.print(config_view(loaded, descriptions))
    if verbose:
        console.print(config_meanings(descriptions))


@config_app.command("init")
def config_init(
    ctx: typer.Context,
    path: Annotated[
        Optional[Path],
        typer.Argument(readable=False, help="Where to write (default: ./facer.toml).", show_default=False),
    ] = None,
    force: ForceOption = False,
) -> None:
    """Write a facer.toml holding the effective settings (defaults unless overridden), mode 0600."""
    import tomli_w

    from facer_cli.files.writing import write_private

    settings = loaded_settings(ctx).settings
    written = write_private(
        path or Path(CONFIG_FILE_NAME), tomli_w.dumps(settings_as_toml_dict(settings)).encode(), overwrite=force
    )
    console.print(literal(f"wrote {written}"))
