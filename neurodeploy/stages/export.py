"""The export stage: the trained source SNN -> ``model.nir`` (NIR + the deployment metadata)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..ir import DeployMeta, fold_batchnorm, to_nir, write_nir
from ..run import Run
from . import resume

log = logging.getLogger(__name__)


def deploy_meta(run: Run) -> DeployMeta:
    """What NIR cannot say about the recipe's network: T, input coding, readout, input shape."""
    r = run.recipe
    return DeployMeta(timesteps=r.timesteps, encoding=r.data.encoding, readout="sum",
                      input_shape=list(run.data.input_shape))


def export_stage(run: Run) -> Path:
    """Write model.nir from the trained SNN; an imported run's model.nir is its source already."""
    if run.imported:
        log.info("export: the source is the imported %s; nothing to export", run.nir_path)
        return run.nir_path
    # BatchNorm (SEW-ResNet's) has no NIR node: folded into the conv before it (inference form, exact)
    fp = resume.export_fp(run)
    write_nir(to_nir(fold_batchnorm(run.model), deploy_meta(run)), run.nir_path)
    resume.record(run, "export", fp, files=["model.nir"])
    log.info("export: wrote %s", run.nir_path)
    return run.nir_path
