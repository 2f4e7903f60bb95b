"""The lowered Loihi program: its layers (synapse + CUBA neurons, fixed-point parameters), how
the input becomes spikes, and the readout — what :mod:`.lowering` produces and :mod:`.emu` and
:mod:`.lava` run. The hardware limits used everywhere in the Loihi package are defined here once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .event_input import EventStats, event_spikes

W_MIN, W_MAX = -256, 254  # 8-bit mixed-sign weights on the even grid
VTH_MAX = (1 << 17) - 1  # vThMant, 17 bits unsigned
A_MAX = 1 << 17  # |a| << 6 must fit the 24-bit current
BIAS_MAX = (1 << 12) - 1  # 13-bit signed bias mantissa
DECAY_UNITY = 4096  # 12-bit decay unit: u·(4096 − iDecay) >> 12 (4096 = no decay); the one definition
HEADROOM = 0.95  # keep 5 % below the hard limits


class _Shaped:
    """``n_in``/``n_out`` of a dataclass with ``in_shape`` and ``out_shape`` fields."""

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))


@dataclass
class LoihiLayer(_Shaped):
    """One synapse + one layer of CUBA neurons (or the non-firing readout)."""

    name: str  # NIR neuron node name (the synaptic node's name for the readout)
    synapse: str  # NIR synaptic node (conv / linear) this layer implements
    folded: list[str]  # other NIR nodes folded into the synapse (pooling, flatten)
    kind: str  # conv | dense
    weight: np.ndarray  # int64: conv [O, I, kh, kw]; dense [O, I]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    bias: np.ndarray | None = None  # int64 [O] (bias mantissa, added as b << 6 each step)
    scale: float = 1.0  # σ: integer weight units per float unit (times Q for the first layer)
    vth: int = VTH_MAX  # threshold mantissa
    i_decay: int = DECAY_UNITY
    v_decay: int = 0
    readout: bool = False
    input_neuron: str | None = None  # NIR neuron feeding it (None: the network input)
    fanout: np.ndarray | None = None  # real fan-out of each input neuron/pixel into this synapse, flat
    pre_pool: tuple[int, int] | None = None  # conv folded from sum-pool k (=stride) + conv: weights tiled k x k
    multi_spike: bool = False  # the source neuron emits several spikes per step (sinabs MultiSpike)
    recurrent: np.ndarray | None = None  # int64 [O, O]: a = W·s_in[t] + recurrent·s[t−1] (.recurrent)
    rec_synapse: str | None = None  # NIR node of the recurrent weight
    rec_fanout: np.ndarray | None = None  # real fan-out of each neuron into its recurrent synapse


    extra: list["LoihiSynapse"] = field(default_factory=list)  # more synaptic inputs (DAG programs, .dag)
    delay: int = 0  # extra steps of synaptic delay of the own synapse on Lava (DAG programs, .dag)
    depth: int = -1  # Lava pipeline depth: the layer handles sample-local step t at global step t + 2 + depth

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Synaptic input a = W·x for a batch ``[N, n_in]`` in x's float dtype.

        Exact in float32 too: the lowering bounds Σ_j |w_ij|·max(s) below 2^17 < 2^24.
        """
        return apply_synapse(self, x)

    def matrix(self) -> np.ndarray:
        """The synapse as a dense integer matrix ``[n_out, n_in]`` (convs unrolled)."""
        return synapse_matrix(self)

    def synapses(self) -> list["LoihiLayer | LoihiSynapse"]:
        """Every synaptic input of the layer: its own, then the extra ones (their a's are summed)."""
        return [self, *self.extra]


@dataclass
class LoihiSynapse(_Shaped):
    """One more synaptic input of a layer in a DAG program (:mod:`.dag`): the layer's neurons receive
    a = Σ_k W_k·s_k over their own synapse and these, every W_k on the layer's integer scale."""

    synapse: str  # NIR synaptic node (conv / linear) this synapse implements
    folded: list[str]  # other NIR nodes folded into it (pooling, flatten, junctions)
    kind: str  # conv | dense
    weight: np.ndarray  # int64: conv [O, I, kh, kw]; dense [O, I]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    input_neuron: str | None  # the layer whose spikes it carries (None: the network input)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pre_pool: tuple[int, int] | None = None
    fanout: np.ndarray | None = None  # real fan-out of each source neuron into this NIR synaptic node, flat
    delay: int = 0  # extra steps of synaptic delay on Lava (the shortcut waits for the longer branch)


    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return apply_synapse(self, x)

    def matrix(self) -> np.ndarray:
        return synapse_matrix(self)


DENSE_MAX = 1 << 21  # a conv whose unrolled matrix has at most this many entries ...
DENSE_K = 32  # ... and a reduction of fewer than this many MACs per output runs as one dense product


