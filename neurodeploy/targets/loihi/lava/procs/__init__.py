"""Lava processes used by the ``lava`` target: a spike source and per-layer probes.

This folder holds only process definitions: Lava executes every ``.py`` file in the folder of a
module that defines a custom Process when it looks for process models.
"""
