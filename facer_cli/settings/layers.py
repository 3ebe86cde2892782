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


# How `facer config show` and facer.toml spell a value TOML cannot hold (an unset optional one).
NOT_SET = "(not set)"


def toml_value(value: Any) -> str:
    """A value as facer.toml spells it: `true`, `0.5`, `"bundled"`, `["detection", "recognition"]`;
    `NOT_SET` for None (TOML has no null)."""
    if value is None:
        return NOT_SET
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def changed_settings(settings: Settings) -> list[str]:
    """The names of the settings whose value differs from the built-in default, in schema order."""
    values = settings.as_dict()
    return [name for name, info in SETTING_INFOS.items() if values[name] != info.default]


def example_config_text(settings: Settings | None = None) -> str:
    """A facer.toml: every setting with its meaning and its built-in default, as comments; the
    values of `settings` that differ from the defaults as active lines (`facer config init`).
    With no settings, facer.toml.example (a test keeps the file in step)."""
    values = {} if settings is None else settings.as_dict()
    changed = set() if settings is None else set(changed_settings(settings))
    lines = [
        "# facer.toml: every setting, what it means and its built-in default (commented out).",
        "# Lines that are not comments set a value that differs from the default: uncomment a line",
        "# and change its value to change a setting. facer reads ./facer.toml, then the user config",
        "# dir (see `facer config show`), or the file given with --config. FACER_<NAME> environment",
        "# variables override this file; command-line flags override both.",
        "# `facer config show --changed` lists the values that differ from the defaults.",
        "",
    ]
    for name, info in SETTING_INFOS.items():
        lines.append(f"# {info.description}")
        default = '"..."' if info.default is None else toml_value(info.default)
        if name in changed:
            lines.append(f"# default: {name} = {default}" if info.default is not None else "# default: not set")
            lines.append(f"{name} = {toml_value(values[name])}")
        else:
            lines.append(f"# {name} = {default}")
        lines.append("")
    return "\n".join(lines)
