"""`facer demo`: the whole job on the sample photos that ship with the bundled models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from facer_cli.api import get_engine
from facer_cli.cli.app import JsonOption, app, console, print_json, settings_for
from facer_cli.cli.render import BAND_STYLE, frames_table
from facer_cli.compare import Comparison
from facer_cli.errors import NoFaceError
from facer_cli.modelpack import bundled_folder


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    det_size: Annotated[int, typer.Option("--det-size", help="Detector size; 640 finds the small faces of the crowd photo.")] = 640,
    json_output: JsonOption = False,
) -> None:
    """Find Yao Ming (yaoming.jpg) among the 22 faces of players.jpg, with the bundled model."""
    settings = settings_for(ctx)
    folder = bundled_folder()
    engine = get_engine(settings)
    probe = engine.analyze_path(folder / "yaoming.jpg")
    if not probe.accepted:
        raise NoFaceError(f"yaoming.jpg: {probe.reason}")
    scene = engine.analyze_path(folder / "players.jpg", all_faces=True)
    rows = []
    for face in scene.faces:
        comparison = Comparison.of(probe.embedding, face.embedding, settings)
        rows.append((face, comparison))
    rows.sort(key=lambda row: -row[1].similarity)
    matches = [face.index for face, c in rows if c.band.value == "match"]
    if json_output:
        print_json({
            "probe": probe.to_dict(),
            "scene": scene.source,
            "faces": [{**face.to_dict(), **c.to_dict()} for face, c in rows],
            "matches": matches,
            "model": engine.fingerprint,
        })
    else:
        console.print(frames_table([probe], title="probe: yaoming.jpg"))
        table = Table(title=f"players.jpg: {len(scene.faces)} faces, most similar first", header_style="bold")
        for column in ("face", "box (x1, y1, x2, y2)", "det", "quality", "similarity", "band"):
            table.add_column(column, justify="right" if column != "band" else "left")
        for face, c in rows:
            table.add_row(
                str(face.index), ", ".join(f"{v:.0f}" for v in face.box), f"{face.det_score:.2f}",
                f"{face.quality:.2f}", f"{c.similarity:+.3f}", Text(c.band.value.replace("_", " "), BAND_STYLE[c.band]),
            )
        console.print(table)
        best_face, best = rows[0]
        console.print(
            f"yaoming.jpg matches {len(matches)} of {len(scene.faces)} faces in players.jpg; "
            f"best: face {best_face.index} at similarity {best.similarity:.3f} "
            f"(next best {rows[1][1].similarity:.3f})"
        )
    raise typer.Exit(0 if len(matches) == 1 else 1)
