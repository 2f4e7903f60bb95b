"""Max pooling of spikes on Loihi: the OR layer (NIR ``SumPool2d`` → ``Threshold`` from ``ir.to_nir``).

For binary spikes s ∈ {0, 1}, max over a pooling window = OR = [Σ window ≥ 1]. Loihi has no max
pooling and netx no pooling at all, and an OR is not linear, so it cannot be folded into the next
synapse like average pooling is: it becomes one layer of memoryless CUBA neurons (iDecay = vDecay =
4096, Lava ``PyLifModelBitAcc``: u = a << 6, v = u) behind the sum pool's synapses, firing when at
least one input spike arrives. Each Loihi layer adds one step of pipeline delay on Lava (netx's
staggered reset and the runner's sample windows [k·T + 2 + i, (k+1)·T + 2 + i) count it, since they
are per layer); the emulator runs every layer in its own local time, so it needs no change.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedLayerError
from ...ir.from_nir import SumPool2d
from ...ir.modules import Heaviside
from .lowering import DECAY_UNITY, LoihiLayer, _input_fanout, _pair


def or_layer(name: str, m: Heaviside, group: list[tuple[str, nn.Module]], in_shape: tuple[int, ...],
             prev_neuron: str | None, log_line: Callable[[str], None]) -> LoihiLayer:
    """A max pool of binary spikes (NIR ``SumPool2d`` → ``Threshold``, see ``ir.to_nir._maxpool``) as
    its own layer of memoryless Loihi neurons that fire when at least one input spike arrives.

    Synapse: the sum pool as a conv with weight 2 on the channel diagonal (even 8-bit grid, σ = 2);
    neurons: iDecay = vDecay = 4096, so u = a << 6 and v = u (no memory of earlier steps), and
    vThMant = 1: v > 1 << 6 ⇔ 2·n > 1 ⇔ n ≥ 1 ⇔ n > θ for the n spikes in the window and any
    threshold θ in [0, 1) (0.5 as exported). Exact when the input spikes are in {0, 1} (a neuron layer's output); it cannot be folded
    into the next synapse (OR is not linear), so it costs one Loihi layer and one step of latency.
    """
    pools = [(n, p) for n, p in group if isinstance(p, SumPool2d)]
    if len(group) != 1 or not pools or prev_neuron is None:
        raise UnsupportedLayerError(
            f"node {name!r} (Threshold): a stateless threshold is lowered to Loihi only as the OR of a max pool, "
            f"a SumPool2d of a neuron layer's spikes right before it; here it follows {[n for n, _ in group]} "
            f"({'the network input' if prev_neuron is None else prev_neuron})")
    pname, pool = pools[0]
    th = m.threshold.detach().double().reshape(-1)
    if (th.numel() > 1 and not bool(torch.all(th == th[0]))) or not 0.0 <= float(th[0]) < 1.0:
        raise UnsupportedLayerError(f"node {name!r} (Threshold): the OR of a max pool needs one threshold θ in "
                                    f"[0, 1) (n > θ ⇔ n ≥ 1 for integer spike counts n); got {th.unique()[:4].tolist()}")
    theta, sigma = float(th[0]), 2.0
    k, s, pad = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
    c = int(in_shape[0])
    w = np.zeros((c, c, k[0], k[1]), np.int64)
    w[np.arange(c), np.arange(c)] = int(sigma)
    with torch.no_grad():
        out_shape = tuple(pool(torch.zeros(1, *in_shape)).shape[1:])
    vth = 1  # for every θ in [0, 1): n > θ ⇔ n ≥ 1 ⇔ 2·n > 1 (round(θ·σ) would give 2, n ≥ 2, for θ ≥ 0.75)
    layer = LoihiLayer(name=name, synapse=pname, folded=[], kind="conv", weight=w, in_shape=tuple(in_shape),
                       out_shape=out_shape, stride=s, padding=pad, scale=sigma, vth=vth, i_decay=DECAY_UNITY,
                       v_decay=DECAY_UNITY, input_neuron=prev_neuron, fanout=_input_fanout(group, in_shape))
    log_line(f"max pooling: {pname}+{name} (max pool {k[0]}x{k[1]}, stride {s[0]}, padding {pad[0]} of {prev_neuron}'s "
             f"spikes, exported as SumPool2d + Threshold {theta:g}) -> an OR layer of {layer.n_out} memoryless Loihi "
             f"neurons: synapse = the sum pool as a {k[0]}x{k[1]} conv with weight {int(sigma)} on the channel "
             f"diagonal, iDecay=4096, vDecay=4096 (no state kept between steps), vThMant={vth} (fires when at least "
             f"one input spike arrives: {int(sigma)}·n > {vth} ⇔ n ≥ 1); exact for binary spikes (0/1 from "
             f"{prev_neuron}); OR is not linear, so it cannot fold into the next synapse: one extra layer, one extra "
             f"step of latency on Lava")
    return layer
