"""Import Rockpool's Xylo™Audio 3 support and the ``xylosim`` simulator without SynSense's samna.

Rockpool 3.1.0 imports samna at module level in two places the Xylo simulation path passes through
(both unguarded, unlike rockpool's other samna imports, which sit in ``try/except``):

- ``rockpool/devices/xylo/__init__.py`` imports ``syns65302``, whose ``__init__`` imports
  ``afe_samna_pdm`` (``import samna``; ``from samna.xyloAudio3.configuration import ...``), and
- ``syns65302/__init__`` imports ``..syns63300.power_cycles_model`` (``import samna``; module-level
  ``samna.xyloImu.configuration.XyloConfiguration``).

``rockpool/utilities/backend_management.py`` also runs ``import samna`` when it is imported (its
``check_samna_available``). The samna on PyPI is a stub that runs ``pip install`` when imported,
so samna is never imported here: unless the real samna is installed
(:func:`~neurodeploy.targets._samna_shim.real_samna_available`, decided without importing it),
the same placeholder modules that let sinabs import (:mod:`.._samna_shim`) stand in for ``samna``
and the two submodules above. Rockpool's own ``backend_available("samna")`` then reports samna as
missing (a placeholder has no ``__version__``) and its samna-only parts become its own shims.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import sys
import types

from .._samna_shim import PLACEHOLDER_MODULES, install_placeholders, real_samna_available

log = logging.getLogger(__name__)

ROCKPOOL_VERSION, XYLOSIM_VERSION = "3.1.0", "0.1.3"  # the tested pair (requirements/lock.txt)
#: samna modules rockpool 3.1.0 imports at module level on the XyloSim path (see the module docstring).
ROCKPOOL_SAMNA_MODULES = ("samna", "samna.xyloAudio3", "samna.xyloAudio3.configuration")


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def _import() -> tuple[types.ModuleType | None, str]:
    if not _find("rockpool"):
        return None, f"rockpool is not installed (pip install --no-deps rockpool=={ROCKPOOL_VERSION})"
    if not _find("xylosim"):
        return None, (f"xylosim is not installed (pip install --no-deps xylosim=={XYLOSIM_VERSION}; SynSense "
                      f"publishes prebuilt wheels, this one for CPython {sys.version_info[0]}.{sys.version_info[1]} "
                      "may be missing)")
    real, why = real_samna_available()
    if not real:
        install_placeholders(tuple(dict.fromkeys(PLACEHOLDER_MODULES + ROCKPOOL_SAMNA_MODULES)))
        log.debug("samna placeholders for rockpool: %s", why)
    try:
        import xylosim.v2  # noqa: F401  (the compiled simulator: fails here, not mid-run, on a bad wheel)
        from rockpool.devices.xylo import syns65302
    except Exception as e:  # noqa: BLE001 - any import failure makes the target unavailable, with its reason
        return None, f"rockpool's Xylo simulator does not import here ({type(e).__name__}: {e})"
    return syns65302, ""


def xylo_status() -> tuple[bool, str]:
    """Whether rockpool + xylosim import here (with the samna placeholders), and why not."""
    mod, why = _import()
    return mod is not None, why


def xylo_audio3() -> types.ModuleType:
    """``rockpool.devices.xylo.syns65302`` (mapper, XyloSim = the xylosim.v2 simulator)."""
    mod, why = _import()
    if mod is None:
        from ...errors import TargetError

        raise TargetError(f"xylo: {why}")
    return mod


__all__ = ["ROCKPOOL_SAMNA_MODULES", "xylo_audio3", "xylo_status"]
