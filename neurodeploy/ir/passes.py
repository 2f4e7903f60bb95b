"""Graph passes: on torch modules before export and on NIR graphs after import.

- :func:`fold_batchnorm` — BatchNorm folded into the preceding conv/linear (inference form):
  with s = γ / sqrt(σ² + ε), W' = W·s (per output channel) and b' = (b − μ)·s + β.
- :func:`inline_subgraphs` — nested NIR graphs (``NIRGraph`` nodes) flattened into one graph
  with ``outer.inner`` names.
- :func:`remove_passthrough` — ``Identity`` and unit ``Scale`` nodes removed; because NIR sums
  every edge into a node, the edges are rewired around them without changing the function.
- :func:`rename_nodes` — node names made valid module names, for tools that need that.
"""
from __future__ import annotations

import copy
import logging
from collections import OrderedDict

import nir
import numpy as np
import torch
from torch import nn

from ..errors import IRError

log = logging.getLogger(__name__)

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def fold_bn_into(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A new conv/linear equal to ``bn(layer(x))`` at inference (BatchNorm's running statistics)."""
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"can fold BatchNorm only into Conv2d or Linear, not {type(layer).__name__}")
    out = copy.deepcopy(layer)
    n_out = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
    if out.bias is None:
        out.bias = nn.Parameter(torch.zeros(n_out, dtype=layer.weight.dtype))
    with torch.no_grad():
        var = bn.running_var if bn.running_var is not None else torch.ones(n_out)
        mean = bn.running_mean if bn.running_mean is not None else torch.zeros(n_out)
        gamma = bn.weight if bn.weight is not None else torch.ones(n_out)
        beta = bn.bias if bn.bias is not None else torch.zeros(n_out)
        s = gamma / torch.sqrt(var + bn.eps)
        out.weight.mul_(s.reshape(-1, *([1] * (out.weight.dim() - 1))))
        out.bias.copy_((out.bias - mean) * s + beta)
    return out


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in which every BatchNorm that directly follows a Conv2d/Linear in a
    sequential container (``nn.Sequential``, ``SpikingNetwork.layers`` or any ``ModuleDict``) is
    folded into it and replaced by ``nn.Identity`` (so layer names stay). Works recursively.

    A BatchNorm that follows anything else is left as it is (and logged): it has no NIR node.
    """
    module = copy.deepcopy(module)
    _fold_in_place(module)
    return module


def _fold_in_place(module: nn.Module) -> None:
    if isinstance(module, (nn.Sequential, nn.ModuleDict)):
        items = list(module.named_children())
        for (pname, prev), (name, m) in zip(items, items[1:]):
            if isinstance(m, _BN) and isinstance(prev, (nn.Conv2d, nn.Linear)):
                module._modules[pname] = fold_bn_into(prev, m)
                module._modules[name] = nn.Identity()
                log.info("folded BatchNorm %s into %s", name, pname)
            elif isinstance(m, _BN):
                log.warning("BatchNorm %s follows %s, not a conv/linear layer: not folded", name, type(prev).__name__)
    for child in module.children():
        _fold_in_place(child)


def inline_subgraphs(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Flatten nested ``NIRGraph`` nodes (one Input, one Output each) into ``outer.inner`` nodes.

    An edge into a subgraph goes to its Input's successors, an edge out of it leaves from its
    Output's predecessors. Graphs without subgraphs are returned unchanged.
    """
    if not any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return graph
    nodes: dict[str, nir.NIRNode] = {}
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    inner_edges: list[tuple[str, str]] = []
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        sub = inline_subgraphs(node)
        ins = [n for n, v in sub.nodes.items() if isinstance(v, nir.Input)]
        outs = [n for n, v in sub.nodes.items() if isinstance(v, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise IRError(f"subgraph {name!r} needs one Input and one Output node, has {len(ins)} and {len(outs)}")
        for n, v in sub.nodes.items():
            if n not in (ins[0], outs[0]):
                nodes[f"{name}.{n}"] = v
        entries[name] = [f"{name}.{b}" for a, b in sub.edges if a == ins[0]]
        exits[name] = [f"{name}.{a}" for a, b in sub.edges if b == outs[0]]
        inner_edges += [(f"{name}.{a}", f"{name}.{b}") for a, b in sub.edges
                        if a != ins[0] and b != outs[0]]
    edges: list[tuple[str, str]] = list(inner_edges)
    for a, b in graph.edges:
        a_base, b_base = a.split(".")[0], b.split(".")[0]
        srcs = exits.get(a_base, [a]) if a_base in exits else [a]
        dsts = entries.get(b_base, [b]) if b_base in entries else [b]
        edges += [(s, d) for s in srcs for d in dsts]
    log.info("inlined %d NIR subgraph(s)", len(entries))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)


def _is_passthrough(node: nir.NIRNode) -> bool:
    if type(node).__name__ == "Identity":
        return True
    return isinstance(node, nir.Scale) and bool(np.all(np.asarray(node.scale) == 1))


def remove_passthrough(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[str]]:
    """Remove Identity and unit-Scale nodes; returns the new graph and the removed names.

    Every edge into a removed node is joined to every edge out of it (NIR sums edges, so
    ``a -> id, b -> id, id -> c`` becomes ``a -> c, b -> c``). A node then fed twice by the same
    source (``a -> c`` twice) would need a factor 2, which a NIR edge cannot carry: such a
    pass-through is kept.
    """
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    removed: list[str] = []
    for name in list(nodes):
        if not _is_passthrough(nodes[name]):
            continue
        ins = [a for a, b in edges if b == name]
        outs = [b for a, b in edges if a == name]
        new = [(a, b) for a in ins for b in outs]
        rest = [e for e in edges if name not in e]
        if len(set(new)) != len(new) or any(e in rest for e in new):
            continue
        edges = rest + new
        del nodes[name]
        removed.append(name)
    out = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)
    return out, removed


def rename_nodes(graph: nir.NIRGraph, mapping: dict[str, str]) -> nir.NIRGraph:
    """The graph with nodes renamed by ``mapping`` (names not in it are kept)."""
    nodes = OrderedDict((mapping.get(n, n), v) for n, v in graph.nodes.items())
    if len(nodes) != len(graph.nodes):
        raise IRError("rename_nodes: the mapping makes two node names equal")
    edges = [(mapping.get(a, a), mapping.get(b, b)) for a, b in graph.edges]
    return nir.NIRGraph(nodes=dict(nodes), edges=edges, metadata=dict(graph.metadata or {}), type_check=False)
