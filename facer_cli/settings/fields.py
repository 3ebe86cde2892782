"""How one setting's value is read and checked: its type, range and meaning.

Settings are plain frozen dataclasses (`facer_cli.settings`) whose fields are declared with
`setting(...)`; `check_fields` turns what a layer gave (TOML values, FACER_* strings, flags)
into the declared type and range, or raises `InvalidSetting` naming the first bad value.
Hand-written rather than pydantic: building pydantic models cost every command ~150 ms of
start-up, and the rules here are few.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from facer_cli.errors import ConfigError

TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


class InvalidSetting(ConfigError):
    """One setting's value is not accepted. `reason` says what is (its range, type or rule)."""

    def __init__(self, name: str | None, value: Any, reason: str, *, secret: bool = False):
        self.shown_value = "(hidden)" if secret else repr(value)
        super().__init__(reason if name is None else f"setting {name} = {self.shown_value}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class Bounds:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    def words(self) -> str:
        """The range in words ("must be between 0 and 1")."""
        if self.gt is not None:
            return f"must be more than {self.gt:g}" + ("" if self.le is None else f" and at most {self.le:g}")
        if self.ge is not None and self.le is not None:
            return f"must be between {self.ge:g} and {self.le:g}"
        if self.ge is not None:
            return f"must be at least {self.ge:g}"
        return f"must be at most {self.le:g}"

    def check_number(self, value: float) -> None:
        low_ok = (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
        if not low_ok or (self.le is not None and value > self.le):
            raise ValueError(self.words())

    def check_text(self, value: str) -> None:
        if self.min_length is not None and len(value) < self.min_length:
            raise ValueError("must not be empty" if self.min_length == 1 else f"needs {self.min_length}+ characters")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(f"must have at most {self.max_length} characters")


@dataclass(frozen=True)
class SettingInfo:
    """What `facer config show --verbose`, facer.toml.example and option help say of a setting."""

    name: str
    description: str
    default: Any
    bounds: Bounds
    choices: tuple[str, ...] | None
    check: Callable[[Any], Any] | None
    secret: bool


def setting(
    default: Any,
    *,
    description: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], Any] | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field declaring a setting. `check` is a further rule, run on the typed value
    (raise ValueError with the reason); a `secret` value is never shown in an error; a list
    default is copied for each instance."""
    meta = {
        "description": description,
        "default": default,
        "bounds": Bounds(ge=ge, gt=gt, le=le, min_length=min_length, max_length=max_length),
        "choices": choices,
        "check": check,
        "secret": secret,
    }
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting_infos(cls: type) -> dict[str, SettingInfo]:
    """Every setting a settings dataclass declares, in declaration order."""
    return {
        f.name: SettingInfo(
            name=f.name,
            description=f.metadata["description"],
            default=f.metadata["default"],
            bounds=f.metadata["bounds"],
            choices=f.metadata["choices"],
            check=f.metadata["check"],
            secret=f.metadata["secret"],
        )
        for f in dataclasses.fields(cls)
    }


def check_fields(instance: Any) -> None:
    """Convert and check every field of a freshly made settings dataclass in place, in order."""
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        try:
            typed = convert(value, str(f.type), f.metadata)
        except ValueError as exc:
            raise InvalidSetting(f.name, value, str(exc), secret=f.metadata["secret"]) from None
        object.__setattr__(instance, f.name, typed)


def convert(value: Any, annotation: str, meta: Any) -> Any:
    """`value` as the annotated type within the declared bounds, or ValueError(reason)."""
    bounds: Bounds = meta["bounds"]
    if annotation.endswith("| None"):
        if value is None:
            return None
        annotation = annotation.removesuffix("| None").strip()
    if annotation == "bool":
        typed: Any = as_bool(value)
    elif annotation == "int":
        typed = as_int(value)
        bounds.check_number(typed)
    elif annotation == "float":
        typed = as_float(value)
        bounds.check_number(typed)
    elif annotation == "str" or annotation.startswith("Literal["):
        if not isinstance(value, str):
            raise ValueError("must be text")
        bounds.check_text(value)
        typed = value
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ValueError("must be one of " + ", ".join(repr(choice) for choice in meta["choices"]))
    elif annotation == "list[str]":
        typed = as_text_list(value)
    else:  # pragma: no cover - a declaration error, caught by the tests
        raise TypeError(f"unsupported setting type {annotation}")
    if meta["check"] is not None:
        typed = meta["check"](typed)
    return typed


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError("must be true or false")


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("must be a whole number")


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    else:
        raise ValueError("must be a number")
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def as_text_list(value: Any) -> list[str]:
    # Environment variables give a string: a JSON list or comma-separated names.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("is not a valid JSON list") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of names")
    return list(value)
