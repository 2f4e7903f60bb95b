"""The simulate stage: ``model.nir`` deployed to each target and simulated on the test set.

Inputs: ``model.nir``, the source SNN (for the agreement), the recipe's options. Outputs:
``outputs/<target>.npz`` and ``report.json``: ``targets{name: accuracy, agreement, lowering, ...}``.
Energy is the energy stage's job (run it after this one).
"""
from __future__ import annotations

import logging
from typing import Any

from ..errors import NeurodeployError
from ..ir import read_nir
from ..measure.summary import layer_table
from ..run import Run
from ..targets import get_target
from ..util import jsonable
from . import resume
from .deploy import EvalSet, deploy_and_score

log = logging.getLogger(__name__)


def simulate_stage(run: Run, targets: list[str], progress: bool = True) -> dict[str, Any]:
    """Deploy model.nir to each target, simulate, compare with the source; returns the report."""
    resolved = {name: get_target(name) for name in targets}  # unknown names fail before any work
    if not run.nir_path.is_file():
        raise NeurodeployError(f"{run.nir_path}: not found; run `neurodeploy export {run.dir}` first")
    graph, meta = read_nir(run.nir_path)
    if meta is None:
        raise NeurodeployError(f"{run.nir_path}: has no neurodeploy metadata; re-export it with `neurodeploy export`")
    data = EvalSet.of(run)
    for name, target in resolved.items():
        fp = resume.simulate_fp(run, name)
        s = deploy_and_score(run, target, graph, meta, data, progress)
        dep, out = s.deployment, s.outputs
        entry = {
            "accuracy": s.accuracy,
            "agreement_with_source": s.agreement_with_source,
            "n_samples": len(data.x),
            "seconds": s.seconds,
            "profile": dep.profile.name if dep.profile is not None else None,
            "lowering": list(dep.lowering),
            "layers": layer_table(run.model, out.layer_spikes, out.synops or None),
            "info": jsonable({**dep.info, **out.info}, finite=False),
        }
        log.info("target %s: accuracy %.4f, agreement %.4f (%.1f s)", name, s.accuracy, s.agreement_with_source,
                 s.seconds)
        with run.locked():  # outputs, report entry and ledger entry land together
            run.save_outputs(name, out)
            run.update_report(lambda report, name=name, entry=entry: report.setdefault("targets", {}).update(
                {name: entry}))
            resume.record(run, f"simulate:{name}", fp, files=[f"outputs/{name}.npz"], sections=[["targets", name]])
    return run.report()
