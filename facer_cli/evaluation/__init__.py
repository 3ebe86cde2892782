"""`facer evaluate`: accuracy, FAR/FRR and threshold calibration on labelled faces.

- `intervals`: exact 95 % intervals of rates, and the pairs a rate needs (pure Python).
- `curves`: bands, FTA, the model's FMR/FNMR and the system's FAR/FRR at thresholds, ROC, EER, TAR @ FMR
  (pure numpy; the definitions, in ISO/IEC 19795-1's terms, live there).
- `recommend`: the recommended thresholds, whether the data support them, and every figure at once.
- `dataset`: identity folders or a CSV of pairs.
- `runner`: embeds each image once over the cores, scores the pairs, runs the protocols; the FTA by reason.
- `plot`: the ROC and score histograms (matplotlib, an optional extra).
"""

from facer_cli.lazy_exports import lazy_exports

# Imported on first use: the CLI's views import `intervals` (pure Python) without loading numpy.
_EXPORTS = {
    "Dataset": "facer_cli.evaluation.dataset",
    "load_dataset": "facer_cli.evaluation.dataset",
    "Metrics": "facer_cli.evaluation.recommend",
    "evaluate_scores": "facer_cli.evaluation.recommend",
    "Evaluation": "facer_cli.evaluation.runner",
    "embed_images": "facer_cli.evaluation.runner",
    "evaluate": "facer_cli.evaluation.runner",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

TYPE_CHECKING = False  # not `typing`: see facer_cli/__init__.py
if TYPE_CHECKING:
    from facer_cli.evaluation.dataset import Dataset, load_dataset
    from facer_cli.evaluation.recommend import Metrics, evaluate_scores
    from facer_cli.evaluation.runner import Evaluation, embed_images, evaluate
