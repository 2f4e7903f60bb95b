"""How each producer runs the NIR IF/LIF/CubaLIF nodes it writes: one table row per producer.

NIR's nodes are continuous-time equations; every framework discretises and runs them its own way
(the NIR paper's spread of results for the same file, Pedersen et al., Nat. Commun. 15:8122, 2024,
comes from exactly this). A :class:`Convention` names the five choices that matter:

- ``decay``: ``"euler"`` λ = 1 − dt/τ, input gain r·dt/τ (IF: r·dt) — forward Euler of
  τ·dv/dt = −v + r·I; or ``"exp"`` λ = exp(−dt/τ), gain r (no 1/τ normalisation);
- ``spike``: ``"single"`` (≤ 1 spike per step) or ``"multi"`` (⌊v/v_th⌋ spikes per step);
- ``floor``: ``"-v_th"`` (membrane clipped at −v_th every step) or ``None``;
- ``reset`` (``"zero"`` | ``"subtract"``) and ``reset_at`` (``"next"``: applied with the next
  step's leak, HIRE-SNN eq. 1; ``"now"``: right after the spike, before the next leak);
- ``dt``: the step the producer's importer uses (snnTorch hard-codes 1e-4, Norse defaults to
  1e-3, sinabs counts τ in steps: 1); ``None``: from the file's metadata or the user.

The rows cite the producer's source where it is installed here; Rockpool and Spyx are not
installed and their rows transcribe their documented equations (marked so in ``source``).
:func:`detect` reads the producer from what a file says about itself (node names, node types and
fields, NIR version); it returns ``None`` when the file does not say, and the importer then uses
the user's ``--convention`` (default ``"nir"``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import nir
import numpy as np


@dataclass(frozen=True)
class Convention:
    """One producer's reading of NIR IF/LIF/CubaLIF (see the module docstring)."""

    name: str
    decay: str  # euler | exp
    spike: str  # single | multi
    floor: str | None  # "-v_th" | None (for IF nodes; LIF nodes get no floor in any producer below)
    reset: str | None  # zero | subtract; None: the metadata's / NIR's (zero, v_reset = 0)
    reset_at: str  # next | now
    dt: float | None  # the producer's fixed dt, or None: from the file / the user
    source: str  # where the semantics come from (file:line)

    def describe(self) -> str:
        dt = "from the file or --dt" if self.dt is None else f"{self.dt:g} (the producer's, unless --dt)"
        return (f"convention {self.name}: decay {self.decay}, spike {self.spike}, floor {self.floor}, "
                f"reset {self.reset or 'zero (NIR v_reset)'} {self.reset_at}, dt {dt} [{self.source}]")


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    # NIR's definition: forward Euler of the node's ODE, reset to v_reset = 0; our own neuron's timing
    Convention("nir", "euler", "single", None, None, "next", None,
               "nir/ir/neuron.py docstrings (IF, LIF: τ·dv/dt = (v_leak − v) + R·I, reset to v_reset)"),
    # sinabs.from_nir: IAFSqueeze(min_v_mem=-v_threshold, spike_threshold=v_threshold), default
    # MultiSpike + MembraneSubtract; LIFSqueeze(tau_mem=τ): α = exp(−1/τ), τ in time steps (dt = 1)
    Convention("sinabs", "exp", "multi", "-v_th", "subtract", "now", 1.0,
               "sinabs/nir.py:86-108, sinabs/layers/iaf.py:52-53, sinabs/layers/lif.py:80,121, "
               "sinabs/layers/functional/lif.py:29-44"),
    # snnTorch import_nir: β = 1 − dt/τ with dt = 1e-4 hard-coded, w_scale r·dt/τ folded into the
    # threshold, Leaky(reset_mechanism="zero", reset_delay=False), spike mem − thr > 0
    Convention("snntorch", "euler", "single", None, "zero", "now", 1e-4,
               "snntorch/import_nir.py:242-313, snntorch/export_nir.py:68-74"),
    # Norse import_nir: LIFBoxCell / CubaLIF with dt = 1e-3 default, v += dt/τ·((v_leak − v) + i),
    # z = H(v − v_th), v ← (1 − z)·v + z·v_reset in the same step
    Convention("norse", "euler", "single", None, "zero", "now", 1e-3,
               "norse/torch/utils/import_nir.py:61,93-130, norse/torch/functional/lif.py:411-429"),
    # Rockpool LIFTorch (not installed here; its documented equations): α = exp(−dt/τ), several
    # spikes per step (max_spikes_per_dt), reset by subtraction, dt a module parameter
    Convention("rockpool", "exp", "multi", None, "subtract", "now", None,
               "documented equations of rockpool.nn.modules.LIFTorch (not installed here)"),
    # Spyx (JAX, not installed here; its documented equations): β = 1 − dt/τ, Heaviside spike,
    # reset by subtraction of the threshold in the update of the next step
    Convention("spyx", "euler", "single", None, "subtract", "next", None,
               "documented equations of spyx.nn.LIF / spyx.nir (not installed here)"),
)}

