"""Reading NIR files as published, quirks included, never silently.

``nir.read`` rebuilds the graph from the HDF5 dictionary (nir/serialization.py ``hdf2dict`` then
``nir.dict2NIRNode``). Real files from the NIR paper's repository deviate from the current schema
in ways nir either rejects or papers over without a word; each is repaired here with a warning
that names the file and the node, and the warnings are returned so the import log lists them:

- a subgraph edge naming a node that does not exist where exactly one node of the subgraph starts
  with that name (``lif`` for ``lif1`` in ``braille_noDelay_bias_zero_subgraph.nir``): renamed;
- an IF/LIF/CubaLIF without ``v_reset`` (older schema): nir fills 0, the value NIR defines;
- a CubaLIF without ``w_in``: nir fills 1 (nir/ir/neuron.py: ``w_in = 1.0``);
- float64 parameters: read in float64, run in float32 (relative rounding 6e-8).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nir
import numpy as np

from ..errors import IRError

log = logging.getLogger(__name__)

_NEURONS = ("IF", "LIF", "CubaLIF")


def _type(d: dict) -> str:
    t = d.get("type", "")
    return t.decode() if isinstance(t, bytes) else str(t)


def _repair_graph(d: dict[str, Any], where: str, quirks: list[str]) -> None:
    """Repair one (sub)graph dictionary in place, recursively; append one line per repair."""
    nodes: dict[str, dict] = d.get("nodes", {})
    for name, node in nodes.items():
        path = f"{where}{name}"
        kind = _type(node)
        if kind == "NIRGraph":
            _repair_graph(node, path + ".", quirks)
            continue
        if kind in _NEURONS and "v_reset" not in node:
            quirks.append(f"node {path!r} ({kind}) has no v_reset (older NIR schema): read as v_reset = 0")
        if kind == "CubaLIF" and "w_in" not in node:
            quirks.append(f"node {path!r} (CubaLIF) has no w_in: read as w_in = 1 (nir's default)")
        wide = sorted(k for k, v in node.items() if isinstance(v, np.ndarray) and v.dtype == np.float64)
        if wide:
            quirks.append(f"node {path!r} ({kind}) has float64 parameters {wide}: run in float32")
    edges = d.get("edges")
    if edges is None:
        return
    fixed = []
    for edge in np.asarray(edges).tolist():
        pair = [e.decode() if isinstance(e, bytes) else str(e) for e in edge]
        for i, end in enumerate(pair):
            base = end.split(".")[0]
            if end in nodes or base in nodes:  # a node, or a node inside a subgraph node
                continue
            cands = [n for n in nodes if n.startswith(base) and _type(nodes[n]) not in ("Input", "Output")]
            if len(cands) != 1:
                raise IRError(f"edge {tuple(pair)} in {where or 'the graph'} names node {end!r}, which does not "
                              f"exist (nodes: {sorted(nodes)})")
            quirks.append(f"edge {tuple(pair)} in subgraph {where.rstrip('.') or '<top>'!r} names {end!r}, which "
                          f"does not exist: read as {cands[0]!r} (the only node starting with that name)")
            pair[i] = cands[0] + end[len(base):]
        fixed.append(pair)
    d["edges"] = fixed


def check_finite(d: dict[str, Any], where: str = "") -> None:
    """Refuse NaN/±inf in any float tensor of a (sub)graph dictionary (weights, biases, thresholds,
    time constants, ...): IRError naming the node and the tensor. A non-finite parameter makes every
    target score a constant class or crash, so it is never run."""
    for name, node in d.get("nodes", {}).items():
        if not isinstance(node, dict):
            continue
        path = f"{where}{name}"
        if _type(node) == "NIRGraph":
            check_finite(node, path + ".")
            continue
        for key, v in node.items():
            if key == "metadata" or not isinstance(v, (np.ndarray, np.floating, float)):
                continue
            v = np.asarray(v)
            if v.dtype.kind not in "fc":
                continue
            bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
            if bad:
                raise IRError(f"node {path!r} ({_type(node)}): tensor {key!r} has {bad} non-finite value(s) "
                              f"(NaN/inf) of {v.size}")


def read_graph(path: str | Path) -> tuple[nir.NIRGraph, list[str]]:
    """Read a NIR file, repairing the published quirks above; returns the graph and one line per
    repair (each also logged as a warning). IRError naming the file for anything unreadable."""
    import h5py
    from nir.serialization import hdf2dict

    path = Path(path)
    if not path.is_file():
        raise IRError(f"{path}: NIR file not found")
    quirks: list[str] = []
    try:
        with h5py.File(str(path), "r") as f:
            data = hdf2dict(f["node"])
    except Exception as e:  # h5py raises OSError, KeyError, ... for files that are not NIR
        raise IRError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    try:
        if _type(data) == "NIRGraph":
            _repair_graph(data, "", quirks)
            check_finite(data)
        else:
            check_finite({"nodes": {"<root>": data}})
        data["type_check"] = True
        graph = nir.dict2NIRNode(data)
    except IRError as e:
        raise IRError(f"{path}: {e}") from None
    except Exception as e:  # nir raises ValueError, KeyError, TypeError for malformed graphs
        raise IRError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    for q in quirks:
        log.warning("%s: %s", path, q)
    return graph, quirks
