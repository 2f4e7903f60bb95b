"""Graph structure for the executor: node keys, strongly connected components, topological order.

Tarjan (1972), "Depth-first search and linear graph algorithms", for the components; Kahn (1962)
for the order within one.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Iterable

from torch import nn

_RESERVED = set(dir(nn.ModuleDict()))


def module_key(name: str) -> str:
    """A valid ``nn.ModuleDict`` key for a node name (``.`` and other separators become ``_``)."""
    key = re.sub(r"[^0-9A-Za-z_]", "_", name) or "_"
    return f"_{key}" if key in _RESERVED else key


def strongly_connected(nodes: list[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, in a topological order of the condensation (Kahn,
    stable in the order of ``nodes``); each component keeps the order of ``nodes``."""
    edges = list(edges)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on, stack, comps = set(), [], []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    comps.append(sorted(comp, key=nodes.index))
            elif w not in index:
                index[w] = low[w] = len(index)
                stack.append(w)
                on.add(w)
                work.append((w, iter(succ[w])))
            elif w in on:
                low[v] = min(low[v], index[w])
    # Kahn over the condensation, stable in the order of ``nodes`` (the order a DAG's nodes had before)
    comp_of = {n: i for i, c in enumerate(comps) for n in c}
    cedges = [(comp_of[a], comp_of[b]) for a, b in edges if comp_of[a] != comp_of[b]]
    ranked = sorted(range(len(comps)), key=lambda i: nodes.index(comps[i][0]))
    order = topo_order(ranked, cedges)
    return [comps[i] for i in order]  # type: ignore[union-attr]


def cyclic_edges(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges that lie on a cycle (both ends in one strongly connected component)."""
    nodes, edges = list(nodes), [(str(a), str(b)) for a, b in edges]
    comp = {n: i for i, c in enumerate(strongly_connected(nodes, edges)) for n in c}
    return [(a, b) for a, b in edges if comp[a] == comp[b]]


def topo_order(nodes: list, edges: list[tuple]) -> list | None:
    """Kahn's algorithm, stable in the order of ``nodes``; None if a cycle remains."""
    remaining = {n: 0 for n in nodes}
    for _, b in edges:
        remaining[b] += 1
    ready, order = [n for n in nodes if remaining[n] == 0], []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for a, b in edges:
            if a == n:
                remaining[b] -= 1
                if remaining[b] == 0:
                    ready.append(b)
    return order if len(order) == len(nodes) else None


class NodeDict(nn.ModuleDict):
    """A ``ModuleDict`` addressed by node names (``block1.sn1``) though stored under valid keys
    (``block1_sn1``): ``layers[name]``, ``name in layers``, ``keys()``, ``items()`` and iteration use
    the node names; parameter names (``state_dict``: ``layers.conv1.weight``) use the stored keys."""

    def __init__(self, modules: "OrderedDict[str, nn.Module]", names: dict[str, str]) -> None:
        super().__init__(modules)
        self._key_of = dict(names)  # node name -> stored key
        self._name_of = {k: n for n, k in names.items()}

    def __getitem__(self, name: str) -> nn.Module:  # type: ignore[override]
        return self._modules[self._key_of.get(name, name)]

    def __contains__(self, name: object) -> bool:  # type: ignore[override]
        return name in self._key_of or name in self._modules

    def __iter__(self):
        return iter(self.keys())

    def keys(self):  # type: ignore[override]
        return [self._name_of.get(k, k) for k in self._modules]

    def items(self):  # type: ignore[override]
        return [(self._name_of.get(k, k), m) for k, m in self._modules.items()]

    def values(self):  # type: ignore[override]
        return list(self._modules.values())
