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


def read_meta(graph: nir.NIRGraph, source: str = "<graph>") -> DeployMeta | None:
    """The graph's neurodeploy metadata, or None for a graph another tool wrote."""
    raw = (graph.metadata or {}).get(META_KEY)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        data = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as e:
        raise IRError(f"{source}: metadata '{META_KEY}' is not valid JSON ({e})") from None
    names = {f.name for f in dataclasses.fields(DeployMeta)}
    unknown = set(data) - names
    if unknown:
        raise IRError(f"{source}: metadata '{META_KEY}' has unknown field(s) {sorted(unknown)}")
    if data.get("schema", SCHEMA) > SCHEMA:
        raise IRError(f"{source}: metadata schema {data['schema']} is newer than this neurodeploy ({SCHEMA})")
    return DeployMeta(**data)
