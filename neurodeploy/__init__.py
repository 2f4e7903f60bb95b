"""neurodeploy: how much accuracy, energy and robustness of a spiking network survive deployment.

Train an SNN (surrogate gradients, HIRE-SNN, ANN-to-SNN conversion), export it through NIR, deploy
it to neuromorphic targets (Lava / Loihi 2 in fixed point, SynSense Speck via sinabs), count spikes
and operations, estimate energy, and attack it before and after deployment.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import NeurodeployError  # noqa: E402
from .malloc import keep_freed_memory  # noqa: E402

# freed tensor memory stays in the process for reuse (no page fault per fresh tensor; see
# neurodeploy/malloc.py for the measured gain); NEURODEPLOY_MALLOC=default turns it off
keep_freed_memory()


def load_run(path):  # noqa: ANN001 - re-exported with its docstring below
    from .run import load_run as _load_run

    return _load_run(path)


load_run.__doc__ = """Open a run folder: ``.model`` (the trained SNN, images -> logits), ``.ann``,
``.test_data()`` -> (x, y), ``.recipe``, ``.report()``."""

__all__ = ["NeurodeployError", "__version__", "load_run"]
