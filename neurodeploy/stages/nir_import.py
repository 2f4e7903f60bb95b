"""The import stage: another framework's NIR file (the recipe's ``model.nir``) -> ``model.nir``.

Inputs: the source file and the recipe's import settings. Outputs: ``model.nir`` (with the
deployment metadata) and ``import.log`` (every interpretation the importer made).
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..run import Run
from ..util import write_text_atomic
from . import resume

log = logging.getLogger(__name__)


def import_stage(run: Run, source: Path) -> Path:
    """Import ``source`` into the run folder as model.nir; returns its path."""
    from ..ir.importer import import_nir

    m, r = run.recipe.model, run.recipe
    fp = resume.import_fp(run, source)
    _, _, _, mapping = import_nir(source, m.nir_dt or None, r.timesteps, r.data.encoding,
                                  convention=m.nir_convention, reset=m.nir_reset or None,
                                  input_shape=tuple(run.data.input_shape), out=run.dir)
    write_text_atomic(run.dir / "import.log", f"imported {source}\n" + "\n".join(mapping) + "\n")
    log.info("import: %s -> %s", source, run.nir_path)
    resume.record(run, "import", fp, files=["model.nir", "import.log"])
    run.invalidate()
    return run.nir_path
