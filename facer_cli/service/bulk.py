"""Many at once: an organisation enrolled in one run, many probes identified one by one, every face of a photo.

**Batch enrollment** (`enroll_batch`): people from a folder (`DIR/<name>/*.jpg`, the folder name is
the user name) or a manifest (a CSV of `name,path`, paths relative to it). Every photo is analysed
in `workers` threads over the one engine, in the people's order, and each person is decided as soon
as their photos are: the template rule of `enroll` (`min_valid_frames`), then the look-alike checks
— against the enrolled people (as `enroll` checks) and against the people before them in this batch
(two folders holding one person) — and, unless it is a dry run, the person's enrollment in one
transaction (`Facer.enroll`), so a person is stored whole or not at all. A person already enrolled is
skipped (mode "replace" redoes them), which makes a stopped run resumable: run it again and it goes
on where it stopped.

**Each probe** (`identify_each`): one identify decision per file, each recorded in the identify log.

**Every face** (`identify_faces`): each face of one photo that passes the gates (all but the
several-people gate) decided by the open-set rule; no name is given to two faces of one photo.
"""

from __future__ import annotations

import csv
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

from facer_cli.errors import (
    DifferentFaceError,
    InputError,
    LookalikeError,
    TooFewFramesError,
    UsageError,
    UserExistsError,
)
from facer_cli.service.inputs import Frames, InputFile, analyze_input, describe_images, worker_count
from facer_cli.service.rules import Purpose, template_for
from facer_cli.sources.image_paths import image_paths
from facer_cli.store import Mode, validate_user_name
from facer_cli.store.urls import is_postgres_url

# The `Facer` these functions take is typed `Facer` in words only: `service.facer` imports this module.
Facer = Any

if TYPE_CHECKING:
    import numpy as np

    from facer_cli.engine.reports import FaceReport, FrameReport
    from facer_cli.gallery import Candidate
    from facer_cli.store.contract import StoreContract

Status = Literal["enrolled", "skipped", "refused", "lookalike"]
STATUSES: tuple[Status, ...] = ("enrolled", "skipped", "refused", "lookalike")


@dataclass
class Person:
    """One person of a batch: the user name and their photos."""

    name: str
    photos: list[Path]


def people_from_folder(folder: Path | str) -> list[Person]:
    """`DIR/<name>/` → one person per sub-folder (sorted by name), its images by the folder policy."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"a batch is a folder of one sub-folder per person: {root} is not a folder")
    people = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        people.append(Person(sub.name, image_paths([sub], None)))
    if not people:
        raise UsageError(f"{root} holds no sub-folder: the layout is DIR/<name>/*.jpg")
    return people


def people_from_manifest(manifest: Path | str) -> list[Person]:
    """A CSV with the columns `name,path` (a header row; several rows per person; paths relative to
    the file), in the order of each person's first row."""
    file = Path(manifest)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the manifest {file}: {exc.strerror or exc}") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"name", "path"} <= set(rows[0]):
        raise UsageError(f"{file}: a manifest needs the header row `name,path` and one row per photo")
    people: dict[str, Person] = {}
    for number, row in enumerate(rows, start=2):
        name, path = (row.get("name") or "").strip(), (row.get("path") or "").strip()
        if not name or not path:
            raise UsageError(f"{file}, line {number}: both name and path are needed")
        photo = Path(path) if Path(path).is_absolute() else file.parent / path
        people.setdefault(name, Person(name, [])).photos.append(photo)
    return list(people.values())


@dataclass
class PersonOutcome:
    """What became of one person: enrolled, skipped, refused (with each photo's reason) or a look-alike."""

    name: str
    status: Status
    photos: int
    used: int = 0
    reason: str = ""
    photo_reasons: list[tuple[str, str]] = field(default_factory=list)  # (photo, why it was not used)
    looks_like: str | None = None
    similarity: float | None = None
    template_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "photos": self.photos,
            "used": self.used,
            "reason": self.reason,
            "photo_reasons": [{"photo": photo, "reason": why} for photo, why in self.photo_reasons],
            "looks_like": self.looks_like,
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "template_id": self.template_id,
        }


@dataclass
class BatchProgress:
    """Where a batch stands: photos analysed and people decided so far; `outcome` is the person just
    decided (None while photos are analysed)."""

    photos_done: int
    photos_total: int
    people_done: int
    people_total: int
    outcome: PersonOutcome | None = None


