"""Compile -> run -> score, written once: every stage that puts a network on a target uses it.

:func:`deploy` compiles a graph for a target with the recipe's options (the shared ``[deploy]``
keys plus the target's own ``[deploy.<target>]`` table); :func:`deploy_and_score` also simulates
the evaluation samples and scores the target against the labels and the source SNN.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from ..errors import NeurodeployError
from ..ir import DeployMeta
from ..run import Run
from ..targets import Deployment, Outputs, Target
from .source import source_predictions


def target_options(run: Run, name: str) -> dict[str, Any]:
    """The options the recipe gives target ``name``: ``input_spikes``, ``timeout_s`` and ``seed``
    (shared by every target), then its ``[deploy.<name>]`` table (validated when the recipe was
    read against the target's ``Options`` dataclass)."""
    d = run.recipe.deploy
    return {"input_spikes": d.input_spikes, "timeout_s": d.timeout_s, "seed": run.recipe.seed,
            **d.target_options.get(name, {})}


def named(e: NeurodeployError, path: Path, target: str) -> NeurodeployError:
    """``e`` with the graph's file named: a target sees only the graph, so its errors say ``<graph>``."""
    msg = str(e)
    if "<graph>" in msg:
        msg = msg.replace("<graph>", str(path))
    elif str(path) not in msg:
        msg = f"{path}: target {target}: {msg}"
    try:
        return type(e)(msg)
    except TypeError:  # an exception type with another constructor
        return NeurodeployError(msg)


def deploy(run: Run, target: Target, graph: nir.NIRGraph, meta: DeployMeta, source: Path | None = None
           ) -> Deployment:
    """Compile ``graph`` (read from ``source``, default ``model.nir``) for ``target`` with the recipe's
    options (the target's default profile); an error names the file."""
    try:
        return target.compile(graph, meta, None, target_options(run, target.name))
    except NeurodeployError as e:
        raise named(e, source or run.nir_path, target.name) from None


@dataclass
class EvalSet:
    """The samples a target is scored on, with the source SNN's predictions for them."""

    x: torch.Tensor
    y: torch.Tensor
    source_pred: np.ndarray

    @classmethod
    def of(cls, run: Run) -> "EvalSet":
        """The recipe's ``deploy.max_samples`` first test samples (all for 0)."""
        x, y = run.samples(run.recipe.deploy.max_samples)
        return cls(x, y, source_predictions(run, x))


@dataclass
class Scored:
    """One target's deployment, its outputs and its scores on an :class:`EvalSet`."""

    deployment: Deployment
    outputs: Outputs
    accuracy: float  # against the labels
    agreement_with_source: float  # fraction of samples where the target predicts what the source SNN does
    seconds: float  # compile + simulate, wall clock


def deploy_and_score(run: Run, target: Target, graph: nir.NIRGraph, meta: DeployMeta, data: EvalSet,
                     progress: bool = True, source: Path | None = None) -> Scored:
    """Compile ``graph`` for ``target``, simulate ``data.x``, score the predictions."""
    t0 = time.time()
    dep = deploy(run, target, graph, meta, source)
    try:
        out = target.run(dep, data.x, progress=progress)
    except NeurodeployError as e:
        raise named(e, source or run.nir_path, target.name) from None
    seconds = time.time() - t0
    return Scored(dep, out, float((out.predictions == data.y.numpy()).mean()),
                  float((out.predictions == data.source_pred).mean()), seconds)
