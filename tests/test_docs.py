"""The docs and the code agree: every command has help and a section in the hand-written pages,
the pages made from the code are current, every Python block runs, and every relative link leads
somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import pytest
from helpers import REPO, run

from facer_cli.cli.commands import COMMANDS
from facer_cli.cli.errors import EXIT_CODES
from facer_cli.settings import SETTING_INFOS

DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# Made by docs/generate.py from the code; every other page is written by hand.
GENERATED = {DOCS / "cli.md", DOCS / "settings.md", DOCS / "exit-codes.md"}
README_LIMIT = 15_000


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


HAND_WRITTEN = "\n".join(text_of(path) for path in PAGES if path not in GENERATED)


def subcommands(name: str) -> list[str]:
    """A group's subcommands, from the command itself (empty for a plain command)."""
    command = next(command for command in COMMANDS if command.name == name)
    return list(getattr(command.build(), "commands", {}))


@pytest.mark.parametrize("command", [command.name for command in COMMANDS])
def test_every_command_has_help_and_a_section_in_the_docs(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) > 3
    assert re.search(rf"^#+ `facer {command}\b", HAND_WRITTEN, re.M), f"no docs page has a section for facer {command}"
    for sub in subcommands(command):
        assert run(command, sub, "--help").exit_code == 0
        assert f"facer {command} {sub}" in HAND_WRITTEN, f"the docs never show facer {command} {sub}"


def test_the_groups_have_subcommands():
    # The check above would pass vacuously if subcommands() stopped finding them.
    assert {"list", "show", "remove", "rename", "export", "import", "check"} <= set(subcommands("users"))
    assert {"show", "init"} <= set(subcommands("config"))


@pytest.mark.slow
def test_generated_pages_are_current():
    done = subprocess.run(
        [sys.executable, str(DOCS / "generate.py"), "--check"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"run `python docs/generate.py`:\n{done.stdout}{done.stderr}"


def test_exit_code_table_is_the_codes_table():
    section = text_of(DOCS / "exit-codes.md")
    section = section[section.index("## Exit codes") :]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M)
    table = {}
    for code, meaning in rows:
        if int(code) in table:
            break
        table[int(code)] = meaning
    assert table == EXIT_CODES


def test_settings_page_has_every_setting():
    page = text_of(DOCS / "settings.md")
    for name in SETTING_INFOS:
        assert re.search(rf"^\| `{name}` \|.*\| `FACER_{name.upper()}` \|", page, re.M), name


def test_readme_is_short_and_keeps_its_quickstart():
    text = text_of(README)
    assert len(text.encode("utf-8")) <= README_LIMIT, f"README.md is {len(text.encode())} bytes"
    # .ci/run runs the second command line of the first code block after the Quickstart heading.
    start = re.search(r"^#+ .*quick ?start.*$", text, re.I | re.M).end()
    block = re.search(r"```[^\n]*\n(.*?)```", text[start:], re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "pytest" in lines[1]


PYTHON_BLOCKS = [
    pytest.param(code, id=f"{path.relative_to(REPO).as_posix()}:{index}")
    for path in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", text_of(path), re.S))
]


def test_the_docs_have_python_blocks():
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_every_python_block_of_the_docs_runs(code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    env["HOME"] = str(tmp_path)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    code = textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"python block failed:\n{code}\n{done.stderr[-2000:]}"


def without_fences(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^(```+|~~~+).*?^\1[ \t]*$", "", text, flags=re.M | re.S)


def without_code(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    return re.sub(r"(`+).+?\1", "", without_fences(text), flags=re.S)


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces as dashes,
    repeats numbered)."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", without_fences(text), re.M):
        slug = "".join(
            char for char in heading.lower() if char in " -_" or unicodedata.category(char)[0] in "LN"
        ).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?: \"[^\"]*\")?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_relative_link_leads_to_a_page_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(without_code(text_of(page))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(text_of(linked)):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)
