"""The ``lava`` target (Intel Lava / Loihi 2 fixed-point simulation via lava-dl netx).

Lava itself is imported only inside the child process (:mod:`.runner`); the processes it needs
live in :mod:`.procs`, a folder of their own (Lava executes every file next to a custom Process).
"""
from .target import LavaTarget

__all__ = ["LavaTarget"]
