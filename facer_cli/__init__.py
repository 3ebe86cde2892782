"""facer: face enrollment and verification over InsightFace models.

The Python API. Names are imported on first use, so `import facer_cli` (and
`facer --help`) loads neither numpy, OpenCV nor ONNX Runtime.

    >>> from facer_cli import Facer, load_settings
    >>> facer = Facer(load_settings().settings)      # or Facer() for the defaults alone
    >>> facer.enroll("alice", ["a.jpg", "b.jpg", "c.jpg"])
"""

from __future__ import annotations

from facer_cli.lazy_exports import lazy_exports

# Not `typing.TYPE_CHECKING`: importing typing costs milliseconds of the console script's
# start-up, before its Ctrl-C handler is installed (`facer_cli.entry`). Type checkers read it as True.
TYPE_CHECKING = False
__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "Facer": "facer_cli.service",
    "Settings": "facer_cli.settings",
    "EngineSettings": "facer_cli.settings",
    "load_settings": "facer_cli.settings",
    "FacerError": "facer_cli.errors",
    "FaceEngine": "facer_cli.engine.face_engine",
    "get_engine": "facer_cli.engine.face_engine",
    "FaceReport": "facer_cli.engine.reports",
    "FrameReport": "facer_cli.engine.reports",
    "Template": "facer_cli.templates.aggregate",
    "build_template": "facer_cli.templates.aggregate",
    "Band": "facer_cli.templates.matching",
    "Thresholds": "facer_cli.templates.matching",
    "Comparison": "facer_cli.templates.matching",
    "cosine_similarity": "facer_cli.templates.matching",
    "load_vector": "facer_cli.files.vectors",
    "save_vector": "facer_cli.files.vectors",
    "Store": "facer_cli.store",
    "generate_token_from_camera": "facer_cli.tokens",
    "generate_token_from_directory": "facer_cli.tokens",
    "generate_token_from_embeddings": "facer_cli.tokens",
    "generate_token_from_images": "facer_cli.tokens",
    "Evaluation": "facer_cli.evaluation",
    "evaluate_scores": "facer_cli.evaluation",
    "load_dataset": "facer_cli.evaluation",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from facer_cli.engine.face_engine import FaceEngine, get_engine
    from facer_cli.engine.reports import FaceReport, FrameReport
    from facer_cli.errors import FacerError
    from facer_cli.evaluation import Evaluation, evaluate_scores, load_dataset
    from facer_cli.files.vectors import load_vector, save_vector
    from facer_cli.service import Facer
    from facer_cli.settings import EngineSettings, Settings, load_settings
    from facer_cli.store import Store
    from facer_cli.templates.aggregate import Template, build_template
    from facer_cli.templates.matching import Band, Comparison, Thresholds, cosine_similarity
    from facer_cli.tokens import (
        generate_token_from_camera,
        generate_token_from_directory,
        generate_token_from_embeddings,
        generate_token_from_images,
    )
