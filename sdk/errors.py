"""Typed errors: every bad input the SDK can meet gets a class and a message naming the problem."""
from __future__ import annotations


class EdgemarkError(Exception):
    """Base class of every error edgemark raises on purpose."""


class InputError(EdgemarkError, ValueError):
    """An image, box or option passed by the caller cannot be used."""


class ModelLoadError(EdgemarkError, ValueError):
    """A model file is missing, truncated, corrupt or of an unknown format."""


class MetadataError(EdgemarkError, ValueError):
    """The model's embedded metadata is missing, malformed or inconsistent."""


class DecoderParamError(EdgemarkError, ValueError):
    """A decoder was asked for by a name it does not have, or given parameters it cannot work with."""
