"""Settings: defaults < facer.toml < FACER_* environment variables < flags.

`load_settings` reads the layers, remembers where each value came from (for
`facer config show`) and turns any bad value into one `ConfigError` line that
names the setting, the value, its origin and what is accepted.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import platformdirs

from facer_cli.errors import ConfigError
from facer_cli.settings.fields import InvalidSetting
from facer_cli.settings.schema import CONFIG_FILE_NAME, ENV_PREFIX, SETTING_INFOS, SETTING_NAMES, Settings


@dataclass
class LoadedSettings:
    """Effective settings with the origin of each value."""

    settings: Settings
    origins: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None


def user_config_file() -> Path:
    return Path(platformdirs.user_config_dir("facer")) / CONFIG_FILE_NAME


def find_config_file(explicit: Path | None = None, cwd: Path | None = None) -> Path | None:
    """`--config PATH`, else ./facer.toml, else the user's config dir."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    for candidate in ((cwd or Path.cwd()) / CONFIG_FILE_NAME, user_config_file()):
        if candidate.is_file():
            return candidate
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    # A [facer] table is accepted as well as top-level keys.
    if isinstance(values.get("facer"), dict):
        values = values["facer"]
    unknown = sorted(set(values) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r} (see facer.toml.example for the accepted names)")
    return values


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`FACER_<NAME>` variables (any case), as strings: validation turns them into values
    (`allowed_modules` takes a JSON list or comma-separated names)."""
    if environ is None:
        environ = os.environ
    prefix = ENV_PREFIX.lower()
    found = {key.lower(): value for key, value in environ.items() if key.lower().startswith(prefix)}
    return {name: found[prefix + name] for name in SETTING_NAMES if prefix + name in found}


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> LoadedSettings:
    """Merge the layers; raise `ConfigError` naming the first bad value."""
    path = find_config_file(config_file, cwd)
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((str(path), read_config_file(path)))
    layers.append(("env", read_environment(environ)))
    layers.append(("flag", {k: v for k, v in (overrides or {}).items() if v is not None}))

    merged: dict[str, Any] = {}
    origins = {name: "default" for name in SETTING_NAMES}
    for origin, values in layers:
        for name, value in values.items():
            merged[name] = value
            origins[name] = f"{ENV_PREFIX}{name.upper()}" if origin == "env" else origin
    try:
        settings = Settings.from_values(merged)
    except InvalidSetting as exc:
        raise ConfigError(describe_invalid(exc, origins)) from None
    return LoadedSettings(settings=settings, origins=origins, config_file=path)


def describe_invalid(exc: InvalidSetting, origins: Mapping[str, str]) -> str:
    """The bad value's setting, value (unless secret), origin and what is accepted, in one line."""
    if exc.name is None:
        return f"invalid settings: {exc.reason}"
    return f"setting {exc.name} = {exc.shown_value} (from {origins.get(exc.name, 'default')}): {exc.reason}"


def settings_as_toml_dict(settings: Settings) -> dict[str, Any]:
    """Values TOML can hold (it has no null): unset optional values are left out."""
    return {name: value for name, value in settings.as_dict().items() if value is not None}


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A checked copy with some values changed (for tests and the Python API); a name that is not a
    setting is refused like any bad value."""
    try:
        return Settings.from_values({**settings.as_dict(), **changes})
    except InvalidSetting as exc:
        raise ConfigError(describe_invalid(exc, {name: "argument" for name in changes})) from None


def example_config_text() -> str:
    """facer.toml.example: every setting with its meaning and default (a test keeps the file in step)."""
    import tomli_w

    lines = [
        "# facer.toml: every setting with its default. facer reads ./facer.toml, then the",
        "# user config dir (see `facer config show`), or the file given with --config.",
        "# FACER_<NAME> environment variables override this file; command-line flags override both.",
        "",
    ]
    for name, info in SETTING_INFOS.items():
        lines.append(f"# {info.description}")
        if info.default is None:
            lines.append(f'# {name} = "..."')
        else:
            lines.append(tomli_w.dumps({name: info.default}).strip())
        lines.append("")
    return "\n".join(lines)
