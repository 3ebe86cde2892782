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
