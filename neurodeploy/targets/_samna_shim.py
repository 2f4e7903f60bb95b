"""Let ``sinabs.backend.dynapcnn`` import without SynSense's runtime, samna, and never run the stub.

Why this module exists: ``sinabs.backend.dynapcnn`` does ``import samna`` (and ``samnagui``,
``from samna.speck2f.configuration import SpeckConfiguration``, ...) at module level, although the
parts the Speck target uses — discretisation, the CPU forward pass of ``DynapcnnNetwork``, the
Speck 2f layer-to-core mapping — are pure Python. The samna on PyPI is a stub whose ``import``
runs ``pip install samna`` from another index (unreachable here), so it must never be imported.

What it does: :func:`real_samna_available` decides, *without importing anything*, whether the real
samna is installed (its package folder holds a compiled extension; the stub is pure Python).
:func:`ensure_dynapcnn_importable` then either leaves ``import samna`` alone (real samna) or puts
placeholder modules into ``sys.modules`` first, so the stub is never executed. A placeholder
raises :class:`SamnaUnavailableError` as soon as anything tries to *use* samna (build a chip
configuration, open a device), so nothing silently pretends to be hardware.
"""
from __future__ import annotations

import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import sys
import types
from pathlib import Path

from ..errors import TargetError

log = logging.getLogger(__name__)

#: Module names sinabs imports at module level (sinabs 3.1.3); each gets a placeholder.
PLACEHOLDER_MODULES = (
    "samna", "samna.speck2e", "samna.speck2e.configuration", "samna.speck2f",
    "samna.speck2f.configuration", "samna.specksim", "samna.specksim.nodes", "samnagui",
)
_MARK = "__neurodeploy_samna_placeholder__"


class SamnaUnavailableError(TargetError):
    """Something needed the real samna (chip configuration, device, Speck simulator)."""


class _PlaceholderMeta(type):
    """Classes standing in for samna objects: attribute access works, using them raises."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}")

    def __call__(cls, *args, **kwargs):
        raise SamnaUnavailableError(
            f"{cls.__qualname__} needs SynSense's samna runtime, which is not installed here "
            "(the PyPI 'samna' is a stub that runs pip on import; install the real one from SynSense)")


def _placeholder(qualname: str) -> type:
    return _PlaceholderMeta(qualname.rsplit(".", 1)[-1], (), {"__qualname__": qualname, _MARK: True})


class _PlaceholderModule(types.ModuleType):
    """A module whose every attribute is a placeholder class (see :class:`_PlaceholderMeta`)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"placeholder for {name}: the real samna is not installed")
        setattr(self, _MARK, True)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


def _package_dir(name: str) -> Path | None:
    """Folder of a top-level package, found without executing it (find_spec on a top-level name)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


@functools.lru_cache(maxsize=1)
def real_samna_available() -> tuple[bool, str]:
    """Whether SynSense's real samna is installed, and why (never imports samna).

    The real samna ships a compiled extension module (``*.so`` / ``*.pyd``) inside its package;
    the PyPI stub is pure Python. The installed distribution's file list is checked too.
    """
    mod = sys.modules.get("samna")
    if mod is not None:
        if getattr(mod, _MARK, False):
            return False, "samna is the neurodeploy placeholder (real samna not installed)"
        file = getattr(mod, "__file__", None)
        if not isinstance(file, str):
            return False, f"samna in sys.modules is a stand-in without a file ({type(mod).__name__}), not the real samna"
        folder: Path | None = Path(file).parent
    else:
        try:
            folder = _package_dir("samna")
        except (ImportError, ValueError) as e:
            return False, f"samna not importable ({e})"
    if folder is None:
        return False, "samna is not installed"
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".so", ".pyd")
    binaries = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes)]
    try:
        files = importlib.metadata.files("samna") or []
        binaries += [f for f in files if str(f).endswith(suffixes)]
    except importlib.metadata.PackageNotFoundError:
        pass
    if not binaries:
        return False, f"samna at {folder} has no compiled extension: it is the PyPI stub (never imported)"
    return True, f"real samna at {folder}"


def real_samna() -> types.ModuleType:
    """SynSense's real samna module; SamnaUnavailableError (nothing imported) when only the PyPI stub
    or nothing is installed — the stub runs ``pip install`` when imported, so it never is."""
    real, why = real_samna_available()
    if not real:
        raise SamnaUnavailableError(f"SynSense's samna is needed here: {why}")
    return importlib.import_module("samna")


def install_placeholders(names: tuple[str, ...] = PLACEHOLDER_MODULES) -> None:
    """Put the placeholder modules ``names`` (default: the ones sinabs imports) into ``sys.modules``
    (idempotent; never replaces a real module). A parent must come before its submodules."""
    for name in names:
        if name in sys.modules:
            continue
        mod = _PlaceholderModule(name)
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)


def uses_placeholders() -> bool:
    """True when ``samna`` in ``sys.modules`` is our placeholder."""
    return bool(getattr(sys.modules.get("samna"), _MARK, False))


@functools.lru_cache(maxsize=1)
def ensure_dynapcnn_importable() -> bool:
    """Make ``import sinabs.backend.dynapcnn`` safe; returns True when the real samna is used.

    Call before importing anything from ``sinabs.backend.dynapcnn``.
    """
    real, why = real_samna_available()
    if not real:
        install_placeholders()
        log.debug("samna placeholders installed: %s", why)
    else:
        log.debug("using %s", why)
    return real
