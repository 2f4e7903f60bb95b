"""`neurodeploy import model.nir`: a NIR graph from another framework -> a run-folder ``model.nir``.

The graph (sinabs.to_nir, snnTorch's or Norse's export, hand-made) is read, its continuous-time
parameters are mapped to our discrete neurons with the user's ``dt`` (see
:mod:`neurodeploy.ir.from_nir`), the network is built (chain, graph or recurrent graph) and written back as a
*canonical* NIR graph: the same node names and edges, parameters in the form our exporter writes
(IF r = 1/dt; LIF τ = dt/(1 − λ), r = τ/dt; gains folded into thresholds), and our metadata
(time steps, coding, readout, reset per neuron, dt, and the mapping of every node). Every later
stage — targets, energy, attacks — reads that file like one of our own.
"""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import nir
import torch

from ..errors import IRError
from .conventions import CONVENTIONS, nir_version, resolve
from .from_nir import from_nir, read_nir
from .metadata import MAX_INPUT_ELEMENTS, MAX_TIMESTEPS, DeployMeta, check_input_shape, read_meta
from .nir_file import read_graph
from .passes import inline_subgraphs
from .to_nir import to_nir, write_nir

log = logging.getLogger(__name__)

RESETS = ("zero", "subtract")


def import_nir(
    path: str | Path,
    dt: float | None = None,
    timesteps: int | None = None,
    encoding: str | None = None,
    *,
    convention: str | None = None,
    reset: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    out: str | Path | None = None,
) -> tuple[torch.nn.Module, nir.NIRGraph, DeployMeta, list[str]]:
    """Import a NIR file; returns ``(network, canonical graph, meta, mapping log)``.

    ``dt`` (default: the file's metadata, else the producer's fixed step, else 1.0) discretises
    the continuous-time parameters; ``timesteps`` (default 8) and ``encoding`` (``direct`` |
    ``rate`` | ``events``, default ``direct``) are what NIR cannot say. ``convention`` names how
    the producer runs its IF/LIF nodes (a row of :data:`~neurodeploy.ir.conventions.CONVENTIONS`:
    nir, sinabs, snntorch, norse, rockpool, spyx); ``None`` (or "") reads it from the file where
    the file says who wrote it (:func:`~neurodeploy.ir.conventions.detect`), else ``"nir"``. An
    explicit convention that contradicts the detected one is used, with a warning in the log and
    in the mapping. ``reset`` overrides the reset of every spiking node. ``input_shape`` overrides
    the Input node's shape. Published file quirks (see :mod:`neurodeploy.ir.nir_file`) are
    repaired with a warning and listed in the mapping log. With ``out`` (a run folder) the canonical graph is written to
    ``out/model.nir``.

    Raises :class:`~neurodeploy.errors.IRError` (or its subclass UnsupportedLayerError naming the
    node, its type and why) for files or nodes that cannot be run.
    """
    path = Path(path)
    convention = convention or None
    if convention is not None and convention not in CONVENTIONS:
        raise IRError(f"{path}: unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    if reset is not None and reset not in RESETS:
        raise IRError(f"{path}: unknown reset {reset!r}; choose one of {', '.join(RESETS)}")
    if timesteps is not None and not 1 <= timesteps <= MAX_TIMESTEPS:
        raise IRError(f"{path}: timesteps must be in [1, {MAX_TIMESTEPS}], got {timesteps}")
    if input_shape is not None and (not input_shape or not all(int(s) >= 1 for s in input_shape)
                                    or math.prod(input_shape) > MAX_INPUT_ELEMENTS):
        raise IRError(f"{path}: input_shape {list(input_shape)} must be positive integers, at most "
                      f"{MAX_INPUT_ELEMENTS:,} elements in all")
    graph, quirks = read_graph(path)
    if not isinstance(graph, nir.NIRGraph):
        raise IRError(f"{path}: holds a single {type(graph).__name__} node, not a graph")
    own = read_meta(graph, str(path))
    meta = own or DeployMeta(producer="unknown")
    if own is None:
        meta.convention, why = resolve(graph, convention, nir_version(path), str(path))
        meta.read_as = f"{meta.convention}: {why}"
    elif convention not in (None, "nir"):
        log.warning("%s: written by neurodeploy; convention %r ignored (its parameters are canonical)", path, convention)
    fixed = CONVENTIONS[meta.convention].dt if own is None else None
    if dt is not None:
        meta.dt, meta.dt_source = float(dt), "user"
        if fixed is not None and float(dt) != fixed:
            log.warning("%s: dt = %g given, but %s runs its files with dt = %g", path, dt, meta.convention, fixed)
    elif fixed is not None:
        meta.dt, meta.dt_source = fixed, f"convention {meta.convention}"
    elif own is not None:
        meta.dt_source = "file"
    if timesteps is not None:
        meta.timesteps = int(timesteps)
    if encoding is not None:
        meta.encoding = encoding
    if input_shape is not None:
        meta.input_shape = [int(s) for s in input_shape]
        check_input_shape(graph, meta.input_shape, str(path), "input_shape")
    meta.source = str(path)
    meta.mapping = {}
    if reset is not None:
        flat = inline_subgraphs(graph).nodes
        meta.reset = {n: reset for n, v in flat.items() if isinstance(v, (nir.IF, nir.LIF, nir.CubaLIF))}
    net = from_nir(graph, meta, str(path))
    net.eval()
    chosen = meta.convention
    canon_meta = copy.deepcopy(meta)
    canon_meta.producer = "imported" if own is None else meta.producer
    canonical = to_nir(net, canon_meta)
    meta = canon_meta
    lines = [f"file quirk tolerated: {q}" for q in quirks]
    lines += [f"{n}: {t}" for n, t in meta.mapping.items() if n.split(".warning")[0] in graph.nodes]
    lines.append(_self_check(net, canonical, meta, str(path)))
    kind = ("recurrent graph (cycles run step by step: " + ", ".join(f"{a}→{b}" for a, b in net.recurrent_edges)
            + ")") if net.recurrent_edges else "sequential" if net.is_chain else "graph (branches/skips)"
    lines.insert(0, f"{path}: {kind} network, {len(net.neurons())} neuron layer(s), dt = {meta.dt}, "
                    f"T = {meta.timesteps}, encoding {meta.encoding}, readout {meta.readout}, "
                    f"convention {chosen if own is None else 'neurodeploy'}")
    if own is None:
        lines.insert(1, f"read as {meta.read_as}; {CONVENTIONS[chosen].describe()}; "
                        f"dt from {meta.dt_source}")
    for line in lines:
        log.info("import: %s", line)
    if out is not None:
        write_nir(canonical, Path(out) / "model.nir")
        log.info("wrote %s", Path(out) / "model.nir")
    return net, canonical, meta, lines


@torch.no_grad()
def _self_check(net: torch.nn.Module, canonical: nir.NIRGraph, meta: DeployMeta, source: str) -> str:
    """Rebuild from the canonical graph and compare outputs on a few random inputs (must be equal)."""
    again = from_nir(canonical, copy.deepcopy(meta), source + " (canonical)")
    again.eval()
    if meta.encoding == "events":
        x = (torch.rand(4, meta.timesteps, *meta.input_shape, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    else:
        x = torch.rand(4, *meta.input_shape, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    net.generator, again.generator = gen, torch.Generator().manual_seed(1)
    try:
        a = net(x)
        b = again(x)
    finally:
        net.generator = again.generator = None
    diff = float((a - b).abs().max())
    if diff > 1e-4 * max(1.0, float(a.abs().max())):
        raise IRError(f"{source}: the canonical re-export differs from the imported network (max |Δ| = {diff:.3g}); "
                      "please report this graph")
    return f"canonical re-export checked: identical outputs on 4 random inputs (max |Δ| = {diff:.2g})"
