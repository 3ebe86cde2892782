"""Settings: what each one is (`schema`), how one value is checked (`fields`), and how the layers
defaults < facer.toml < FACER_* < flags are read (`layers`). Light: no numpy, no models."""

from facer_cli.settings.layers import (
    LoadedSettings,
    describe_invalid,
    example_config_text,
    find_config_file,
    load_settings,
    read_config_file,
    read_environment,
    settings_as_toml_dict,
    user_config_file,
    with_overrides,
)
from facer_cli.settings.schema import (
    BUNDLED_PACK,
    CONFIG_FILE_NAME,
    ENGINE_SETTING_NAMES,
    ENV_PREFIX,
    MODULE_NAMES,
    SECRET_SETTINGS,
    SETTING_INFOS,
    SETTING_NAMES,
    EngineFields,
    EngineSettings,
    Settings,
    default_db_path,
)

__all__ = [
    "BUNDLED_PACK",
    "CONFIG_FILE_NAME",
    "ENGINE_SETTING_NAMES",
    "ENV_PREFIX",
    "MODULE_NAMES",
    "SECRET_SETTINGS",
    "SETTING_INFOS",
    "SETTING_NAMES",
    "EngineFields",
    "EngineSettings",
    "LoadedSettings",
    "Settings",
    "default_db_path",
    "describe_invalid",
    "example_config_text",
    "find_config_file",
    "load_settings",
    "read_config_file",
    "read_environment",
    "settings_as_toml_dict",
    "user_config_file",
    "with_overrides",
]
