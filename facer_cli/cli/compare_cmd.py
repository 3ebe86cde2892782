"""`facer compare A B`: two templates (images or .npy vectors), one similarity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facer_cli.cli.app import console, settings_for
from facer_cli.cli.errors import EXIT_NO_MATCH, EXIT_UNCERTAIN, UNCERTAIN_NEXT
from facer_cli.cli.options import DetSizeOption, JsonOption, ModelOption, VerboseOption
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.views import compare_view

BAND_EXIT = {"match": 0, "no_match": EXIT_NO_MATCH, "uncertain": EXIT_UNCERTAIN}


def compare_command(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(readable=False, help="An image or a .npy template.", show_default=False)],
    b: Annotated[Path, typer.Argument(readable=False, help="An image or a .npy template.", show_default=False)],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
) -> None:
    """Cosine similarity of two faces or templates, and the band.

    Exit 0 match, 1 no match, 3 uncertain, 4 unusable input. In Python: Facer(settings).compare(a, b).
    """
    from facer_cli.service import Facer

    result = Facer(settings_for(ctx)).compare(a, b)
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(compare_view(result, verbose))
        if result.comparison.band.value == "uncertain":
            console.print(literal(UNCERTAIN_NEXT))
    raise typer.Exit(BAND_EXIT[result.comparison.band.value])
