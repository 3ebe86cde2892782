"""Print the requirements the facer image installs, one per line, from facer's own metadata.

    python3 container/requirements.py [--extras server,postgres] [--swap old=new ...] [--drop NAME ...]

Reads the project's `pyproject.toml` (or a built wheel's METADATA given with --wheel) and prints
its dependencies with the given extras, with two changes the image makes:

- `--drop insightface`: facer declares insightface but never imports it (its own
  `facer_cli/engine/onnx_models.py` opens the models), and insightface brings scipy,
  scikit-image, onnx, requests and tqdm, which nothing in facer imports either;
- `--swap opencv-python=opencv-python-headless`: the same `cv2` module without Qt, X11 and
  OpenGL, which a server never opens a window with; `--swap onnxruntime=onnxruntime-gpu`
  for the GPU image (both install the one `onnxruntime` module, so only one may be there).

Standard library only (Python 3.11+: tomllib), so it runs in any build stage.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import zipfile
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def from_pyproject(path: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    found = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"requirements.py: {path} has no extra {extra!r}")
        found += optional[extra]
    return found


def from_wheel(path: Path, extras: list[str]) -> list[str]:
    with zipfile.ZipFile(path) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        text = wheel.read(name).decode("utf-8")
    found = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line.removeprefix("Requires-Dist:").strip().partition(";")
        wanted = EXTRA.findall(marker)
        if not wanted or any(canonical(e) in {canonical(x) for x in extras} for e in wanted):
            found.append(requirement.strip())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    parser.add_argument("--wheel", type=Path, help="read a built facer wheel's METADATA instead of pyproject.toml")
    parser.add_argument("--extras", default="server,postgres")
    parser.add_argument("--drop", action="append", default=[], metavar="NAME")
    parser.add_argument("--swap", action="append", default=[], metavar="OLD=NEW")
    args = parser.parse_args(argv)
    extras = [e for e in args.extras.replace(" ", "").split(",") if e]
    requirements = from_wheel(args.wheel, extras) if args.wheel else from_pyproject(args.pyproject, extras)
    drop = {canonical(n) for arg in args.drop for n in arg.split(",") if n}
    swap = {}
    for item in args.swap:
        for pair in item.split(","):
            if pair:
                old, _, new = pair.partition("=")
                swap[canonical(old)] = new.strip()
    for requirement in requirements:
        name = NAME.match(requirement).group(1)
        key = canonical(name)
        if key in drop:
            continue
        if key in swap:
            if not swap[key]:
                continue
            requirement = swap[key] + requirement[len(requirement) - len(requirement.lstrip()) + len(name) :]
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