@dataclass
class BatchResult:
    outcomes: list[PersonOutcome]
    dry_run: bool
    model: str
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def complete(self) -> bool:
        """Every person enrolled or skipped."""
        return all(o.status in ("enrolled", "skipped") for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "counts": {status: self.count(status) for status in STATUSES},
            "people": [o.to_dict() for o in self.outcomes],
            "photos": sum(o.photos for o in self.outcomes),
            "seconds": round(self.seconds, 3),
            "model": self.model,
        }


REPORT_COLUMNS = ("name", "status", "photos", "used", "looks_like", "similarity", "reason")


def report_rows(result: BatchResult) -> list[list[str]]:
    """The rows of `--report FILE.csv`: one per person, the per-photo reasons in `reason`."""
    rows = []
    for o in result.outcomes:
        reason = o.reason
        if o.photo_reasons:
            reason += " | " + "; ".join(f"{Path(p).name}: {why}" for p, why in o.photo_reasons)
        similarity = "" if o.similarity is None else f"{o.similarity:.4f}"
        rows.append([o.name, o.status, str(o.photos), str(o.used), o.looks_like or "", similarity, reason])
    return rows


def enroll_batch(
    facer: Facer,
    people: Sequence[Person],
    *,
    replace_enrolled: bool = False,
    dry_run: bool = False,
    allow_lookalike: bool = False,
    store: "StoreContract | None" = None,
) -> Iterator[BatchProgress]:
    """Enroll `people`, yielding progress after each photo and after each person (see the module's
    docstring). The last item's `outcome` is the last person's; `collect` gathers a `BatchResult`."""
    people = [Person(validate_user_name(person.name), person.photos) for person in people]
    names = [person.name for person in people]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"{dup!r} appears twice in the batch (folder names or manifest names must be unique)")
    if store is not None:
        yield from _enroll_batch(facer, people, store, replace_enrolled, dry_run, allow_lookalike)
        return
    if dry_run and not is_postgres_url(facer.settings.db) and not facer.settings.db_path.exists():
        # A dry run creates nothing: with no store yet, nobody is enrolled.
        yield from _enroll_batch(facer, people, None, replace_enrolled, dry_run, allow_lookalike)
        return
    with facer.open_store("read" if dry_run else "create") as opened:
        yield from _enroll_batch(facer, people, opened, replace_enrolled, dry_run, allow_lookalike)


def _enroll_batch(
    facer: Facer,
    people: Sequence[Person],
    store: "StoreContract | None",
    replace_enrolled: bool,
    dry_run: bool,
    allow_lookalike: bool,
) -> Iterator[BatchProgress]:
    mode: Mode = "replace" if replace_enrolled else "new"
    if store is not None and not dry_run:
        store.check_writable("enroll a batch")
    todo: list[Person] = []
    skipped: dict[str, PersonOutcome] = {}
    for person in people:
        if not replace_enrolled and store is not None and store.exists(person.name):
            skipped[person.name] = PersonOutcome(person.name, "skipped", len(person.photos), reason="already enrolled")
        else:
            todo.append(person)
    total_photos = sum(len(p.photos) for p in todo)
    progress = BatchProgress(0, total_photos, 0, len(people))
    for person in people:
        if person.name in skipped:
            progress.people_done += 1
            progress.outcome = skipped[person.name]
            yield progress
    if not todo:
        return
    engine, limits = facer.engine, facer.limits
    model = facer.model
    batch: list[tuple[str, "np.ndarray"]] = []  # templates made in this batch so far
    pool = ThreadPoolExecutor(max_workers=worker_count(facer.settings.workers, total_photos))
    try:
        futures: list[list[Future[FrameReport]]] = [
            [pool.submit(analyze_input, engine, InputFile.from_path(p), limits) for p in person.photos]
            for person in todo
        ]
        for person, pending in zip(todo, futures, strict=True):
            reports = []
            for future in pending:
                reports.append(future.result())
                progress.photos_done += 1
                progress.outcome = None
                yield progress
            frames = Frames(reports, f"batch: {describe_images([str(p) for p in person.photos])}", True)
            outcome = _decide_person(facer, person, frames, store, mode, dry_run, allow_lookalike, model, batch)
            if outcome.status == "enrolled" and outcome.template_vector is not None:
                batch.append((person.name, outcome.template_vector))
            progress.people_done += 1
            progress.outcome = outcome.outcome
            yield progress
    finally:
        # After Ctrl-C or an error: nothing more starts; the people committed stay committed.
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Decided:
    outcome: PersonOutcome
    template_vector: Any = None

    @property
    def status(self) -> Status:
        return self.outcome.status


