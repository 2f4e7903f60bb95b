"""What NIR cannot say, written and read in one place.

NIR holds the layers and the neurons' continuous-time parameters. The time steps, the input
coding, the readout, the reset mode (NIR's IF/LIF reset to ``v_reset``; HIRE-SNN subtracts the
threshold), the time step dt used to discretise, and the input shape travel as one JSON string in
the graph's ``metadata["neurodeploy"]``. Graphs written by other tools have no such entry; they
get the defaults below, which the importer can override. ``convention`` says how continuous-time
parameters are read (``nir``: forward Euler; ``sinabs``: sinabs' exp decay, reset by subtraction),
``mapping`` records, per node, how an imported graph's parameters were mapped to our neurons, and
``source`` the file it was imported from. ``neurons`` holds, per neuron node, the strategies NIR's
IF/LIF cannot say when they differ from the default (``spike``: single | multi, ``min_v``: the
membrane floor or None, ``reset_at``: next | now; see :mod:`neurodeploy.snn.neuron`);
``read_as`` says which producer convention an imported file was read with and why (detected from
the file or given by the user), ``dt_source`` where dt came from (user | file | convention | default).
``source`` the file it was imported from. ``max_pools`` marks, per max-pool layer of the source
network, the NIR ``SumPool2d`` + ``Threshold`` pair it was exported as (an OR of binary spikes, equal
to max pooling only for spikes in {0, 1}; see :func:`neurodeploy.ir.to_nir.maxpool_subgraph`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import nir

from ..errors import IRError

META_KEY = "neurodeploy"
SCHEMA = 2  # 2: neurons, read_as, dt_source


@dataclass
class DeployMeta:
    timesteps: int = 8
    encoding: str = "direct"  # direct | rate | events
    readout: str = "sum"  # sum: last layer's output summed over T | count: output spike count
    reset: dict[str, str] = field(default_factory=dict)  # neuron node -> subtract | zero
    input_shape: list[int] = field(default_factory=list)
    num_classes: int = 0
    dt: float = 1.0
    producer: str = "neurodeploy"
    quantization: dict[str, Any] = field(default_factory=dict)
    # how the continuous-time NIR parameters were read: "nir" (forward Euler, as snnTorch/Norse write
    # them) | "sinabs" (exact decay exp(-dt/tau), unnormalised input, IF/LIF reset by subtraction)
    convention: str = "nir"
    mapping: dict[str, str] = field(default_factory=dict)  # node -> how its parameters were mapped
    source: str = ""  # the file a graph was imported from
    neurons: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> {spike, min_v, reset_at}
    read_as: str = ""  # "<convention>: <why>" for an imported file
    dt_source: str = "default"  # user | file | convention <name> | default
    # max-pool layer -> {"sum_pool": node, "threshold": node, "input": neuron node, kernel/stride/padding}
    max_pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: int = SCHEMA

    def reset_of(self, node: str) -> str:
        return self.reset.get(node, "zero" if self.producer != "neurodeploy" else "subtract")


def write_meta(graph: nir.NIRGraph, meta: DeployMeta) -> None:
    """Attach ``meta`` to ``graph`` (in place)."""
    graph.metadata = dict(graph.metadata or {})
    graph.metadata[META_KEY] = json.dumps(dataclasses.asdict(meta), sort_keys=True)


#: caps that keep a crafted file from exhausting memory before any work (T x input elements per sample)
MAX_TIMESTEPS = 100_000
MAX_INPUT_ELEMENTS = 50_000_000
READOUTS = ("sum", "count")
RESETS = ("subtract", "zero")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_map(v: Any, values: tuple[str, ...] | None = None) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) and (values is None or x in values)
                                       for k, x in v.items())


def _shape_ok(v: Any) -> bool:
    if not isinstance(v, list) or not all(_is_int(s) and s >= 1 for s in v):
        return False
    n = 1
    for s in v:
        n *= s
    return n <= MAX_INPUT_ELEMENTS


def _schema() -> dict[str, tuple[Any, str]]:
    """field -> (check(value) -> bool, what is allowed): the versioned schema of :class:`DeployMeta`."""
    from ..data.encoding import ENCODINGS
    from .conventions import CONVENTIONS

    encodings = tuple(ENCODINGS.names())
    return {
        "schema": (lambda v: _is_int(v) and 1 <= v <= SCHEMA, f"an integer in [1, {SCHEMA}]"),
        "timesteps": (lambda v: _is_int(v) and 1 <= v <= MAX_TIMESTEPS, f"an integer in [1, {MAX_TIMESTEPS}]"),
        "encoding": (lambda v: v in encodings, "one of " + ", ".join(encodings)),
        "readout": (lambda v: v in READOUTS, "one of " + ", ".join(READOUTS)),
        "reset": (lambda v: _str_map(v, RESETS), "a table node -> " + " | ".join(RESETS)),
        "input_shape": (_shape_ok, f"a list of positive integers, at most {MAX_INPUT_ELEMENTS:,} elements in all"),
        "num_classes": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        "dt": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
               "a finite number > 0"),
        "producer": (lambda v: isinstance(v, str), "a string"),
        "quantization": (lambda v: isinstance(v, dict), "a table"),
        "convention": (lambda v: v in CONVENTIONS, "one of " + ", ".join(CONVENTIONS)),
        "mapping": (_str_map, "a table node -> text"),
        "source": (lambda v: isinstance(v, str), "a string"),
        "neurons": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, dict)
                                                          for k, x in v.items()), "a table node -> table"),
        "read_as": (lambda v: isinstance(v, str), "a string"),
        "dt_source": (lambda v: isinstance(v, str), "a string"),
        "max_pools": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                      "a table layer -> table"),
    }


def input_node_shape(graph: nir.NIRGraph) -> list[int] | None:
    """The shape the graph's (single) Input node declares, or None (no Input node, or no shape)."""
    import numpy as np

    ins = [v for v in graph.nodes.values() if isinstance(v, nir.Input)]
    if len(ins) != 1:
        return None
    shape = np.asarray(ins[0].input_type.get("input", [])).reshape(-1)
    return [int(s) for s in shape] if shape.size else None


