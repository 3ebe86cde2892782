"""The primitives every view is made of: values as literal text, names that shorten, times, numbers, JSON.

Every dynamic value — user names, file names, messages — goes into `Text` objects built by
`literal()`, which never interprets markup and shows control characters visibly, so no input
can restyle, split or rewrite the terminal. Only `rich.text` and what `ShortName` needs are
imported here: no tables.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def literal(value: Any, style: str = "") -> Text:
    """Any value as text shown exactly: no markup, control characters as visible escapes."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))
    return Text(text, style=style)


class ShortName:
    """A file or user name that keeps its start and its end when the column is narrow
    (`alex_lac…moire_3.png`): the part that tells photos apart is often at the end."""

    def __init__(self, value: Any, style: str = ""):
        self.text = literal(value, style)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        length = self.text.cell_len
        return Measurement(min(length, 9), length)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        text = self.text
        if text.cell_len > width >= 3:
            plain = text.plain
            tail = (width - 1) // 2 + (width - 1) % 2
            head = width - 1 - tail
            text = Text(plain[:head] + "…" + plain[len(plain) - tail :], style=text.style)
        yield text


def print_json(data: Any) -> None:
    # allow_nan=False: a NaN or infinity would make invalid JSON; facer's results never hold one.
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def local_time(value: str | None) -> str:
    """An ISO 8601 time as local time with its zone (tables); "–" when unset."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(value).astimezone()
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def number(value: float | None, fmt: str) -> str:
    """The value in `fmt` (`".2f"`, `"+.1f"`, `"d"`); "–" when there is none."""
    return "–" if value is None else format(value, fmt)


def short_reason(reason: str) -> str:
    """ "yaw +31° beyond ±25°; blurred: sharpness 41 < 80" → "yaw, blurred": the table's short form.

    Each reason's leading words; a reason that starts with a number keeps what comes before its colon
    ("2 people in view: one person at a time" → "2 people in view")."""
    parts = []
    for part in reason.split("; "):
        if part[:1].isdigit():
            head = part.split(":", 1)[0].strip()
        else:
            head = re.split(r"[\d+\-−±<>(:]", part, maxsplit=1)[0].strip()
        parts.append(head or part)
    return ", ".join(dict.fromkeys(parts))
