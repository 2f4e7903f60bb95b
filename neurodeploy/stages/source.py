"""The source stage: the source SNN (and its ANN twin) on the test set — accuracy, activity,
operations, energy (eq. 7/8).

Inputs: the source SNN, the test set. Outputs: ``outputs/source.npz`` (per-sample spikes and exact
ops, read by the energy stage) and ``report.json``: ``dataset``, ``source``, ``energy``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..report.schema import SCHEMA_VERSION
from ..run import SOURCE_OUTPUTS, Run
from ..targets import Outputs
from ..train.common import accuracy
from ..util import seed_everything
from . import resume


def source_predictions(run: Run, x: torch.Tensor) -> np.ndarray:
    """The source SNN's class per sample (batches of 256)."""
    with torch.no_grad():
        return torch.cat([run.model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()


def source_counts(run: Run, x: torch.Tensor, preds: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The source SNN's spikes per layer and exact ops per row, per test sample, streamed over the
    test set once and kept in ``outputs/source.npz`` for the energy stage."""
    from ..measure.stage import source_exact_counts

    counts, exact = source_exact_counts(run.model, x)
    run.save_outputs(SOURCE_OUTPUTS, Outputs(preds, None, counts, exact))
    return counts, exact


def source_done(run: Run) -> bool:
    """Whether the source stage's results are in the run folder (report section and counts)."""
    return "source" in run.report() and run.outputs_path(SOURCE_OUTPUTS).is_file()


def source_stage(run: Run) -> dict[str, Any]:
    """Evaluate the source SNN and its ANN twin on the test set; activity, operations, energy."""
    from ..measure.stage import measure_report

    r = run.recipe
    fp = resume.source_fp(run)
    x, y = run.test_data()
    seed_everything(r.seed)
    preds = source_predictions(run, x)
    counts, exact = source_counts(run, x, preds)
    section = measure_report(run.model, counts, exact=exact)
    source = {
        "clean_accuracy": float((preds == y.numpy()).mean()),
        "ann_clean_accuracy": accuracy(run.ann, x, y) if run.has_ann else None,
        "layers": section["layers"],
        "energy": section["by_profile"],
    }

    def change(report: dict[str, Any]) -> None:
        report.update({
            "schema_version": SCHEMA_VERSION,
            "recipe": r.name,
            "seed": r.seed,
            "timesteps": r.timesteps,
            "encoding": r.data.encoding,
            "dataset": {"name": run.data.name, "n_train": len(run.data.x_train), "n_test": len(x)},
        })
        report["source"] = source
        report["energy"] = section

    with run.locked():
        report = run.update_report(change)
        resume.record(run, "source", fp, files=[f"outputs/{SOURCE_OUTPUTS}.npz"], sections=[["source"]])
    return report
