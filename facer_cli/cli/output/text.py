"""The primitives every view is made of: literal text, tables that fit the width, message lines, times, numbers, JSON.

Every dynamic value — user names, file names, messages — goes into `Text` objects built by
`literal()`, which never interprets markup and shows control characters visibly, so no input
can restyle, split or rewrite the terminal. Tables are `FitTable`s, which fit the width they
are given by dropping and shrinking columns in a declared order (see `FitTable`), or a
`FieldList` of names and values; message lines (`error: …` and its hint) are written by
`message_line`, which wraps at spaces only. `rich.table` is imported only when a table is drawn.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Sequence

from rich import box as boxes
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

if TYPE_CHECKING:
    from rich.table import Table

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def literal(value: Any, style: str = "") -> Text:
    """Any value as text shown exactly: no markup, control characters as visible escapes."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))
    return Text(text, style=style)


# Column kinds of a FitTable (see its docstring).
KEY: Final = "key"  # what a row is about (a user name, a file): whole, on one line, never dropped
DECISION: Final = "decision"  # the verdict (accepted, rejected: why): never dropped, wraps at spaces
FIXED: Final = "fixed"  # numbers, ids, dates: whole on one line, or dropped
WRAP: Final = "wrap"  # free text (a source, a reason, a value): wraps at spaces, or dropped
SHORT: Final = "short"  # a value that may be shortened with "…" (a model fingerprint), or dropped
Kind = Literal["key", "decision", "fixed", "wrap", "short"]
# The order in which a column gets width beyond its minimum.
_GROW_ORDER = (DECISION, KEY, WRAP, SHORT, FIXED)


@dataclass(frozen=True)
class Column:
    """One column of a `FitTable`.

    `drop`: 0 never dropped; otherwise dropped when the table does not fit, 1 first, then 2, and
    so on. `min_width`: for SHORT, the narrowest it is shortened to (8 unless given, its header at
    least); for WRAP and DECISION, the narrowest it wraps to before other columns are dropped (when
    its longest line is wider)."""

    header: str = ""
    kind: Kind = FIXED
    drop: int = 0
    justify: Literal["left", "right"] = "left"
    style: str = ""
    min_width: int = 0


def _cell(value: Text | str | None) -> Text:
    """A cell as Text; plain strings are taken literally (never as markup)."""
    if value is None:
        return Text("")
    return value if isinstance(value, Text) else literal(value)


def _longest_line(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.split("\n")), default=0)


def _longest_word(text: Text) -> int:
    return max((cell_len(word) for word in text.plain.split()), default=0)


class FitTable:
    """A table that fits the width it is drawn at (the console's: 80 when output is piped) and never
    breaks a word, a path or a number across lines.

    Each column has a kind:

    - KEY (the user name, the file): always shown, whole and on one line;
    - DECISION (accepted/rejected and why): always shown, wrapping at spaces;
    - FIXED (numbers, ids, dates): whole on one line;
    - WRAP (a source, a reason, a setting's value): wraps at spaces;
    - SHORT (a model fingerprint): may be shortened with "…" down to its `min_width`.

    When the columns at their narrowest (KEY and FIXED: their longest value; DECISION and WRAP:
    their longest word, or `min_width`; SHORT: `min_width`) do not fit, columns are dropped by
    their `drop` number, 1 first (equal numbers: the rightmost first), until they fit. Width left
    over goes to the DECISION column first, then KEY, WRAP and SHORT columns, left to right, up to
    their longest line. Only when the columns that are never dropped do not fit even at their
    narrowest is a value cut: a word of a WRAP, SHORT, then DECISION column is shortened with "…";
    a KEY value folds only when it is wider than the line itself.
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        title: Text | str | None = None,
        show_header: bool = True,
        header_style: str = "bold",
        title_style: str | None = None,
        box: boxes.Box | None = boxes.SIMPLE_HEAD,
        collapse_padding: bool = False,
        pad_edge: bool = False,
    ) -> None:
        self.columns = list(columns)
        self.rows: list[tuple[list[Text], str]] = []
        self.title = None if title is None else _cell(title)
        self.show_header = show_header
        self.header_style = header_style
        self.title_style = title_style
        self.box = box
        self.collapse_padding = collapse_padding
        self.pad_edge = pad_edge
        self._overheads: dict[int, int] = {}

    def add_row(self, *cells: Text | str | None, style: str = "") -> None:
        row = [_cell(cell) for cell in cells]
        row += [Text("") for _ in range(len(self.columns) - len(row))]
        self.rows.append((row, style))

    # -- widths ---------------------------------------------------------------
    def _natural(self, index: int) -> int:
        header = cell_len(self.columns[index].header) if self.show_header else 0
        return max([header, *(_longest_line(row[index]) for row, _ in self.rows)])

    def _minimum(self, index: int) -> int:
        column = self.columns[index]
        natural = self._natural(index)
        header_word = _longest_word(Text(column.header)) if self.show_header else 0
        if column.kind in (KEY, FIXED):
            return natural
        if column.kind == SHORT:
            return min(natural, max(column.min_width or 8, header_word))
        longest = max([header_word, *(_longest_word(row[index]) for row, _ in self.rows)])
        return max(longest, min(natural, column.min_width))

    def _skeleton(self, shown: list[int], widths: dict[int, int]) -> "Table":
        from rich.table import Table

        table = Table(
            title=self.title,
            title_style=self.title_style,
            show_header=self.show_header,
            header_style=self.header_style,
            box=self.box,
            pad_edge=self.pad_edge,
            collapse_padding=self.collapse_padding,
            show_edge=True,
        )
        for index in shown:
            column = self.columns[index]
            kind = column.kind
            cut = widths[index] < self._minimum(index)  # only a value wider than the console
            table.add_column(
                column.header,
                justify=column.justify,
                style=column.style or None,
                width=widths[index],
                no_wrap=kind in (KEY, FIXED, SHORT) and not (kind == KEY and cut),
                overflow="fold" if kind == KEY else "ellipsis",
            )
        return table

    def _overhead(self, shown: list[int]) -> int:
        """What borders and padding take beside the columns' own widths (the same for any `shown` of a length)."""
        if len(shown) not in self._overheads:
            skeleton = self._skeleton(shown, {index: 1 for index in shown})
            skeleton.title = None
            measuring = Console(width=10_000)
            self._overheads[len(shown)] = Measurement.get(measuring, measuring.options, skeleton).maximum - len(shown)
        return self._overheads[len(shown)]

    def widths(self, width: int) -> dict[int, int]:
        """Each shown column's width (by column index) for a table at most `width` wide."""
        shown = list(range(len(self.columns)))
        minimum = {index: self._minimum(index) for index in shown}
        droppable = sorted((-c.drop, i) for i, c in enumerate(self.columns) if c.drop)  # pop(): the next to go
        while sum(minimum[i] for i in shown) + self._overhead(shown) > width and droppable:
            _, index = droppable.pop()
            shown.remove(index)
        widths = {index: minimum[index] for index in shown}
        room = width - self._overhead(shown) - sum(widths.values())
        if room < 0:  # a value wider than the console: cut WRAP, then DECISION, then KEY values
            for kind in (WRAP, SHORT, DECISION, KEY):
                for index in shown:
                    if room < 0 and self.columns[index].kind == kind:
                        cut = min(-room, widths[index] - 1)
                        widths[index] -= cut
                        room += cut
            return widths
        for kind in _GROW_ORDER:
            for index in shown:
                if self.columns[index].kind == kind:
                    grow = min(room, self._natural(index) - widths[index])
                    widths[index] += grow
                    room -= grow
        return widths

    def table(self, width: int) -> "Table":
        """The Rich table drawn at `width` columns: the columns that fit, at the widths that fit."""
        widths = self.widths(width)
        shown = sorted(widths)
        table = self._skeleton(shown, widths)
        if self.title is not None and _longest_word(self.title) > sum(widths.values()):
            table.title = self.title.copy()  # a word wider than the table: one line, never cut inside it
            table.title.overflow = "ignore"
            table.title_justify = "left"
        for row, style in self.rows:
            table.add_row(*(row[index] for index in shown), style=style or None)
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        every = list(range(len(self.columns)))
        natural = sum(self._natural(index) for index in every) + self._overhead(every)
        return Measurement(min(natural, options.max_width), min(natural, options.max_width))


