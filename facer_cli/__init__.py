"""facer: face enrollment and verification over InsightFace models."""

from facer_cli.aggregate import Template, build_template
from facer_cli.api import (
    analyze_files,
    generate_token_from_camera,
    generate_token_from_directory,
    generate_token_from_embeddings,
    generate_token_from_images,
    get_engine,
    template_from_frames,
)
from facer_cli.compare import Band, Comparison, band_for, cosine_similarity, load_vector
from facer_cli.engine import FaceEngine
from facer_cli.errors import FacerError
from facer_cli.reports import FaceReport, FrameReport
from facer_cli.settings import Settings, load_settings
from facer_cli.store import Store

__version__ = "0.1.0"

__all__ = [
    "Band",
    "Comparison",
    "FaceEngine",
    "FaceReport",
    "FacerError",
    "FrameReport",
    "Settings",
    "Store",
    "Template",
    "analyze_files",
    "band_for",
    "build_template",
    "cosine_similarity",
    "generate_token_from_camera",
    "generate_token_from_directory",
    "generate_token_from_embeddings",
    "generate_token_from_images",
    "get_engine",
    "load_settings",
    "load_vector",
    "template_from_frames",
]

# facer evaluate: accuracy, FAR/FRR and threshold calibration on labelled faces.
from facer_cli.evaluation import Evaluation, evaluate, evaluate_scores, load_dataset  # noqa: E402

__all__ += ["Evaluation", "evaluate", "evaluate_scores", "load_dataset"]
