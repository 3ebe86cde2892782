"""`Facer`: the Python twin of every command, over one engine and one store.

    >>> from facer_cli import Facer, load_settings
    >>> facer = Facer(load_settings().settings)        # Facer() uses the defaults alone
    >>> facer.enroll("alice", ["photos/alice/"])        # EnrollResult; .to_dict() is `facer enroll --json`
    >>> facer.verify("alice", ["door.jpg"]).band        # Band.MATCH

Settings are explicit: nothing here reads facer.toml or the environment (front ends
call `load_settings()` for that). The engine is loaded on first use and shared by every
`Facer` with the same engine settings. Methods return result dataclasses
(`facer_cli.service.results`) and raise `facer_cli.errors` classes.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, Union

from facer_cli.errors import LookalikeError, NoFaceError, TooFewFramesError, UsageError, UserExistsError
from facer_cli.service.doctor import doctor_info, package_versions
from facer_cli.service.inputs import (
    Frames,
    InputFile,
    Limits,
    files_of,
    frames_from_burst,
    frames_from_camera,
    frames_from_files,
    vector_or_face,
)
from facer_cli.service.results import (
    CaptureResult,
    CheckResult,
    CompareResult,
    DoctorInfo,
    EnrollResult,
    ExportResult,
    ImportResult,
    InspectResult,
    UserList,
    VerifyResult,
)
from facer_cli.service.rules import Purpose, template_for
from facer_cli.service.verification import Verification, verify_probe
from facer_cli.settings import Settings
from facer_cli.store import (
    MODES,
    NO_PROBE,
    Access,
    AttemptRecord,
    IdentifyRecord,
    Mode,
    Removal,
    UserDetails,
    UserSummary,
    validate_user_name,
)
from facer_cli.store.contract import StoreContract, open_store
from facer_cli.store.names import lookalike_message
from facer_cli.store.records import now
from facer_cli.store.urls import is_postgres_url
from facer_cli.templates.matching import Comparison, Thresholds

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.engine.reports import FrameReport
    from facer_cli.evaluation import Evaluation
    from facer_cli.gallery import Candidate, GalleryIndex
    from facer_cli.liveness import Challenge, LivenessResult
    from facer_cli.service.bulk import BatchProgress, EachAnswer, FacesResult, Person
    from facer_cli.service.capture import CaptureProgress
    from facer_cli.service.identify import IdentifyResult
    from facer_cli.service.liveness import LiveCheck
    from facer_cli.sources.camera import Camera, Source
    from facer_cli.templates.aggregate import Template

PathLike = Union[str, Path]
# Frames, paths (analysed here), or a source called once the store's checks have passed, so a camera
# opens only when enrolling, verifying or identifying can succeed.
Inputs = Union[Frames, Iterable[PathLike], Callable[[], Frames]]


class Facer:
    """Settings, an engine loaded on first use, and the store they name."""

    def __init__(self, settings: Settings | None = None, *, engine: "FaceEngine | None" = None):
        self.settings = settings if settings is not None else Settings()
        self._engine = engine
        self._galleries: dict[tuple[str, str], "GalleryIndex"] = {}
        self._galleries_lock = threading.Lock()
        # Opens the store instead of `open_store(settings, access)`: a long-running process's
        # pool (`facer serve` on PostgreSQL: `facer_cli.store.postgres.pool.StorePool.store`).
        self.store_opener: Callable[[Access], StoreContract] | None = None

    @property
    def engine(self) -> "FaceEngine":
        if self._engine is None:
            from facer_cli.engine.face_engine import get_engine

            self._engine = get_engine(self.settings.engine)
        return self._engine

    @property
    def model(self) -> str:
        """The fingerprint of the current model (loads the engine)."""
        return self.engine.fingerprint

    @property
    def limits(self) -> Limits:
        return Limits.of(self.settings)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds.of(self.settings)

    def open_store(self, access: Access = "create") -> StoreContract:
        """The store of the `db` setting: the SQLite file, or PostgreSQL for a `postgresql://` URL.
        `access`: "create" (made when missing), "write" (must exist) or "read" (must exist; nothing
        is written or created beside it)."""
        if self.store_opener is not None:
            return self.store_opener(access)
        return open_store(self.settings, access)

    @contextmanager
    def _store(self, store: StoreContract | None, access: Access) -> Iterator[StoreContract]:
        if store is not None:
            yield store
            return
        with self.open_store(access) as opened:
            yield opened

    # -- frames in ---------------------------------------------------------
    def frames_from_paths(
        self,
        paths: Iterable[PathLike],
        *,
        per_folder: int | None = None,
        all_faces: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> Frames:
        """Images named and found in folders (the folder policy of `facer_cli.sources.image_paths`), analysed."""
        items = files_of(paths, per_folder)
        return frames_from_files(
            self.engine,
            items,
            self.limits,
            all_faces=all_faces,
            on_progress=on_progress,
            workers=self.settings.workers,
        )

    def frames_from_uploads(self, uploads: Sequence[InputFile]) -> Frames:
        """Images held in memory; one that is not a usable image raises its `ImageError`."""
        return frames_from_files(self.engine, uploads, self.limits, strict=True, workers=self.settings.workers)

    def frames_from_camera(
        self,
        source: "Source | None" = None,
        on_progress: "Callable[[CaptureProgress], None] | None" = None,
        camera: "Camera | None" = None,
        *,
        liveness: bool | None = None,
        challenge: "Challenge | None" = None,
    ) -> Frames:
        """A camera index (default `camera_index`), a video file or a stream URL, until `max_frames` accepted.

        With liveness (`liveness=True`, or None and the `liveness` setting "camera" or "required"), the
        person answers a random head-turn challenge (`challenge` replaces it: tests, a known clip) and the
        capture ends when it is decided; the `Frames` carry the `LivenessResult`, which `enroll`, `verify`
        and `capture` check."""
        from facer_cli.service.liveness_policy import wanted

        check = None
        if wanted(self.settings, True, liveness):
            from facer_cli.service.liveness import LiveCheck

            check = LiveCheck(self.engine, self.settings, challenge)
        return frames_from_camera(self.engine, source, self.settings, on_progress, camera, check)

    def frames_from_burst(self, uploads: Sequence[tuple[InputFile, float]], challenge: "Challenge") -> Frames:
        """Uploaded frames, each with its timestamp in ms, answering `challenge` (the HTTP liveness flow)."""
        from facer_cli.service.liveness import LiveCheck

        check = LiveCheck(self.engine, self.settings, challenge)
        return frames_from_burst(self.engine, uploads, self.limits, check)

    def answer_challenge_step(
        self, uploads: Sequence[tuple[InputFile, float]], check: "LiveCheck"
    ) -> list["FrameReport"]:
        """Uploaded frames, each with its timestamp in ms on the server's clock, answering the current step of
        a challenge revealed one step at a time (HTTP): decoded and analysed in time order; the frames that
        answered the step (`service.inputs.frames_for_step`). A file that is not a usable image fails the request."""
        from facer_cli.service.inputs import frames_for_step

        return frames_for_step(self.engine, uploads, self.limits, check)

    def _frames(self, inputs: Inputs) -> Frames:
        if isinstance(inputs, Frames):
            return inputs
        if callable(inputs):
            return inputs()
        return self.frames_from_paths(inputs, per_folder=self.settings.max_images)

    # -- inspect and compare ------------------------------------------------
    def inspect(
        self, paths: Iterable[PathLike], *, all_faces: bool = False, on_progress: Callable[[int], None] | None = None
    ) -> InspectResult:
        """Every image of `paths` (folders: all their images), face by face, and the template they would make."""
        frames = self.frames_from_paths(paths, all_faces=all_faces, on_progress=on_progress).frames
        return InspectResult(frames, self._template_if_one_person(frames), self.model)

    def _template_if_one_person(self, frames: list["FrameReport"]) -> "Template | None":
        """The template these frames would make: at least two accepted, most of them kept
        (frames of several people, most dropped as outliers, form no template)."""
        from facer_cli.templates.aggregate import build_template

        if sum(frame.accepted for frame in frames) < 2:
            return None
        try:
            template = build_template(frames, 1, self.settings.outlier_cosine_threshold)
        except TooFewFramesError:
            return None
        return template if 2 * len(template.used) > len(template.accepted) else None

    def compare(self, a: InputFile | PathLike, b: InputFile | PathLike) -> CompareResult:
        """Cosine similarity and band of two inputs, each an image (its accepted subject) or a `.npy`."""
        items = [x if isinstance(x, InputFile) else InputFile.from_path(x) for x in (a, b)]
        vectors, frames = [], []
        for item in items:
            vector, frame = vector_or_face(self.engine, item, self.limits)
            vectors.append(vector)
            if frame is not None:
                frames.append(frame)
        comparison = Comparison.of(vectors[0], vectors[1], self.thresholds)
        return CompareResult(items[0].name, items[1].name, comparison, frames)

    # -- templates without a store -----------------------------------------
    def capture(
        self,
        inputs: Inputs,
        *,
        out: PathLike | None = None,
        overwrite: bool = False,
        liveness: "LivenessResult | None" = None,
    ) -> CaptureResult:
        """A template (a token) from images or camera frames; written to `out` as `.npy` when given.
        Frames that failed a liveness challenge raise `LivenessError` (nothing is written)."""
        frames = self._frames(inputs)
        self._refuse_not_live(frames, liveness)
        result = CaptureResult(template_for(frames, self.settings, Purpose.PROBE), frames, self.model)
        if out is not None:
            result.out = str(write_template_file(out, result.vector, overwrite))
        return result

    # -- the store: enroll and verify ----------------------------------------
    def check_enrollable(self, store: StoreContract, user: str, mode: Mode) -> str:
        """Fail before any frame is captured when enrolling would fail anyway (the store re-checks)."""
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        name = validate_user_name(user)
        store.check_writable(f"enroll {name!r}")
        enrolled = store.enrolled_name(name)
        if enrolled is not None and enrolled != name:
            raise UserExistsError(lookalike_message(name, enrolled))
        if mode == "new" and store.exists(name):
            count = len(store.templates(name, with_vectors=False))
            raise UserExistsError(f"{name!r} is already enrolled ({count} template(s))")
        return name

    def enroll(
        self,
        user: str,
        inputs: Inputs,
        *,
        mode: Mode = "new",
        allow_lookalike: bool = False,
        allow_different_face: bool = False,
        store: StoreContract | None = None,
        liveness: "LivenessResult | None" = None,
    ) -> EnrollResult:
        """Build the template (at least `min_valid_frames` usable frames) and store it with its samples.

        Frames that failed a liveness challenge (theirs, or `liveness`) raise `LivenessError`, storing
        nothing. A template that matches another enrolled person at or above `identify_threshold` raises
        `LookalikeError` (one person enrolled twice, or a look-alike) unless `allow_lookalike`; then
        it is stored and the pairs are recorded (`users show` lists them). The search and the insert
        are one transaction under the store's lock on the model's enrollments, so of two people
        enrolling the same face at once the second is refused. With mode "add" or "replace", a
        template that does not match the user's own templates of the model at cosine_threshold_high
        raises `DifferentFaceError` unless `allow_different_face` (then the change is recorded in
        the user's audit log)."""
        with self._store(store, "create") as opened:
            name = self.check_enrollable(opened, user, mode)
            frames = self._frames(inputs)
            self._refuse_not_live(frames, liveness)
            template = template_for(frames, self.settings, Purpose.ENROLL)
            model = self.model
            self._warm_gallery(opened, model)
            with opened.transaction(f"enroll {name!r}"):
                opened.lock_enrollments(model)
                changed = self._face_change(opened, name, template.vector, model, mode, allow_different_face)
                lookalikes = self._new_lookalikes(opened, name, template.vector, model, allow_lookalike)
                stored = opened.add_template(
                    name, template, frames.frames, model=model, source=frames.source, mode=mode
                )
                if lookalikes:
                    opened.record_lookalikes(name, [(c.user_id, c.similarity) for c in lookalikes], model)
                if changed is not None:
                    self._record_face_change(opened, name, model, mode, frames.source, changed, stored)
        return EnrollResult(name, mode, template, stored, frames, [c.to_dict() for c in lookalikes])

    def _warm_gallery(self, store: StoreContract, model: str) -> None:
        """Bring the gallery index up to date before the write lock is taken, so the search under
        the lock only catches up with the last few changes (a cold index is built here, unlocked)."""
        self.gallery_index(store, model).refresh()

    def _face_change(
        self, store: StoreContract, name: str, vector: Any, model: str, mode: Mode, allow_different_face: bool
    ) -> float | None:
        """Adding to or replacing an enrolled user's templates: the best similarity of `vector` to
        their templates of `model` when it is below cosine_threshold_high and `allow_different_face`
        (the change to record), None when it matches them (or there are none to compare with);
        `DifferentFaceError`, naming whom it matches instead, when it does not and that is not allowed."""
        from facer_cli.errors import DifferentFaceError
        from facer_cli.templates.matching import cosine_similarity

        if mode == "new" or not store.exists(name):
            return None
        own = [t.vector for t in store.templates(name, with_vectors=True) if t.model == model and t.vector is not None]
        if not own:
            return None  # nothing of this model to compare with (a re-enrollment with a new model)
        best = max(cosine_similarity(vector, old) for old in own)
        high = self.settings.cosine_threshold_high
        if best >= high:
            return None
        if allow_different_face:
            return best
        others = self.lookalikes(vector, name, store=store, model=model)
        instead = (
            f"; it matches {others[0].name!r} ({others[0].similarity:.2f}) instead"
            if others
            else "; it matches no other enrolled person either"
        )
        what = "add it to" if mode == "add" else "replace"
        raise DifferentFaceError(
            f"this face does not match the enrolled template(s) of {name!r} ({best:.2f} < cosine_threshold_high "
            f"{high:g}): refusing to {what} their templates with someone else's face{instead}",
            other=others[0].name if others else None,
        )

    def _record_face_change(
        self, store: StoreContract, name: str, model: str, mode: Mode, source: str, similarity: float, stored: Any
    ) -> None:
        """The user's audit log keeps an explicitly allowed change of face: band "face_changed", the
        new template's best similarity to the old ones, and the new template."""
        from facer_cli.store.records import FACE_CHANGED

        store.record_attempt(
            AttemptRecord(
                name,
                model,
                f"enroll --{mode} (face changed, allowed explicitly): {source}",
                FACE_CHANGED,
                similarity=similarity,
                threshold_high=self.settings.cosine_threshold_high,
                threshold_low=self.settings.cosine_threshold_low,
                template_id=stored.id,
            )
        )

    def _new_lookalikes(
        self, store: StoreContract, name: str, vector: Any, model: str, allow_lookalike: bool
    ) -> list["Candidate"]:
        """The people `vector` (a new template of `name`) matches at or above identify_threshold, less
        the pairs already recorded (they stop nothing again); `LookalikeError` unless `allow_lookalike`."""
        known = {other.user for other in store.lookalikes(name)}
        lookalikes = [c for c in self.lookalikes(vector, name, store=store, model=model) if c.name not in known]
        if lookalikes and not allow_lookalike:
            best = lookalikes[0]
            raise LookalikeError(
                f"{name!r} looks like {best.name!r} ({best.similarity:.2f}): the same person enrolled twice, "
                f"or a look-alike (identify_threshold {self.settings.identify_threshold:g})"
            )
        return lookalikes

    def lookalikes(
        self, vector: Any, user: str | None = None, *, store: StoreContract | None = None, model: str | None = None
    ) -> list["Candidate"]:
        """Enrolled people other than `user` whose templates (of `model`, default the current model's)
        match `vector` at or above identify_threshold."""
        with self._store(store, "read") as opened:
            index = self.gallery_index(opened, model)
        found = index.search(vector, top_k=self.settings.identify_top + 1)
        threshold = self.settings.identify_threshold
        return [c for c in found if c.name != user and c.similarity >= threshold]

    # -- the store: identify (1:N) ---------------------------------------------
    def gallery_index(self, store: StoreContract | PathLike | None = None, model: str | None = None) -> "GalleryIndex":
        """The gallery index of `model`'s templates in the store (an open store, an SQLite file's path,
        or by default the `db` setting's; default model: the current one). Kept per process and
        brought up to date with the store before every search."""
        from facer_cli.gallery import GalleryIndex

        if store is None and is_postgres_url(self.settings.db):
            with self.open_store("read") as opened:
                return self.gallery_index(opened, model)
        model = model or self.model
        if store is None or isinstance(store, (str, Path)):
            path = Path(store) if store is not None else self.settings.db_path
            key = (str(path.expanduser().resolve()), model)
            source: Any = path
        else:
            key, source = (store.gallery_key, model), store.gallery_source
        with self._galleries_lock:
            index = self._galleries.get(key)
            if index is None:
                index = GalleryIndex.open(source if isinstance(source, Path) else source(), model)
                self._galleries[key] = index
        return index

    def close_galleries(self) -> None:
        """Close every gallery index this process keeps (and its connection to the store)."""
        with self._galleries_lock:
            indexes, self._galleries = list(self._galleries.values()), {}
        for index in indexes:
            index.close()

    def gallery_indexes(self) -> list["GalleryIndex"]:
        """The gallery indexes this process keeps open now (none until one is first needed)."""
        with self._galleries_lock:
            return list(self._galleries.values())

    def prepare_identify(self, store: StoreContract) -> None:
        """A store that cannot record the attempt fails before any capture."""
        store.check_writable("record an identify attempt")

    def identify(
        self,
        inputs: Inputs,
        *,
        top: int | None = None,
        store: StoreContract | None = None,
        liveness: "LivenessResult | None" = None,
    ) -> "IdentifyResult":
        """Who is this? Build a probe as `verify` does, search every template of the current model
        exactly, decide identified / unknown / ambiguous (identify_threshold, identify_margin and, from
        a camera, identify_frames) and record the attempt. No usable probe: recorded as "no_probe" and
        `TooFewFramesError` raised. Liveness as in `verify`: frames that failed their challenge (or
        `liveness`) are recorded as "not_live" and raise `LivenessError`; under `liveness = "required"`,
        frames that answered none raise `LivenessRequiredError`."""
        import numpy as np

        from facer_cli.service.identify import (
            IdentifyResult,
            audit_candidates,
            decide_with_frames,
            gallery_warning,
        )
        from facer_cli.service.liveness_policy import refuse_not_live, require_challenge
        from facer_cli.store import NOT_LIVE

        settings = self.settings
        top = settings.identify_top if top is None else top
        if not 1 <= top <= 100:
            raise UsageError(f"top must be between 1 and 100, not {top}")
        with self._store(store, "write") as opened:
            self.prepare_identify(opened)
            model = self.model
            frames = self._frames(inputs)
            result = liveness if liveness is not None else frames.liveness
            require_challenge(settings, "identify", result)
            seen, accepted = len(frames.frames), sum(frame.accepted for frame in frames.frames)
            if result is not None and not result.live:
                opened.record_identification(
                    IdentifyRecord(model, frames.source, NOT_LIVE, frames_seen=seen, frames_used=accepted)
                )
                raise refuse_not_live(result, frames)
            try:
                probe = template_for(frames, settings, Purpose.PROBE)
            except TooFewFramesError:
                opened.record_identification(
                    IdentifyRecord(model, frames.source, NO_PROBE, frames_seen=seen, frames_used=accepted)
                )
                raise
            index = self.gallery_index(opened)
            probes = [probe.vector]
            by_frame = frames.capture is not None and settings.identify_frames > 1
            if by_frame:
                probes += [f.embedding for f in frames.frames if f.accepted and f.embedding is not None]
            found = index.search_batch(np.stack(probes).astype(np.float32), max(top, 2))
            candidates = found[0]
            decision, reason, agreeing = decide_with_frames(
                candidates,
                found[1:],
                settings.identify_threshold,
                settings.identify_margin,
                settings.identify_frames if by_frame else 1,
            )
            size = len(index)
            warning = gallery_warning(size, settings.identify_calibrated_for, settings.identify_threshold)
            shown = candidates[:top]
            best = candidates[0] if candidates else None
            gap = candidates[0].similarity - candidates[1].similarity if len(candidates) > 1 else None
            attempt_id = opened.record_identification(
                IdentifyRecord(
                    model,
                    frames.source,
                    decision,
                    user=best.name if best is not None and decision == "identified" else None,
                    similarity=None if best is None else best.similarity,
                    threshold=settings.identify_threshold,
                    margin=gap,
                    candidates=audit_candidates(shown),
                    gallery_size=size,
                    frames_seen=probe.frames_seen,
                    frames_used=len(probe.used),
                )
            )
        return IdentifyResult(
            decision,
            reason,
            shown,
            gap,
            settings.identify_threshold,
            settings.identify_margin,
            size,
            settings.identify_calibrated_for,
            model,
            attempt_id,
            now(),
            probe,
            frames,
            settings.identify_frames if by_frame else 1,
            agreeing,
            [warning] if warning else [],
        )

    # -- many at once (`facer_cli.service.bulk`) ---------------------------------
    def enroll_batch(
        self,
        people: "PathLike | Sequence[Person]",
        *,
        replace: bool = False,
        dry_run: bool = False,
        allow_lookalike: bool = False,
        store: StoreContract | None = None,
    ) -> "Iterator[BatchProgress]":
        """Enroll many people: a folder (`DIR/<name>/*.jpg`), a manifest (`.csv`: name,path) or `Person`s.
        Yields `BatchProgress` after each photo and each person (`outcome`: enrolled, skipped, refused or
        lookalike); one transaction per person; `dry_run` stores nothing. `bulk.collect` runs it to a
        `BatchResult`."""
        from facer_cli.service.bulk import enroll_batch, people_from_folder, people_from_manifest

        if isinstance(people, (str, Path)):
            path = Path(people)
            people = people_from_folder(path) if path.is_dir() else people_from_manifest(path)
        return enroll_batch(
            self, people, replace_enrolled=replace, dry_run=dry_run, allow_lookalike=allow_lookalike, store=store
        )

    def identify_each(self, paths: Iterable[PathLike], *, store: StoreContract | None = None) -> "Iterator[EachAnswer]":
        """One identify answer per image (folders: each of their images), in order, each recorded."""
        from facer_cli.service.bulk import identify_each

        return identify_each(self, list(paths), store=store)

    def identify_faces(
        self, photo: "InputFile | PathLike", *, top: int | None = None, store: StoreContract | None = None
    ) -> "FacesResult":
        """Every face of one photo that passes the gates, each identified; no name given twice."""
        from facer_cli.service.bulk import identify_faces

        return identify_faces(self, photo, top=top, store=store)

    def prepare_verify(self, store: StoreContract, user: str) -> str:
        """Unknown user, a model mismatch or a store that cannot record the attempt: before any capture."""
        name = validate_user_name(user)
        store.templates(name, with_vectors=False)  # an unknown user is told so before the models load
        store.templates_of_model(name, self.model, with_vectors=False)
        store.check_writable(f"record a verify attempt for {name!r}")
        self.check_lockout(store, name)
        return name

    def check_lockout(self, store: StoreContract, user: str) -> None:
        """`UserLockedError` (and a "locked_out" attempt in the audit log) while the user is locked out
        after `liveness_max_failures` liveness failures within `liveness_window_s`."""
        from facer_cli.service.liveness_policy import failure_window, locked_error
        from facer_cli.store import LOCKED_OUT

        if self.settings.liveness_lockout_s <= 0:
            return
        window = failure_window(store, user, self.settings)
        if window.locked_until is None:
            return
        store.record_attempt(AttemptRecord(user, self.model, "refused: locked out", LOCKED_OUT, 0, 0))
        raise locked_error(window)

    def _refuse_not_live(self, frames: Frames, liveness: "LivenessResult | None") -> None:
        result = liveness if liveness is not None else frames.liveness
        if result is not None and not result.live:
            from facer_cli.service.liveness_policy import refuse_not_live

            raise refuse_not_live(result, frames)

    def verify(
        self,
        user: str,
        inputs: Inputs,
        *,
        store: StoreContract | None = None,
        liveness: "LivenessResult | None" = None,
    ) -> VerifyResult:
        """Build a probe (the template rule for probes), compare it with every template of the user
        made by the current model, keep the best and record the attempt — read, decide and record in
        one transaction. No usable probe: the attempt is recorded as "no_probe" and
        `TooFewFramesError` raised. Frames that failed their liveness challenge (or `liveness`, when
        given): recorded as "not_live" with the reasons, and `LivenessError` raised. Under
        `liveness = "required"`, frames that answered no challenge raise `LivenessRequiredError`."""
        from facer_cli.service.liveness_policy import (
            audit_fields,
            failure_window,
            refuse_not_live,
            require_challenge,
        )
        from facer_cli.store import NOT_LIVE

        with self._store(store, "write") as opened:
            name = self.prepare_verify(opened, user)
            model = self.model
            frames = self._frames(inputs)
            result = liveness if liveness is not None else frames.liveness
            require_challenge(self.settings, "verify", result)
            audit = audit_fields(result)
            seen = len(frames.frames)
            accepted = sum(frame.accepted for frame in frames.frames)
            if result is not None and not result.live:
                opened.record_attempt(AttemptRecord(name, model, frames.source, NOT_LIVE, seen, accepted, **audit))
                window = failure_window(opened, name, self.settings)
                raise refuse_not_live(result, frames, f" ({window.describe()})")
            try:
                probe = template_for(frames, self.settings, Purpose.PROBE)
            except TooFewFramesError:
                opened.record_attempt(AttemptRecord(name, model, frames.source, NO_PROBE, seen, accepted, **audit))
                raise
            verification = verify_probe(
                opened,
                name,
                probe.vector,
                model=model,
                thresholds=self.thresholds,
                source=frames.source,
                frames_seen=probe.frames_seen,
                frames_used=len(probe.used),
                liveness=result,
            )
        v = verification
        return VerifyResult(
            name, v.comparison, v.template_id, v.templates_compared, model, v.attempt_id, v.created, probe, frames
        )

    # -- the store: users ------------------------------------------------------
    def users(self, *, store: StoreContract | None = None) -> UserList:
        with self._store(store, "read") as opened:
            return UserList(opened.list())

    def user(self, name: str, *, attempts: int = 10, store: StoreContract | None = None) -> UserDetails:
        with self._store(store, "read") as opened:
            return opened.show(name, attempts=attempts)

    def remove_user(self, name: str, *, store: StoreContract | None = None) -> Removal:
        """Delete the user with every template and sample; `erasure_pending` when a reader still held
        the old pages (the next opening of the store that can write finishes the erasure)."""
        with self._store(store, "write") as opened:
            return opened.remove(name)

    def rename_user(self, old: str, new: str, *, store: StoreContract | None = None) -> UserSummary:
        with self._store(store, "write") as opened:
            return opened.rename(old, new)

    def export_template(
        self,
        user: str,
        out: PathLike,
        *,
        template_id: int | None = None,
        overwrite: bool = False,
        store: StoreContract | None = None,
    ) -> ExportResult:
        """One of a user's templates (the newest by default) written to a `.npy` file."""
        with self._store(store, "read") as opened:
            stored = opened.export(user, template_id)
        assert stored.vector is not None
        return ExportResult(stored, str(write_template_file(out, stored.vector, overwrite)))

    def import_template(
        self,
        user: str,
        file: InputFile | PathLike,
        *,
        fingerprint: str | None = None,
        mode: Mode = "new",
        trust_fingerprint: bool = False,
        allow_lookalike: bool = False,
        allow_different_face: bool = False,
        store: StoreContract | None = None,
    ) -> ImportResult:
        """A `.npy` vector stored as a template. `fingerprint`: the model that made it; None means the
        current model. A fingerprint names a model: the current model's needs a vector of its size
        (`ModelMismatchError` otherwise). Any other fingerprint — another version of a pack, another
        pack, free text — cannot be checked: `UnverifiedModelError` unless `trust_fingerprint`, and
        then the template is stored flagged as unverified (`users list` shows it). Either way all
        templates of one fingerprint have one size. A template of the current model is checked for
        look-alikes as `enroll` checks one (`LookalikeError` unless `allow_lookalike`), and any
        template added to or replacing a user's as `enroll` checks it (`DifferentFaceError` unless
        `allow_different_face`)."""
        from facer_cli.errors import ModelMismatchError, ModelPackError, UnverifiedModelError, VectorError
        from facer_cli.files.npy import max_npy_bytes
        from facer_cli.files.vectors import vector_from_bytes

        if fingerprint is not None:
            fingerprint = fingerprint.strip()
            if not fingerprint:
                raise UsageError("the model fingerprint is empty")
        item = file if isinstance(file, InputFile) else InputFile.from_path(file)
        vector = vector_from_bytes(item.read(max_npy_bytes(), VectorError), item.name)
        try:
            current, dimension = self.current_model()
        except ModelPackError:
            if fingerprint is None or not trust_fingerprint:
                raise
            current, dimension = "", None
        fingerprint = fingerprint or current
        verified = fingerprint == current
        if verified and dimension is not None and vector.shape[0] != dimension:
            raise ModelMismatchError(
                f"{item.name} has {vector.shape[0]} values, but model {fingerprint} makes {dimension}-d templates"
            )
        if not verified and not trust_fingerprint:
            name = fingerprint.split(":", 1)[0]
            if ":" in fingerprint and name == current.split(":", 1)[0]:
                what = f"another version of model pack {name!r} than the installed one ({current})"
            else:
                what = f"a model facer cannot check (the current model is {current})"
            raise UnverifiedModelError(
                f"fingerprint {fingerprint!r} names {what}; a template is stored under it only when "
                "it is trusted explicitly, and is then marked unverified"
            )
        with self._store(store, "create") as opened:
            name = validate_user_name(user)
            opened.check_writable(f"import a template for {name!r}")  # before the look-alike search
            source = f"import: {Path(item.name).name}"
            if verified:
                self._warm_gallery(opened, fingerprint)
            with opened.transaction(f"import a template for {name!r}"):
                opened.lock_enrollments(fingerprint)
                changed = self._face_change(opened, name, vector, fingerprint, mode, allow_different_face)
                # Templates of other models are searched by nothing (identify uses the current model's).
                lookalikes = (
                    self._new_lookalikes(opened, name, vector, fingerprint, allow_lookalike) if verified else []
                )
                stored = opened.import_vector(
                    name, vector, model=fingerprint, source=source, mode=mode, model_verified=verified
                )
                if lookalikes:
                    opened.record_lookalikes(name, [(c.user_id, c.similarity) for c in lookalikes], fingerprint)
                if changed is not None:
                    self._record_face_change(opened, name, fingerprint, mode, source, changed, stored)
        return ImportResult(stored, [c.to_dict() for c in lookalikes])

    def current_model(self) -> tuple[str, int | None]:
        """Fingerprint and template size of the current model pack, without loading the engine: the
        fingerprint is the pack's (file hashes), the size the recognition model's declared output, read
        from a bare ONNX Runtime session (no `onnx` import, no graph optimisation, nothing run)."""
        from facer_cli.engine.modelpack import locate_pack

        pack = locate_pack(self.settings)
        try:
            dimension = _output_size(pack.files["recognition"].path)
        except Exception:  # the engine reports an unreadable model when it loads it
            dimension = None
        return pack.fingerprint, dimension

    def check_store(self, *, store: StoreContract | None = None) -> CheckResult:
        """The store's check (SQLite: quick_check over the whole file; PostgreSQL: facer's rows);
        `StoreError` when it is damaged."""
        with self._store(store, "read") as opened:
            collisions = [{"user": user, "looks_like": other} for user, other in opened.name_collisions()]
            return CheckResult(opened.location, opened.check(), opened.count(), collisions, opened.encryption())

    # -- evaluate, doctor ------------------------------------------------------
    def evaluate(self, data: PathLike, **options: Any) -> "Evaluation":
        """`facer evaluate`: see `facer_cli.evaluation.runner.evaluate` for the options."""
        from facer_cli.evaluation import evaluate, load_dataset

        return evaluate(load_dataset(data), self.settings, **options)

    def doctor(self) -> DoctorInfo:
        """What facer runs on: versions, pack, files and hashes, modules, provider, load time.
        Loads a fresh engine (not the cached one), so the load time is real."""
        return doctor_info(self.settings)


def write_template_file(out: PathLike, vector: Any, overwrite: bool) -> Path:
    """A template as a `.npy` file (the suffix added when missing), 0600, atomically."""
    from facer_cli.files.vectors import vector_bytes
    from facer_cli.files.writing import with_suffix, write_private

    return write_private(with_suffix(out, ".npy"), vector_bytes(vector), overwrite=overwrite)


def _output_size(model_file: Path) -> int | None:
    """The last axis of an ONNX model's first output, as its graph declares it (None when not fixed)."""
    import onnxruntime

    from facer_cli.engine.onnx_models import open_session

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = open_session(model_file, ["CPUExecutionProvider"], options)
    size = session.get_outputs()[0].shape[-1]
    return size if isinstance(size, int) and size > 0 else None


__all__ = ["Facer", "InputFile", "NoFaceError", "Verification", "package_versions", "verify_probe"]
