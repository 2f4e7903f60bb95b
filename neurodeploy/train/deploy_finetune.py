"""Deployment-aware fine-tuning: a few epochs with Loihi's neuron and weight quantisation in the loop.

The forward pass is the deployed network as the Loihi lowering builds it
(:mod:`neurodeploy.targets.loihi.lowering`), in float with straight-through estimators (STE):

- weights fake-quantised to the 8-bit even grid of their lowered (pool-folded) layer:
  ŵ = 2·round(σ·f·w / 2) / (σ·f), clipped to [−256, 254]/(σ·f), with σ the lowering's per-layer scale
  and f the pooling factor folded into the layer (1/k² for average pooling); ∂ŵ/∂w = 1 (STE);
- thresholds fake-quantised to their mantissa, θ̂ = round(θ·σ·Q)/(σ·Q), and leaks to 12 bits,
  λ̂ = (4096 − round(4096·(1 − λ)))/4096, both with STE;
- reset to zero (Loihi) instead of the source's subtraction, the step's input as the current (CUBA
  with iDecay = 4096), spikes through the network's own surrogate gradient;
- the input as the target takes it: Bernoulli spikes per step (rate) or 8-bit graded values.

The scales σ are recomputed from the current weights at the start of every epoch. The returned
network is the fine-tuned float network with ``reset = 'zero'`` in every neuron layer, so its NIR
export says what the chip does; lowering it again applies the same quantisation the loop trained.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.encoding import rate_code
from ..ir.from_nir import SumPool2d
from ..snn.network import SpikingNetwork, TimeDropout
from ..snn.neuron import NeuronState, SpikingNeuron, neuron_step
from ..targets.loihi.lowering import DECAY_UNITY

log = logging.getLogger(__name__)


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward ``q``, backward identity to ``x`` (straight-through estimator)."""
    return x + (q - x).detach()


def fake_quant_weight(w: torch.Tensor, sigma: float) -> torch.Tensor:
    """ŵ = clip(2·round(σ·w/2), −256, 254)/σ with a straight-through gradient."""
    q = torch.clamp(torch.round(w * sigma / 2.0) * 2.0, -256.0, 254.0) / sigma
    return _ste(w, q)


def _layer_scales(net: SpikingNetwork, options: Any) -> dict[str, dict[str, float]]:
    """Per synaptic module: σ·f for its weights, and per neuron module: σ·Q for its threshold."""
    from ..targets.loihi.lowering import lower_network

    program = lower_network(copy.deepcopy(net), net.timesteps, options, lambda s: None, fanouts={})
    names = list(net.layers.keys())
    out: dict[str, dict[str, float]] = {}
    for layer in program.layers:
        q_in = float((1 << program.graded_bits) - 1) if (layer.input_neuron is None
                                                         and program.input_spikes == "graded"
                                                         and not program.events) else 1.0  # events: Q = 1
        sigma = layer.scale / q_in
        f = 1.0
        for n in layer.folded:
            m = net.layers[n]
            if isinstance(m, nn.AvgPool2d):
                k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
                f /= k[0] * k[1]
        out[layer.synapse] = {"w": sigma * f}
        if not layer.readout:
            out[layer.name] = {"th": layer.scale}
    assert all(n in names for n in out)
    return out


def loihi_forward(net: SpikingNetwork, x: torch.Tensor, scales: dict[str, dict[str, float]],
                  input_spikes: str = "rate", graded_bits: int = 8,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Logits ``[B, classes]`` of the deployed network (fake-quantised, reset to zero, Loihi input)."""
    T = net.timesteps
    xf = x.float().clamp(0.0, 1.0)
    if input_spikes == "graded":
        qmax = float((1 << graded_bits) - 1)
        h = (torch.round(xf * qmax) / qmax).unsqueeze(0).expand(T, *xf.shape)
    else:
        h = rate_code(xf, T, generator)
    for name, m in net.layers.items():
        if isinstance(m, (nn.Dropout, TimeDropout, nn.Identity)):
            continue
        t, b = h.shape[:2]
        flat = h.reshape(t * b, *h.shape[2:])
        if isinstance(m, nn.Conv2d):
            w = fake_quant_weight(m.weight, scales[name]["w"])
            y = F.conv2d(flat, w, m.bias, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, nn.Linear):
            y = F.linear(flat, fake_quant_weight(m.weight, scales[name]["w"]), m.bias)
        elif isinstance(m, (nn.AvgPool2d, SumPool2d, nn.Flatten)):
            y = m(flat)
        elif isinstance(m, SpikingNeuron):
            s_th = scales[name]["th"]
            th = _ste(m.threshold, torch.round(m.threshold * s_th).clamp(min=1.0) / s_th)
            lam = m.leak.clamp(0.0, 1.0)
            lam = _ste(lam, (DECAY_UNITY - torch.round(DECAY_UNITY * (1.0 - lam))) / DECAY_UNITY)
            state: NeuronState | None = None
            outs = []
            for step in range(t):
                s, state = neuron_step(h[step], state, th, lam, "zero", m.surrogate)
                outs.append(s)
            h = torch.stack(outs)
            continue
        else:
            raise TypeError(f"layer {name!r} ({type(m).__name__}) is not supported by loihi_forward")
        h = y.reshape(t, b, *y.shape[1:])
    return h.sum(0)


def deploy_finetune(net: SpikingNetwork, x_train: torch.Tensor, y_train: torch.Tensor,
                    options: Any = None, epochs: int = 3, lr: float = 1e-4,
                    batch_size: int = 64, seed: int = 0, progress: bool = False) -> SpikingNetwork:
    """Fine-tune a copy of ``net`` with the Loihi deployment in the loop; returns the float network.

    ``options``: the target's :class:`~neurodeploy.targets.loihi.options.LoihiOptions` (or a mapping of
    its fields: ``input_spikes``, ``graded_bits``, ``seed``). Adam on the cross-entropy of
    :func:`loihi_forward`'s logits; thresholds and leaks train if the network lets them.
    """
    from ..targets.loihi.options import LoihiOptions

    opts = options if isinstance(options, LoihiOptions) else LoihiOptions.from_mapping(options or {}, "deploy_finetune")
    mode, bits = opts.input_spikes, opts.graded_bits
    ft = copy.deepcopy(net)
    for _, m in ft.neurons():
        m.reset = "zero"
    ft.train()
    params = [p for p in ft.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    n = len(x_train)
    for epoch in range(epochs):
        scales = _layer_scales(ft, opts)
        perm = torch.randperm(n, generator=g)
        total, correct, seen = 0.0, 0, 0
        bar = tqdm(range(0, n, batch_size), desc=f"deploy-finetune {epoch + 1}/{epochs}", disable=not progress,
                   leave=False)
        for i in bar:
            idx = perm[i:i + batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = loihi_forward(ft, xb, scales, mode, bits, g)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            ft.clamp_()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        log.info("deploy-finetune epoch %d: loss %.4f, train accuracy (deployed forward) %.4f",
                 epoch + 1, total / seen, correct / seen)
    ft.eval()
    return ft
