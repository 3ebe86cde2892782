"""`facer evaluate`: accuracy, FAR/FRR and threshold calibration on labelled faces.

- `metrics`: figures from genuine and impostor scores (pure numpy; the definitions live there).
- `dataset`: identity folders or a CSV of pairs.
- `runner`: embeds each image once over the cores, scores the pairs, runs the protocols.
- `plot`: the ROC and score histograms (matplotlib, an optional extra).
"""

from facer_cli.evaluation.dataset import Dataset, load_dataset
from facer_cli.evaluation.metrics import Metrics, evaluate_scores
from facer_cli.evaluation.runner import Evaluation, embed_images, evaluate

__all__ = ["Dataset", "Evaluation", "Metrics", "embed_images", "evaluate", "evaluate_scores", "load_dataset"]