class FieldList:
    """Names and values, one per line (`facer doctor`): the name whole in a column of its own, the
    value beside it wrapped at spaces; a value line with a word too wide to stand beside the names
    (a path, a sha256) goes below its name, indented, and is never cut: wider than the whole line,
    the terminal wraps it."""

    INDENT = 4

    def __init__(self, title: str | None = None, name_style: str = "bold") -> None:
        self.title = title
        self.name_style = name_style
        self.rows: list[tuple[Text, Text]] = []

    def add_row(self, name: Text | str, value: Text | str) -> None:
        self.rows.append((_cell(name), _cell(value)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        names = max((name.cell_len for name, _ in self.rows), default=0)
        room = max(width - names - 3, 1)  # a space before the name, two after it
        if self.title:
            yield Text(self.title, style="italic", justify="center", end="\n\n")
        for name, value in self.rows:
            beside = True
            for paragraph in value.split("\n"):
                head = Text(" ") + name.copy() if beside else Text("")
                head.stylize(self.name_style)
                if _longest_word(paragraph) <= room:
                    for line in wrap_at_spaces(paragraph, room):
                        head.pad_right(names + 3 - head.cell_len)
                        yield head + line
                        head = Text("")
                else:
                    if head.plain:
                        yield head
                    for line in wrap_at_spaces(paragraph, max(width - self.INDENT, 1)):
                        # A word wider than the line itself folds at its end, as the terminal would.
                        yield line if line.cell_len > width - self.INDENT else Text(" " * self.INDENT) + line
                beside = False

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)


def message_line(console: Console, label: Text | str, message: Text | str) -> None:
    """`label message` (as `error: no user named …; see …`) on `console`: on a terminal wrapped at
    spaces to its width, so no word, path or name is split; otherwise one line, as tools expect."""
    text = Text.assemble(_cell(label), " " if label else "", _cell(message))
    if not console.is_terminal:
        console.print(text, soft_wrap=True)
        return
    for line in wrap_at_spaces(text, console.width):
        console.print(line, soft_wrap=True)  # a word longer than the line stays whole: the terminal wraps it


def wrap_at_spaces(text: Text, width: int) -> list[Text]:
    """`text` in lines of at most `width` cells, broken only at spaces (a longer word gets a line of its own)."""
    lines: list[Text] = []
    for paragraph in text.split("\n"):
        plain = paragraph.plain
        start = end = 0
        for word in re.finditer(r"\S+", plain):
            if end > start and cell_len(plain[start : word.end()]) > width:
                lines.append(paragraph[start:end])
                start = word.start()
            end = word.end()
        lines.append(paragraph[start:end])
    return lines


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
