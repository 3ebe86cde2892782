"""Errors a user can hit, as one small hierarchy.

Messages say what went wrong in neutral words: no command-line flags, no HTTP
parameters. Each front end maps the classes once — the CLI to an exit code and
a hint in its own words (`facer_cli.cli.errors`), the HTTP service to a status
code (`facer_cli.server.errors`).

A message may name a local file (the database, an image on disk). The HTTP
service shows `public_message` instead, which never holds a server path.
"""

from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


def resolve(table: Mapping[type, T], error: type[BaseException] | BaseException) -> T | None:
    """The entry of a front end's table for this error: its class's, else the nearest ancestor's."""
    cls = error if isinstance(error, type) else type(error)
    for ancestor in cls.__mro__:
        if ancestor in table:
            return table[ancestor]
    return None


class FacerError(Exception):
    """Base of every error facer reports to a person rather than as a crash."""

    def __init__(self, message: str, *, public_message: str | None = None):
        super().__init__(message)
        self.message = message
        self._public = public_message

    @property
    def public_message(self) -> str:
        """The message without local file paths, for clients on other machines."""
        return self.message if self._public is None else self._public

    def __str__(self) -> str:
        return self.message


class UsageError(FacerError):
    """Arguments that cannot go together, or a required one missing."""


class ApiKeyError(UsageError):
    """An API key name that cannot be used: not a valid name, reserved, already held by an active
    key (to add), or held by none (to revoke)."""


class ConfigError(FacerError):
    """A setting has a bad value, or facer.toml cannot be read."""


class MissingExtraError(FacerError):
    """An optional extra (server, plot) is not installed."""

    def __init__(self, message: str, *, extra: str):
        super().__init__(message)
        self.extra = extra


class InputError(FacerError):
    """An input (image, vector, folder) cannot be used."""


class ImageError(InputError):
    """A file is not a readable image (missing, empty, truncated, not an image)."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than `max_image_pixels` allows."""


class VectorError(InputError):
    """A `.npy` template is malformed (shape, dtype, NaN, zero norm, pickles)."""


class NoFaceError(InputError):
    """An image holds no usable face."""


class SourceError(InputError):
    """A camera, video file or stream URL cannot be opened or gives no frames."""


class TooFewFramesError(FacerError):
    """Not enough frames survived the filters to build a template. `needed`: how many it takes, when known."""

    def __init__(self, message: str, *, needed: int | None = None):
        super().__init__(message)
        self.needed = needed


class LivenessError(FacerError):
    """The face in front of the camera did not pass the liveness challenge (a print, a screen, a
    wrong or missing move, another face). `result` is the `LivenessResult` with the reasons and cues."""

    def __init__(self, message: str, *, result: object = None, frames: object = None):
        super().__init__(message)
        self.result = result
        self.frames = frames


class UserLockedError(FacerError):
    """Too many liveness failures for this user in a short time: verify is refused until `until`."""

    def __init__(self, message: str, *, until: str, retry_after_s: float):
        super().__init__(message)
        self.until = until
        self.retry_after_s = retry_after_s


class OutputError(FacerError):
    """A file facer was asked to write cannot be written."""


class ModelPackError(FacerError):
    """The model pack is missing, incomplete or altered."""


class UserNameError(FacerError):
    """A user name is empty, too long or holds control characters."""


class UnknownUserError(FacerError):
    """No user of that name is enrolled."""


class UserExistsError(FacerError):
    """The user is already enrolled and the mode asks for a new user."""


class LookalikeError(UserExistsError):
    """The template to enroll matches another enrolled person at or above identify_threshold:
    one person enrolled twice, or a look-alike."""


class DifferentFaceError(UserExistsError):
    """A template to add to an enrolled user (or to replace theirs with) does not match their
    templates of the same model at cosine_threshold_high: someone else's face, unless the person's
    face changed and that is said explicitly. `other`: the enrolled person it matches instead, if any."""

    def __init__(self, message: str, *, other: str | None = None):
        super().__init__(message)
        self.other = other


class LivenessRequiredError(UsageError):
    """The liveness setting is "required", and a decision that can open a door (verify, identify) was
    asked on frames that answered no liveness challenge (images, uploads, a camera run without one)."""


class ModelMismatchError(FacerError):
    """Templates made by different models cannot be compared, or a vector does not fit its model."""


class UnverifiedModelError(UsageError):
    """A model fingerprint facer cannot check (not the current model's) was given without
    saying it should be trusted."""


class StoreError(FacerError):
    """The database cannot be opened, read or written (locked, read-only, corrupt).

    The message is written with `{db}` where the database is named: the local
    message shows its path, the public one says "the database".
    """

    def __init__(self, template: str, path: object = None, *, local_note: str = ""):
        where = "the database" if path is None else f"database {path}"
        # `local_note` (e.g. where the default store is) is said on this machine only.
        super().__init__(template.format(db=where) + local_note, public_message=template.format(db="the database"))


class StoreUnavailableError(StoreError):
    """The database server cannot be reached now (down, restarting, a connection lost, or no
    pooled connection free in time): worth trying again shortly."""


class StoreKeyError(StoreError):
    """The store's encryption key is missing, wrong or refused (a key file others may read), or an
    encrypted value does not decrypt where it is: nothing was read or written."""


class OutputExistsError(OutputError):
    """The file to write exists, and overwriting it was not asked for."""


class CancelledError(FacerError):
    """The person declined at a confirmation prompt."""


class StoreConflictError(UserExistsError):
    """A store copy's destination already holds a user of the same name whose data (templates and
    the frames that built them) differ from the source's."""


class CopyStoreError(StoreError):
    """A store copy could not open, read or write one of its stores, or the copy does not match its
    source: the message names the store (the copy's two stores are given as arguments, not by the
    `db` setting)."""

    def __init__(self, message: str, *, public_message: str | None = None):
        FacerError.__init__(self, message, public_message=public_message)
