"""`facer doctor`: what facer runs on, and whether it loads."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facer_cli.cli.app import console, settings_for
from facer_cli.cli.options import JsonOption, setting_option

# The model pack to check: doctor's one question, so shown in its --help.
DoctorModelOption = Annotated[Optional[str], setting_option("model_name", "--model", shown=True)]


def doctor_command(ctx: typer.Context, json_output: JsonOption = False, model_name: DoctorModelOption = None) -> None:
    """Versions, model pack, files and hashes, modules, execution provider, pose source and load time.

    In Python: Facer(settings).doctor().
    """
    from facer_cli.cli.output.text import print_json
    from facer_cli.cli.output.views import doctor_view
    from facer_cli.service import Facer

    info = Facer(settings_for(ctx)).doctor()
    if json_output:
        print_json(info.to_dict())
    else:
        console.print(doctor_view(info))