def _decide_person(
    facer: Facer,
    person: Person,
    frames: Frames,
    store: "StoreContract | None",
    mode: "Mode",
    dry_run: bool,
    allow_lookalike: bool,
    model: str,
    batch: list[tuple[str, "np.ndarray"]],
) -> _Decided:
    from facer_cli.templates.matching import cosine_similarity

    photo_reasons = [(f.source, f.error or f.reason or "no usable face") for f in frames.frames if not f.accepted]
    outcome = PersonOutcome(person.name, "refused", len(person.photos), photo_reasons=photo_reasons)
    try:
        template = template_for(frames, facer.settings, Purpose.ENROLL)
    except TooFewFramesError as exc:
        outcome.reason = str(exc)
        return _Decided(outcome)
    outcome.used = len(template.used)
    threshold = facer.settings.identify_threshold
    if not allow_lookalike and batch:
        best_name, best = max(
            ((name, float(cosine_similarity(template.vector, vector))) for name, vector in batch), key=lambda x: x[1]
        )
        if best >= threshold:
            outcome.status, outcome.looks_like, outcome.similarity = "lookalike", best_name, best
            outcome.reason = (
                f"looks like {best_name!r} of this batch ({best:.2f} >= identify_threshold {threshold:g}): "
                "one person under two names, or a look-alike"
            )
            return _Decided(outcome)
    if dry_run:
        if store is not None and not allow_lookalike:
            found = [c for c in facer.lookalikes(template.vector, person.name, store=store, model=model)]
            if found:
                best_c = found[0]
                outcome.status, outcome.looks_like, outcome.similarity = "lookalike", best_c.name, best_c.similarity
                outcome.reason = f"looks like enrolled {best_c.name!r} ({best_c.similarity:.2f})"
                return _Decided(outcome)
        outcome.status, outcome.reason = "enrolled", "would be enrolled (dry run)"
        return _Decided(outcome, template.vector)
    assert store is not None
    try:
        result = facer.enroll(
            person.name,
            frames,
            mode=mode,
            allow_lookalike=allow_lookalike,
            store=store,
        )
    except LookalikeError as exc:
        outcome.status, outcome.reason = "lookalike", str(exc)
        found = facer.lookalikes(template.vector, person.name, store=store, model=model)
        if found:
            outcome.looks_like, outcome.similarity = found[0].name, found[0].similarity
        return _Decided(outcome)
    except (DifferentFaceError, TooFewFramesError) as exc:
        outcome.reason = str(exc)
        return _Decided(outcome)
    except UserExistsError as exc:  # enrolled meanwhile by someone else
        outcome.status, outcome.reason = "skipped", str(exc)
        return _Decided(outcome)
    outcome.status, outcome.reason = "enrolled", ""
    outcome.template_id = result.stored.id
    return _Decided(outcome, template.vector)


def collect(progress: Iterator[BatchProgress], dry_run: bool, model: str) -> BatchResult:
    """Run a batch to its end: the outcomes, in the order the people were decided."""
    import time

    started = time.perf_counter()
    outcomes = [step.outcome for step in progress if step.outcome is not None]
    return BatchResult(outcomes, dry_run, model, time.perf_counter() - started)


# -- identify: each file, and every face -------------------------------------------------------
@dataclass
class EachAnswer:
    """One file's identify answer (or why it gave none)."""

    file: str
    decision: str  # identified / unknown / ambiguous / no_probe
    user: str | None = None
    similarity: float | None = None
    margin: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "decision": self.decision,
            "user": self.user,
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "margin": None if self.margin is None else round(self.margin, 6),
            "reason": self.reason,
        }


@dataclass
class EachResult:
    answers: list[EachAnswer]
    model: str

    def count(self, decision: str) -> int:
        return sum(1 for a in self.answers if a.decision == decision)

    def to_dict(self) -> dict[str, Any]:
        return {"answers": [a.to_dict() for a in self.answers], "model": self.model}


