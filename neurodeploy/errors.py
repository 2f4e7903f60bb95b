"""The package's own exceptions.

Every error caused by bad input (a recipe, a profile, a NIR/HDF5/ONNX file, a checkpoint, a layer a
target cannot run) is one of these. The CLI prints the message on one line and exits non-zero;
library users catch :class:`NeurodeployError`.
"""
from __future__ import annotations


class NeurodeployError(Exception):
    """Base class: a problem the user can fix, with a message saying what and where."""


class RecipeError(NeurodeployError):
    """A recipe (models/*.toml) is missing, malformed, or has unknown/mistyped keys."""


class ProfileError(NeurodeployError):
    """A hardware profile (targets/*.toml) is missing, malformed, or lacks a source."""


class DataError(NeurodeployError):
    """A dataset is absent from its local path, or its files are malformed."""


class CheckpointError(NeurodeployError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


class IRError(NeurodeployError):
    """A NIR/ONNX file is missing, corrupt, or holds a graph we cannot represent."""


class UnsupportedLayerError(IRError):
    """A layer (node) that a converter or target cannot run; the message names the node."""


class TargetError(NeurodeployError):
    """A target is unknown, unavailable, or cannot deploy this network."""


class SimulationError(TargetError):
    """A simulator failed, timed out, or was killed."""


class AttackError(NeurodeployError):
    """An attack was pointed at an estimator that lacks what it needs."""


class RegistryError(NeurodeployError):
    """A name is registered twice, or asked for but not registered (the message lists the names)."""
