"""Compile -> run -> score, written once: every stage that puts a network on a target uses it.

:func:`deploy` compiles a graph for a target with the recipe's options (the shared ``[deploy]``
keys plus the target's own ``[deploy.<target>]`` table); :func:`deploy_and_score` also simulates
the evaluation samples and scores the target against the labels and the source SNN.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch

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


def deploy(run: Run, target: Target, graph: nir.NIRGraph, meta: DeployMeta) -> Deployment:
    """Compile ``graph`` for ``target`` with the recipe's options (the target's default profile)."""
    return target.compile(graph, meta, None, target_options(run, target.name))


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
                     progress: bool = True) -> Scored:
    """Compile ``graph`` for ``target``, simulate ``data.x``, score the predictions."""
    t0 = time.time()
    dep = deploy(run, target, graph, meta)
    out = target.run(dep, data.x, progress=progress)
    seconds = time.time() - t0
    return Scored(dep, out, float((out.predictions == data.y.numpy()).mean()),
                  float((out.predictions == data.source_pred).mean()), seconds)
