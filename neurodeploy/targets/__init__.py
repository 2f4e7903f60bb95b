"""Deployment targets: the torch reference, Lava (Loihi 2), a Loihi emulator, Speck (sinabs)."""
from .base import (Deployment, Outputs, Target, TargetOptions, get_target, list_targets, register_target,
                   target_class)

__all__ = ["Deployment", "Outputs", "Target", "TargetOptions", "get_target", "list_targets", "register_target",
           "target_class"]
