"""Errors a user can hit, as one small hierarchy.

Every front end maps these in one place: the CLI to an exit code, the HTTP
service to a status code. The message is one line that says what went wrong
and what to do.
"""

from __future__ import annotations


class FacerError(Exception):
    """Base of every error facer reports to a person rather than as a crash."""

    exit_code = 1
    http_status = 500


class ConfigError(FacerError):
    """A setting has a bad value, or facer.toml cannot be read."""

    exit_code = 2
    http_status = 500


class InputError(FacerError):
    """An input (image, vector, folder) cannot be used."""

    exit_code = 4
    http_status = 400


class ImageError(InputError):
    """A file is not a readable image (missing, empty, truncated, not an image)."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than `max_image_pixels` allows."""

    http_status = 413


class VectorError(InputError):
    """A `.npy` template is malformed (shape, dtype, NaN, zero norm, pickles)."""


class NoFaceError(InputError):
    """An image holds no usable face."""


class TooFewFramesError(FacerError):
    """Not enough frames survived the filters to build a template."""

    exit_code = 4
    http_status = 422


class ModelPackError(FacerError):
    """The model pack is missing, incomplete or altered."""

    exit_code = 8
    http_status = 500


class SourceError(InputError):
    """A camera, video file or stream URL cannot be opened or gives no frames."""


class UserNameError(FacerError):
    """A user name is empty, too long or holds control characters."""

    exit_code = 2
    http_status = 400


class UnknownUserError(FacerError):
    """No user of that name is enrolled."""

    exit_code = 5
    http_status = 404


class StoreError(FacerError):
    """The database cannot be opened, read or written (locked, read-only, corrupt)."""

    exit_code = 6
    http_status = 503


class UserExistsError(FacerError):
    """The user is already enrolled and neither --replace nor --add was given."""

    exit_code = 7
    http_status = 409


class ModelMismatchError(FacerError):
    """Templates made by different models cannot be compared."""

    exit_code = 9
    http_status = 409