def read_meta(graph: nir.NIRGraph, source: str = "<graph>") -> DeployMeta | None:
    """The graph's neurodeploy metadata, or None for a graph another tool wrote.

    Every field is checked against the schema (:func:`_schema`: type and range), and the input
    shape against the graph's Input node; IRError naming ``source`` and the field otherwise."""
    raw = (graph.metadata or {}).get(META_KEY)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    where = f"{source}: metadata '{META_KEY}'"
    if not isinstance(raw, str):
        raise IRError(f"{where} must be a JSON string, got {type(raw).__name__}")
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as e:
        raise IRError(f"{where} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise IRError(f"{where} must be a table (a JSON object), got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(DeployMeta)}
    unknown = set(data) - names
    if unknown:
        raise IRError(f"{where} has unknown field(s) {sorted(unknown)}")
    if _is_int(data.get("schema")) and data["schema"] > SCHEMA:
        raise IRError(f"{where}: schema {data['schema']} is newer than this neurodeploy ({SCHEMA})")
    for key, (check, allowed) in _schema().items():
        if key in data and not check(data[key]):
            raise IRError(f"{where}: {key} = {_short(data[key])}; must be {allowed}")
    meta = DeployMeta(**data)
    check_input_shape(graph, meta.input_shape, source)
    return meta


def check_input_shape(graph: nir.NIRGraph, shape: list[int], source: str, what: str = "metadata input_shape") -> None:
    """Refuse an input shape whose element count differs from the graph's Input node (a reshape of
    the same elements is allowed: some producers write a flat Input)."""
    declared = input_node_shape(graph)
    if not shape or declared is None:
        return
    if math.prod(shape) != math.prod(declared):
        raise IRError(f"{source}: {what} {list(shape)} does not match the graph's Input node shape {declared} "
                      f"({math.prod(shape)} vs {math.prod(declared)} elements)")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