def apply_synapse(syn: LoihiLayer | LoihiSynapse, x: torch.Tensor, unroll: bool = True) -> torch.Tensor:
    """Synaptic input a = W·x of one synapse for a batch ``[N, n_in]`` of integers in x's float dtype.

    Every route gives the same integers (the inputs and weights are integers and every partial sum
    stays below 2^17 < 2^24, exact in float32): a small conv with a short reduction (a first layer
    of 1-2 channels) as its unrolled matrix, which a GEMM runs faster than a conv kernel; a conv
    folded from a sum pool as the pool (strided adds) and the small kernel.
    """
    if unroll and syn.kind == "conv" and _tiny_conv(syn):
        return x @ _cached(syn, "dense", x, lambda: torch.as_tensor(synapse_matrix(syn).T, dtype=x.dtype))
    if syn.kind == "conv" and syn.pre_pool is not None:
        # same integers, 4x fewer MACs: the folded kernel is the small one tiled k x k
        k = syn.pre_pool
        w = _cached(syn, "pooled", x, lambda: torch.as_tensor(syn.weight[:, :, ::k[0], ::k[1]].copy(),
                                                              dtype=x.dtype))
        xs = sum_pool(x.reshape(-1, *syn.in_shape), k)
        y = F.conv2d(xs, w, None, (syn.stride[0] // k[0], syn.stride[1] // k[1]),
                     (syn.padding[0] // k[0], syn.padding[1] // k[1]))
        return y.reshape(x.shape[0], -1)
    w = _cached(syn, "weight", x, lambda: torch.as_tensor(syn.weight, dtype=x.dtype))
    if syn.kind == "conv":
        y = F.conv2d(x.reshape(-1, *syn.in_shape), w, None, syn.stride, syn.padding)
        return y.reshape(x.shape[0], -1)
    return x @ w.T


def sum_pool(x: torch.Tensor, k: tuple[int, int]) -> torch.Tensor:
    """k x k sum pooling with stride k of ``[N, C, H, W]`` (remainder rows/columns dropped, as avg_pool2d):
    strided adds, exact for integers (avg_pool2d·k² would divide and multiply back)."""
    ho, wo = x.shape[2] // k[0], x.shape[3] // k[1]
    r = x[:, :, 0:ho * k[0]:k[0]]
    for i in range(1, k[0]):
        r = r + x[:, :, i:ho * k[0]:k[0]]
    c = r[..., 0:wo * k[1]:k[1]]
    for j in range(1, k[1]):
        c = c + r[..., j:wo * k[1]:k[1]]
    return c.contiguous()


def _tiny_conv(syn: LoihiLayer | LoihiSynapse) -> bool:
    w = syn.weight
    return syn.n_in * syn.n_out <= DENSE_MAX and int(np.prod(w.shape[1:])) < DENSE_K


def _cached(syn: LoihiLayer | LoihiSynapse, what: str, x: torch.Tensor, make) -> torch.Tensor:  # noqa: ANN001
    """A torch form of the synapse's weights, made once per dtype/device/weight array."""
    cache = syn.__dict__.setdefault("_torch_weights", {})
    key = (what, x.dtype, x.device, id(syn.weight))
    if key not in cache:
        cache[key] = make().to(x.device).contiguous()
    return cache[key]


def synapse_matrix(syn: LoihiLayer | LoihiSynapse) -> np.ndarray:
    """A synapse as a dense integer matrix ``[n_out, n_in]`` (convs unrolled)."""
    if syn.kind == "dense":
        return syn.weight.astype(np.int64)
    eye = torch.eye(syn.n_in, dtype=torch.float64)
    return apply_synapse(syn, eye, unroll=False).T.round().numpy().astype(np.int64)


@dataclass
class LoihiProgram:
    """A lowered network: the layers, how the input becomes spikes, and the readout."""

    layers: list[LoihiLayer]
    input_shape: tuple[int, ...]
    timesteps: int
    input_spikes: str  # rate | graded (image input)
    graded_bits: int
    seed: int
    readout: str  # 'potential' (non-firing readout layer) | 'count' (last layer's spikes)
    info: dict[str, Any] = field(default_factory=dict)
    events: str = ""  # event-frame input: 'graded' | 'binary' (see .event_input); '' for images
    event_bits: int = 4  # graded event payload width
    bias_input: bool = False  # one extra input channel spiking at every step: the first layer's bias (.recurrent)

    @property
    def is_dag(self) -> bool:
        """A residual (DAG) program: some layer has several synaptic inputs or a delayed one (.dag)."""
        return any(layer.extra or layer.delay for layer in self.layers)

    @property
    def input_message_bits(self) -> int:
        if self.events:
            return self.event_bits if self.events == "graded" else 0
        return self.graded_bits if self.input_spikes == "graded" else 0

    def encode(self, x: torch.Tensor, offset: int = 0, stats: EventStats | None = None) -> torch.Tensor:
        """Input spikes ``[T, B, n_in]`` (int64) for images ``x`` in [0, 1] or event frames ``[B, T, ...]``.

        rate: s[t] ~ Bernoulli(x), one generator seeded by ``seed`` and the sample index, so a
        sample gets the same spikes in every target and batch; graded: s[t] = round(x·(2^g − 1))
        at every step (a g-bit graded spike; zero means no spike); event frames:
        :func:`.event_input.event_spikes` (``stats`` accumulates the events clipped).
        """
        if self.events:
            s = event_spikes(x, self.timesteps, self.events, self.event_bits, stats)
            if self.bias_input:  # the always-on channel whose weights carry the first layer's bias
                s = torch.cat([s, torch.ones(*s.shape[:2], 1, dtype=s.dtype, device=s.device)], 2)
            return s
        x = x.detach().float().reshape(x.shape[0], -1).clamp(0.0, 1.0)
        T, B = self.timesteps, x.shape[0]
        if self.input_spikes == "graded":
            q = torch.round(x.double() * ((1 << self.graded_bits) - 1)).long()
            return q.unsqueeze(0).expand(T, B, -1).contiguous()
        # rate_code(x[b], T, Generator seeded seed·1000003 + index) per sample (data.encoding.rate_code: one
        # uniform per element in [T, n] order, s = u < x): the same draws, one generator re-seeded, one compare
        u = torch.empty(B, T, x.shape[1], dtype=x.dtype)
        g = torch.Generator()
        for b in range(B):
            g.manual_seed(self.seed * 1_000_003 + offset + b)
            torch.rand(T, x.shape[1], generator=g, dtype=x.dtype, out=u[b])
        return (u < x.unsqueeze(1)).transpose(0, 1).to(torch.int64).contiguous()
