"""`TemplateSaving`: the store contract's template writes and `export`, the same on every backend.

They check and shape what arrives — a template built from frames with one sample row per frame, or
a vector given as it is (checked, its model named) — and hand it to the backend's `_save`, which
decides and writes it in one transaction; `export` picks from the backend's `templates`. No SQL
here: each backend (`facer_cli.store.repository.Store`, `facer_cli.store.postgres.repository.
PostgresStore`) keeps its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence

import numpy as np

from facer_cli.errors import VectorError
from facer_cli.files.vectors import validate_vector
from facer_cli.store.records import Mode, StoredTemplate, chosen_template, sample_rows

if TYPE_CHECKING:
    from facer_cli.engine.reports import FrameReport
    from facer_cli.templates.aggregate import Template


class TemplateSaving:
    """`add_template`, `import_vector` and `export` over a backend's `_save` and `templates`."""

    def _save(
        self,
        user: str,
        vector: np.ndarray,
        *,
        model: str,
        source: str,
        mode: Mode,
        samples: list[dict],
        frames_seen: int | None,
        frames_used: int | None,
        outliers: int | None,
        mean_quality: float | None,
        model_verified: bool,
    ) -> StoredTemplate:
        """The backend's write: the checks against what is stored, then the rows, in one transaction."""
        raise NotImplementedError

    def templates(self, user: str, with_vectors: bool = True) -> List[StoredTemplate]:
        raise NotImplementedError

    def add_template(
        self,
        user: str,
        template: Template,
        frames: Sequence[FrameReport] = (),
        *,
        model: str,
        source: str,
        mode: Mode = "new",
    ) -> StoredTemplate:
        """Store a template built from `frames` (and one sample row per frame), in one transaction.

        `mode`: "new" (the user must not exist), "replace" (the new template replaces every
        old one) or "add" (another template for the same person, from the same model).
        """
        return self._save(
            user,
            template.vector,
            model=model,
            source=source,
            mode=mode,
            samples=sample_rows(template, frames),
            frames_seen=template.frames_seen,
            frames_used=len(template.used),
            outliers=len(template.outliers),
            mean_quality=template.mean_quality,
            model_verified=True,
        )

    def import_vector(
        self,
        user: str,
        vector: np.ndarray,
        *,
        model: str,
        source: str,
        mode: Mode = "new",
        model_verified: bool = True,
    ) -> StoredTemplate:
        """Store a template given as a vector (e.g. a `.npy` from `facer capture` or `users export`).

        `model_verified=False`: the caller could not check that `model` names a model it knows
        (the template is flagged in `list`). Either way a model's templates have one dimension."""
        vector = validate_vector(np.asarray(vector), source)
        if not model or not model.strip():
            raise VectorError(f"{source}: the model that made this vector is unknown; give its fingerprint")
        return self._save(
            user,
            vector,
            model=model.strip(),
            source=source,
            mode=mode,
            samples=[],
            frames_seen=None,
            frames_used=None,
            outliers=None,
            mean_quality=None,
            model_verified=model_verified,
        )

    def export(self, user: str, template_id: int | None = None) -> StoredTemplate:
        """One template with its vector: the given one, or the newest."""
        return chosen_template(user, self.templates(user, with_vectors=True), template_id)