_ROCKPOOL_NAME = re.compile(r"^\d+_\w+Torch$")  # rockpool's to_nir names nodes "<index>_<ModuleClass>"


def _all_ones(a) -> bool:
    a = np.asarray(a, dtype=np.float64)
    return a.size > 0 and bool(np.all(a == 1.0))


def detect(graph: nir.NIRGraph, version: str | None = None) -> tuple[str, str] | None:
    """(convention, why) when the file says who wrote it, else None.

    Hints, each a fact of the producer's writer: Rockpool names nodes ``<i>_<Module>Torch``;
    ``sinabs.nir.to_nir`` (through ``nirtorch.extract_nir_graph``) names nodes by their index and
    writes every IF with ``r = ones(layer shape)`` (sinabs/nir.py:157-162) and no LIF with r ≠ 1;
    Norse's exporter of NIR 0.1.x (``version`` "0.1.1") names nodes by index and writes LIF
    with ``r = 1``. Nothing else is guessed.
    """
    nodes = {n: v for n, v in graph.nodes.items() if not isinstance(v, (nir.Input, nir.Output))}
    if nodes and all(_ROCKPOOL_NAME.match(n) for n in nodes):
        return "rockpool", "node names '<index>_<Module>Torch' (rockpool's NIR writer)"
    numeric = bool(nodes) and all(n.isdigit() for n in nodes)
    ifs = [v for v in nodes.values() if isinstance(v, nir.IF)]
    lifs = [v for v in nodes.values() if isinstance(v, (nir.LIF, nir.CubaLIF))]
    if numeric and ifs and not lifs and all(_all_ones(v.r) and np.asarray(v.r).ndim >= 1 for v in ifs):
        return "sinabs", ("index node names and IF nodes with r = 1 per neuron, as sinabs.nir.to_nir writes "
                          "them (sinabs/nir.py:157-162)")
    if numeric and lifs and not ifs and version is not None and version.startswith("0.1.") and all(
            isinstance(v, nir.LIF) and _all_ones(v.r) for v in lifs):
        return "norse", f"NIR version {version} with index node names and LIF r = 1 (Norse's NIR 0.1 writer)"
    return None


def nir_version(path) -> str | None:
    """The ``version`` NIR wrote into the file (e.g. "0.1.1", "0.2.0"), or None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            v = f["version"][()] if "version" in f else f.attrs.get("version")
    except (OSError, KeyError):
        return None
    if isinstance(v, bytes):
        v = v.decode()
    return None if v is None else str(v)


def resolve(graph: nir.NIRGraph, requested: str | None, version: str | None, source: str) -> tuple[str, str]:
    """(convention, why) for a foreign file: the user's ``requested`` one, else the detected one,
    else ``"nir"``. A request that contradicts what the file says is a logged warning (the user's
    choice is used: they may know better, e.g. a sinabs net trained with SingleSpike)."""
    import logging

    log = logging.getLogger(__name__)
    if requested is not None and requested not in CONVENTIONS:
        from ..errors import IRError

        raise IRError(f"{source}: unknown convention {requested!r}; choose one of {', '.join(CONVENTIONS)}")
    found = detect(graph, version)
    if requested is None:
        if found is None:
            return "nir", "default: the file does not say who wrote it (NIR's own definition)"
        return found[0], f"detected: {found[1]}"
    if found is not None and found[0] != requested:
        why = (f"given by the user, but the file looks written by {found[0]} ({found[1]}): "
               f"read as {requested}, not as {found[0]} runs it")
        log.warning("%s: convention %s %s", source, requested, why[len("given by the user, "):])
        return requested, "WARNING " + why
    return requested, "given by the user" + (" (agrees with the file)" if found else "")
