"""Process start to models loaded: insightface's model_zoo against facer_cli.engine.onnx_models.

    python benchmarks/bench_startup.py [--rounds 5]

Each run is a fresh interpreter that imports facer_cli.engine.modelpack and calls
`load_models(Settings())` (the bundled pack, default settings), so both sides pay
the same interpreter, package and ONNX Runtime session costs:
(a) with `onnx_models.get_model` replaced by `insightface.model_zoo.get_model`,
    as facer loaded models before;
(b) as it is: facer's own wrappers.
A bare `python -c pass` is timed too, as the floor. Runs alternate a, b, floor;
medians are printed with the ratio. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternated_medians, print_ratio_table, time_subprocess

LOAD = "from facer_cli.engine.modelpack import load_models\nfrom facer_cli.settings import Settings\nload_models(Settings())\n"
THROUGH_INSIGHTFACE = (
    "from insightface.model_zoo import model_zoo\n"
    "import facer_cli.engine.onnx_models\n"
    "facer_cli.engine.onnx_models.get_model = lambda path, **kw: model_zoo.get_model(str(path), **kw)\n" + LOAD
)
CANDIDATES = {"insightface": THROUGH_INSIGHTFACE, "onnx_models": LOAD, "python floor": "pass"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    medians = alternated_medians(
        {name: lambda c=code: time_subprocess(c) for name, code in CANDIDATES.items()}, args.rounds
    )
    print(f"fresh process to models loaded, median of {args.rounds} alternated runs")
    print_ratio_table(
        [
            ("start to loaded", medians["insightface"], medians["onnx_models"]),
            (
                "less bare python",
                medians["insightface"] - medians["python floor"],
                medians["onnx_models"] - medians["python floor"],
            ),
        ],
        old="model_zoo",
        new="onnx_models",
    )
    print(f"bare python -c pass: {medians['python floor'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
