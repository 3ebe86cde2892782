"""`facer config show|init`: the effective settings and where each came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import tomli_w
import typer
from rich.table import Table

from facer_cli.cli.app import JsonOption, app, console, loaded_settings, print_json
from facer_cli.errors import ConfigError
from facer_cli.settings import CONFIG_FILE_NAME, Settings, settings_as_toml_dict

config_app = typer.Typer(help="Show the effective settings or write a facer.toml.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Print every setting, its value and where it came from (default, facer.toml, FACER_*, flag)."""
    loaded = loaded_settings(ctx)
    values = loaded.settings.model_dump()
    if json_output:
        print_json({
            "config_file": None if loaded.config_file is None else str(loaded.config_file),
            "settings": {name: {"value": values[name], "source": loaded.origins[name]} for name in values},
            "db_path": str(loaded.settings.db_path),
        })
        return
    table = Table(header_style="bold", title=f"config file: {loaded.config_file or 'none found'}")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source")
    table.add_column("meaning", style="dim")
    for name, value in values.items():
        table.add_row(name, repr(value), loaded.origins[name], Settings.model_fields[name].description or "")
    console.print(table)
    console.print(f"database: {loaded.settings.db_path}")


@config_app.command("init")
def config_init(
    ctx: typer.Context,
    path: Annotated[Optional[Path], typer.Argument(help="Where to write (default: ./facer.toml).", dir_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a facer.toml holding the effective settings (defaults unless overridden)."""
    target = path or Path(CONFIG_FILE_NAME)
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it")
    settings = loaded_settings(ctx).settings
    try:
        target.write_text(tomli_w.dumps(settings_as_toml_dict(settings)), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    console.print(f"wrote {target}")