def identify_each(
    facer: Facer, files: Sequence[Path | str], *, store: "StoreContract | None" = None
) -> Iterator[EachAnswer]:
    """One identify decision per file (a folder: each of its images), analysed in `workers` threads,
    decided and recorded in file order."""
    items = [InputFile.from_path(p) for p in image_paths(files, None)]
    if not items:
        raise UsageError("no image to identify")
    engine, limits = facer.engine, facer.limits
    with facer._store(store, "write") as opened:
        facer.prepare_identify(opened)
        pool = ThreadPoolExecutor(max_workers=worker_count(facer.settings.workers, len(items)))
        try:
            futures = [pool.submit(analyze_input, engine, item, limits) for item in items]
            for item, future in zip(items, futures, strict=True):
                frame = future.result()
                frames = Frames([frame], describe_images([item.name]), explicit_images=True)
                try:
                    result = facer.identify(frames, store=opened)
                except TooFewFramesError:
                    yield EachAnswer(item.name, "no_probe", reason=frame.error or frame.reason or "no usable face")
                    continue
                yield EachAnswer(item.name, result.decision, result.user, result.similarity, result.gap, result.reason)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class FaceAnswer:
    """One face of a photo: its box, and the open-set decision (or why it was not searched)."""

    face: int
    box: tuple[float, float, float, float]
    decision: str  # identified / unknown / ambiguous / rejected
    user: str | None = None
    similarity: float | None = None
    margin: float | None = None
    reason: str = ""
    candidates: list["Candidate"] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "face": self.face,
            "box": [round(v, 1) for v in self.box],
            "decision": self.decision,
            "user": self.user,
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "margin": None if self.margin is None else round(self.margin, 6),
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass
class FacesResult:
    source: str
    faces: list[FaceAnswer]
    width: int
    height: int
    model: str
    gallery_size: int

    @property
    def named(self) -> list[str]:
        return [f.user for f in self.faces if f.decision == "identified" and f.user is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
            "gallery_size": self.gallery_size,
            "model": self.model,
        }


def gate_face(face: "FaceReport", facer: Facer) -> tuple[bool, str]:
    """The gates on one face of a group photo: every gate but the subject and several-people ones."""
    from facer_cli.engine.face_engine import decide

    alone = replace(face, is_subject=True, crowd=(), other_faces=())
    return decide(alone, facer.engine.settings)


def identify_faces(
    facer: Facer, item: InputFile | Path | str, *, top: int | None = None, store: "StoreContract | None" = None
) -> FacesResult:
    """Every face of one photo that passes the gates, decided by the open-set rule and recorded; a name
    goes to one face only: when two faces would get it, the more similar keeps it and the other is
    ambiguous."""
    import numpy as np

    from facer_cli.service.identify import audit_candidates, decide
    from facer_cli.store import IdentifyRecord

    settings = facer.settings
    top = settings.identify_top if top is None else top
    photo = item if isinstance(item, InputFile) else InputFile.from_path(item)
    frame = analyze_input(facer.engine, photo, facer.limits, all_faces=True, strict=True)
    answers: list[FaceAnswer] = []
    with facer._store(store, "write") as opened:
        facer.prepare_identify(opened)
        model = facer.model
        index = facer.gallery_index(opened)
        searched: list[tuple[FaceAnswer, list["Candidate"]]] = []
        passing = []
        for face in frame.faces:
            ok, why = gate_face(face, facer) if face.embedding is not None else (False, "not measured")
            answer = FaceAnswer(face.index, face.box, "rejected", reason=why)
            answers.append(answer)
            if ok and face.embedding is not None:
                passing.append((answer, face.embedding))
        if passing:
            found = index.search_batch(np.stack([v for _, v in passing]).astype(np.float32), max(top, 2))
            for (answer, _), candidates in zip(passing, found, strict=True):
                answer.decision, answer.reason = decide(
                    candidates, settings.identify_threshold, settings.identify_margin
                )
                answer.candidates = candidates[:top]
                answer.similarity = candidates[0].similarity if candidates else None
                answer.margin = candidates[0].similarity - candidates[1].similarity if len(candidates) > 1 else None
                if answer.decision == "identified":
                    answer.user = candidates[0].name
                searched.append((answer, candidates))
        # A name for one face only: the more similar face keeps it.
        by_name: dict[str, FaceAnswer] = {}
        for answer, _ in sorted(searched, key=lambda pair: -(pair[0].similarity or 0.0)):
            if answer.decision != "identified" or answer.user is None:
                continue
            keeper = by_name.get(answer.user)
            if keeper is None:
                by_name[answer.user] = answer
                continue
            answer.decision = "ambiguous"
            answer.reason = (
                f"{answer.user} at {answer.similarity:.3f}, but face {keeper.face} matches {answer.user} "
                f"better ({keeper.similarity:.3f}): one name per photo"
            )
            answer.user = None
        size = len(index)
        for answer, _ in searched:
            opened.record_identification(
                IdentifyRecord(
                    model,
                    f"{photo.name} face {answer.face} (all faces)",
                    answer.decision,
                    user=answer.user,
                    similarity=answer.similarity,
                    threshold=settings.identify_threshold,
                    margin=answer.margin,
                    candidates=audit_candidates(answer.candidates),
                    gallery_size=size,
                    frames_seen=1,
                    frames_used=1,
                )
            )
    return FacesResult(photo.name, answers, frame.width, frame.height, model, size)
