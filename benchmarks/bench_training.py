"""Benchmark: SNN training step time, neurodeploy vs snnTorch 1.0, SpikingJelly 2.0 and Norse 1.1.

The same network, initial weights, data, T and batch in every framework:

- ``digits``: the digits convnet (conv 1→16, LIF, avgpool, conv 16→32, LIF, avgpool, linear), real
  8×8 digits (scikit-learn), T = 8, batch 64;
- ``vgg5``: VGG5 (conv64-P-conv128-conv128-P-fc4096-fc4096-fc10: ``models.vgg5``'s 8192→4096→4096 head)
  on random 3×32×32 data, T = 6, batch 32.

Adam (lr 1e-3), cross-entropy on the readout Σ_t fc(O[t]) (the non-spiking output layer of ours).
Ours trains as ``neurodeploy train`` does: the optimiser of ``train.common.make_optimizer`` (torch's
fused Adam) and the library's executor (dense GEMMs through numpy's OpenBLAS on non-Intel CPUs,
``snn/blas.py``); the contenders use ``torch.optim.Adam``'s default path and torch's GEMM.
PyTorch's default initialisation, then each weight layer scaled so that its neurons fire
(:func:`calibrate`; the same weights are copied into every framework).
Direct coding: every framework runs the layers before the first neuron once and repeats the result
over T (ours does that by design; the contenders get the same saving so that only the rest is
compared). Each framework's own idiom for the time loop:

- ours: layers over all T at once ([T·B] batch), neuron recurrence in ``SpikingNeuron.forward``;
- snnTorch: its documented per-step loop (``for t: cur = layer(x); spk, mem = lif(cur, mem)``);
- SpikingJelly: multi-step mode (``step_mode='m'``, stateless layers in ``SeqToANNContainer``);
- Norse: ``LIFBoxCell`` looped over the ``[T, B, ...]`` sequence, stateless layers on ``[T·B]``.

Neurons: threshold 1, reset by subtraction, ATan surrogate α = 2 (ours, snnTorch, SpikingJelly);
Norse has no ATan, it uses its triangle surrogate (α = 0.3, which equals ours' linear surrogate).
Where the definitions coincide, outputs and gradients are compared on one batch (``equivalence``):
see ``DIFFERENCES`` below for where they do not.

Variants of ours, timed in the same rounds: ``ours`` (the library as it trains: the fused neuron
recurrence, one autograd node per neuron layer), ``ours_stepwise`` (the neuron loop step by step
through ``neuron_step``, the path before the fusion) and ``ours_stepwise_compiled`` (that under
``torch.compile(dynamic=False)``; its compilation time is in ``warmup_s``, and
``first_step_logits_max_abs_diff_vs_ours`` says whether it computes the same logits).

Timing: contenders alternate in rounds (a few steps each, the order rotated every round), medians
over all steps of wall time and of this process's CPU time; ratios come from the same run. Threads:
``--threads`` (default 1, the Makefile's setting; the JSON records it).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_training.py [--nets digits,vgg5]
        [--rounds 12] [--steps 10] [--vgg-rounds 4] [--vgg-steps 2] [--threads 1] [--no-compile]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"

DIFFERENCES = {
    "snntorch": "Leaky(beta=λ, reset_mechanism='subtract') has ours' forward exactly (u[t] = λu[t-1] + x[t] - θ·O[t-1], "
                "spike when u > θ, θ = 1); its reset term is always detached (mem_reset uses .detach()), ours is "
                "differentiated, so gradients differ.",
    "spikingjelly": "IFNode(v_reset=None, detach_reset=False) is ours with λ = 1 up to the order of the additions "
                    "(SpikingJelly: (u - θ·S) + X, ours: (u + x) - θ·O): float rounding can flip a spike that lands "
                    "exactly on the threshold, which then propagates (seen on VGG5, not on digits). "
                    "LIFNode(decay_input=False, v_reset=None) leaks the reset too: H[t] = λ(H[t-1] - θ·S[t-1]) + X[t] "
                    "while ours is u[t] = λu[t-1] + x[t] - θ·O[t-1]; they differ when λ < 1.",
    "norse": "LIFBoxCell is forward-Euler: v ← v + dt/τ·(i - v), i.e. the input is scaled by (1-λ), the reset "
             "(reset_subtract) is leaked too and λ = 1 (IF) cannot be expressed; no ATan surrogate (triangle used). "
             "Timed on the same layers and shapes, not compared numerically.",
}


# ----------------------------------------------------------------------------- networks
def our_net(name: str, shape: tuple[int, ...], T: int, leak: float, compile_: bool = False):
    from neurodeploy.recipe import ModelConfig
    from neurodeploy.snn.models import model_spec
    from neurodeploy.snn.network import SpikingNetwork, build_layers
    from neurodeploy.snn.neuron import NeuronSpec
    from neurodeploy.snn.surrogate import ATanSurrogate

    spec = model_spec(name, ModelConfig(name=name, dropout=0.0), shape, 10)
    ns = NeuronSpec(threshold=1.0, leak=leak, reset="subtract", train_threshold=False, train_leak=False)
    return SpikingNetwork(build_layers(spec, ns, ATanSurrogate(2.0)), T, "direct", "sum", shape)


def calibrate(net, x: torch.Tensor, target: float = 1.5, q: float = 0.99) -> None:
    """Scale each weight layer (in order) so that the 99th percentile of its neurons' input is
    ``target`` × threshold (1): with PyTorch's default initialisation the deeper layers of an SNN
    with threshold 1 stay silent, which would make the gradient comparison vacuous."""
    from neurodeploy.snn.neuron import SpikingNeuron

    weighted = None
    for name, m in net.layers.items():
        if hasattr(m, "weight") and m.weight is not None:
            weighted = m
        elif isinstance(m, SpikingNeuron) and weighted is not None:
            seen = {}
            h = m.register_forward_pre_hook(lambda mod, inp: seen.__setitem__("x", inp[0].detach()))
            with torch.no_grad():
                net(x)
            h.remove()
            v = seen["x"].flatten()
            v = v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0))[:100000]]
            with torch.no_grad():
                weighted.weight.mul_(target / max(abs(float(torch.quantile(v, q))), 1e-6))
            weighted = None


def _stateless(net) -> list[tuple[str, nn.Module | None]]:
    """Our layers with the neuron slots as None (weights deep-copied)."""
    from neurodeploy.snn.neuron import SpikingNeuron

    return [(n, None if isinstance(m, SpikingNeuron) else copy.deepcopy(m)) for n, m in net.layers.items()]


class _Prefix(nn.Module):
    """Layers before the first neuron run once (direct coding), as in ours."""

    def __init__(self, layers):
        super().__init__()
        i = next(k for k, (_, m) in enumerate(layers) if m is None)
        self.pre = nn.Sequential(*[m for _, m in layers[:i]])
        self.rest = layers[i:]


class SnnTorchNet(_Prefix):
    def __init__(self, layers, T: int, leak: float):
        import snntorch as snn
        from snntorch import surrogate

        super().__init__(layers)
        self.T = T
        mods = []
        for _, m in self.rest:
            mods.append(snn.Leaky(beta=leak, threshold=1.0, reset_mechanism="subtract",
                                  spike_grad=surrogate.atan(alpha=2.0)) if m is None else m)
        self.body = nn.ModuleList(mods)
        self.is_neuron = [m is None for _, m in self.rest]

    def forward(self, x):
        c = self.pre(x)
        mems = [None] * len(self.body)
        out = 0
        for _ in range(self.T):
            h = c
            for k, m in enumerate(self.body):
                if self.is_neuron[k]:
                    if mems[k] is None:
                        mems[k] = m.init_leaky()
                    h, mems[k] = m(h, mems[k])
                else:
                    h = m(h)
            out = out + h
        return out


class SeqNet(_Prefix):
    """[T, B, ...] through the body: stateless layers on [T·B], neurons on the sequence."""

    def __init__(self, layers, T: int, make_neuron, wrap=None, reset=None):
        super().__init__(layers)
        self.T = T
        mods = []
        for _, m in self.rest:
            mods.append(make_neuron() if m is None else (wrap(m) if wrap else m))
        self.body = nn.ModuleList(mods)
        self.is_neuron = [m is None for _, m in self.rest]
        self.wrapped = wrap is not None
        self.state_reset = reset

    def forward(self, x):
        if self.state_reset:
            self.state_reset(self)
        c = self.pre(x)
        h = c.unsqueeze(0).expand(self.T, *c.shape)
        for k, m in enumerate(self.body):
            if self.is_neuron[k] or self.wrapped:
                h = m(h)
                if isinstance(h, tuple):  # norse returns (z, state)
                    h = h[0]
            else:
                t, b = h.shape[:2]
                y = m(h.reshape(t * b, *h.shape[2:]))
                h = y.reshape(t, b, *y.shape[1:])
        return h.sum(0)


def spikingjelly_net(layers, T: int, leak: float):
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    if leak == 1.0:
        make = lambda: neuron.IFNode(v_threshold=1.0, v_reset=None, surrogate_function=surrogate.ATan(alpha=2.0),  # noqa: E731
                                     detach_reset=False, step_mode="m")
    else:
        make = lambda: neuron.LIFNode(tau=1.0 / (1.0 - leak), decay_input=False, v_threshold=1.0, v_reset=None,  # noqa: E731
                                      surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=False, step_mode="m")
    return SeqNet(layers, T, make, wrap=layer.SeqToANNContainer, reset=functional.reset_net)


class NorseSeq(nn.Module):
    """Norse 1.1 has LIFBox only as a cell: the time loop over it (as norse.torch.Lift would)."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x):
        state, out = None, []
        for t in range(x.shape[0]):
            z, state = self.cell(x[t], state)
            out.append(z)
        return torch.stack(out)


def norse_net(layers, T: int, leak: float):
    from norse.torch import LIFBoxCell, LIFBoxParameters
    from norse.torch.functional.reset import reset_subtract

    dt = 1e-3
    lam = leak if leak < 1.0 else 0.9  # λ = 1 cannot be expressed (dt/τ = 0 would also zero the input)
    p = LIFBoxParameters(tau_mem_inv=torch.as_tensor((1.0 - lam) / dt), v_th=torch.as_tensor(1.0),
                         v_reset=torch.as_tensor(0.0), method="triangle", alpha=0.3, reset_method=reset_subtract)
    return SeqNet(layers, T, lambda: NorseSeq(LIFBoxCell(p, dt=dt)))


def build(framework: str, ours, T: int, leak: float) -> nn.Module:
    if framework == "ours":
        return ours
    layers = _stateless(ours)
    if framework == "snntorch":
        return SnnTorchNet(layers, T, leak)
    if framework == "spikingjelly":
        return spikingjelly_net(layers, T, leak)
    if framework == "norse":
        return norse_net(layers, T, leak)
    raise ValueError(framework)


def weights(m: nn.Module) -> dict[str, torch.Tensor]:
    """Weight tensors (conv/linear) in forward order, keyed by position."""
    ws = [p for n, p in m.named_parameters() if n.endswith("weight")]
    return {f"w{i}": p for i, p in enumerate(ws)}


# ----------------------------------------------------------------------------- data
def data(net_name: str, batch: int, n_batches: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if net_name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(d.target, dtype=torch.long)
        idx = torch.randperm(len(x), generator=g)
        return [(x[idx[(i * batch) % (len(x) - batch):][:batch]], y[idx[(i * batch) % (len(x) - batch):][:batch]])
                for i in range(n_batches)]
    return [(torch.rand(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(n_batches)]


NETS = {"digits": ("digits_convnet", (1, 8, 8), 8, 64), "vgg5": ("vgg5", (3, 32, 32), 6, 32)}


# ----------------------------------------------------------------------------- equivalence
def equivalence(net_name: str, leak: float, frameworks: list[str]) -> dict:
    """One batch: max |Δ| of logits and of every weight gradient, ours vs each framework."""
    model, shape, T, batch = NETS[net_name]
    torch.manual_seed(0)
    ours = our_net(model, shape, T, leak)
    calibrate(ours, data(net_name, batch, 1, seed=7)[0][0])
    x, y = data(net_name, batch, 1, seed=123)[0]
    loss_fn = nn.CrossEntropyLoss()
    ours.record = True
    lo = ours(x)
    ours.record = False
    rate = {n: float(m.mean() / T) for n, m in ours.spike_maps.items()}
    loss_fn(lo, y).backward()
    go = {k: p.grad.clone() for k, p in weights(ours).items()}
    out = {"spike_rate_ours": rate}
    for fw in frameworks:
        if fw == "ours":
            continue
        other = build(fw, copy.deepcopy(ours), T, leak)
        for p in other.parameters():
            p.grad = None
        lf = other(x)
        loss_fn(lf, y).backward()
        gf = {k: p.grad for k, p in weights(other).items()}
        gmax = {k: float((go[k] - gf[k]).abs().max() / go[k].abs().max().clamp_min(1e-30)) for k in go}
        out[fw] = {
            "logits_max_abs_diff": float((lo - lf).detach().abs().max()),
            "logits_identical": bool(torch.equal(lo.detach(), lf.detach())),
            "grad_max_rel_diff": max(gmax.values()),
            "grad_max_rel_diff_per_weight": gmax,
            "grads_allclose": all(torch.allclose(go[k], gf[k], rtol=1e-3, atol=1e-4 * float(go[k].abs().max()))
                                  for k in go),
        }
    return out


# ----------------------------------------------------------------------------- timing
def time_training(net_name: str, leak: float, frameworks: list[str], rounds: int, steps: int, warmup: int,
                  variants: dict) -> dict:
    model, shape, T, batch = NETS[net_name]
    torch.manual_seed(0)
    base = our_net(model, shape, T, leak)
    calibrate(base, data(net_name, batch, 1, seed=7)[0][0])
    nets = {}
    for fw in frameworks:
        nets[fw] = build(fw, copy.deepcopy(base), T, leak)
    for name, make in variants.items():
        nets[name] = make(copy.deepcopy(base))
    from neurodeploy.train.common import make_optimizer

    # ours trains with the library's optimiser (make_optimizer: fused Adam), the contenders with
    # torch.optim.Adam's default (multi-tensor) path, as their tutorials write it
    opts = {k: make_optimizer(m.parameters(), "adam", 1e-3, 0.0) if k.startswith("ours")
            else torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in nets.items()}
    batches = data(net_name, batch, 16, seed=1)
    loss_fn = nn.CrossEntropyLoss()
    counters = {k: 0 for k in nets}

    first_logits = {}

    def step(k):
        x, y = batches[counters[k] % len(batches)]
        counters[k] += 1
        opts[k].zero_grad(set_to_none=True)
        out = nets[k](x)
        if k not in first_logits:
            first_logits[k] = out.detach().clone()
        loss = loss_fn(out, y)
        loss.backward()
        opts[k].step()

    failed, warm = {}, {}
    for k in list(nets):  # warm-up (and compilation for compiled variants)
        t0 = time.perf_counter()
        try:
            for _ in range(warmup):
                step(k)
        except Exception as e:  # noqa: BLE001 - a variant that does not run is reported, not fatal
            if k not in variants:
                raise
            failed[k] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}"
            print(f"   {k}: failed ({failed[k]})", flush=True)
            del nets[k]
            continue
        warm[k] = time.perf_counter() - t0
        if k in variants:
            print(f"   {k}: warm-up {warm[k]:.1f} s", flush=True)
    wall = {k: [] for k in nets}
    cpu = {k: [] for k in nets}
    names = list(nets)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for k in order:
            for _ in range(steps):
                t0, c0 = time.perf_counter(), time.process_time()
                step(k)
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
    med = statistics.median
    res = {k: {"step_ms_wall": 1000 * med(wall[k]), "step_ms_cpu": 1000 * med(cpu[k]), "steps": len(wall[k]),
               "step_ms_wall_iqr": [1000 * statistics.quantiles(wall[k], n=4)[0],
                                    1000 * statistics.quantiles(wall[k], n=4)[2]] if len(wall[k]) > 1 else None}
           for k in nets}
    contenders = [k for k in frameworks if k != "ours"]
    res["warmup_s"] = warm  # includes torch.compile's compilation for *_compiled
    if failed:
        res["failed_variants"] = failed
    # same weights, same first batch: do the variants (compiled ones may reorder float operations)
    # give ours' logits? (first step, before any update)
    res["first_step_logits_max_abs_diff_vs_ours"] = {
        k: float((first_logits[k] - first_logits["ours"]).abs().max()) for k in first_logits
        if k != "ours" and "ours" in first_logits and k.startswith("ours")}
    if contenders and "ours" in res:
        fastest = min(contenders, key=lambda k: res[k]["step_ms_wall"])
        fastest_cpu = min(contenders, key=lambda k: res[k]["step_ms_cpu"])
        res["fastest_contender"] = fastest
        for k in ["ours", *[v for v in variants if v in nets]]:
            res[f"speedup_{k}_vs_fastest_wall"] = res[fastest]["step_ms_wall"] / res[k]["step_ms_wall"]
            res[f"speedup_{k}_vs_fastest_cpu"] = res[fastest_cpu]["step_ms_cpu"] / res[k]["step_ms_cpu"]
    return res


def _stepwise(net):
    """Ours with the neuron time loop step by step through neuron_step (the pre-fusion path)."""
    for _, n in net.neurons():
        n.fused = False
    return net


def _blas_backend() -> str:
    from neurodeploy.snn import blas

    return blas.backend()


def _load() -> dict:
    """The machine's load when the figures were taken: ``uptime``'s 1/5/15-minute load averages."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return {}
    return {"1min": one, "5min": five, "15min": fifteen, "cpus": os.cpu_count()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="digits,vgg5")
    ap.add_argument("--frameworks", default="ours,snntorch,spikingjelly,norse")
    ap.add_argument("--leak", type=float, default=0.9, help="λ of the timed LIF neurons")
    ap.add_argument("--rounds", type=int, default=12, help="digits: rounds of alternation")
    ap.add_argument("--steps", type=int, default=10, help="digits: steps per contender per round")
    ap.add_argument("--vgg-rounds", type=int, default=4)
    ap.add_argument("--vgg-steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-compile", dest="compile", action="store_false",
                    help="skip ours (step-by-step neuron) under torch.compile (it compiles for ~10-60 s per net)")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    fws = a.frameworks.split(",")
    variants = {"ours_stepwise": _stepwise}
    if a.compile:
        # the step-by-step neuron is plain tensor code that Inductor can fuse into a few loops; the fused
        # autograd.Function is opaque to it (measured: torch.compile of the fused net was slower than eager)
        variants["ours_stepwise_compiled"] = lambda n: torch.compile(_stepwise(n), dynamic=False)
    result = {"benchmark": "SNN training step, ours vs snnTorch/SpikingJelly/Norse", "threads": a.threads,
              "blas_backend_ours": _blas_backend(),
              "load": {"start": _load()},
              "leak_timed": a.leak, "differences": DIFFERENCES, "nets": {},
              "torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
              "versions": {}}
    for mod in ("snntorch", "spikingjelly", "norse"):
        try:
            import importlib.metadata as md

            result["versions"][mod] = md.version(mod)
        except Exception:  # noqa: BLE001
            result["versions"][mod] = None
    for net in a.nets.split(","):
        model, shape, T, batch = NETS[net]
        print(f"== {net}: {model} {shape}, T = {T}, batch {batch}, {a.threads} thread(s), load {_load()}", flush=True)
        eq = {f"leak_{lk}": equivalence(net, lk, fws) for lk in (1.0, 0.9)}
        r, s = (a.rounds, a.steps) if net == "digits" else (a.vgg_rounds, a.vgg_steps)
        tm = time_training(net, a.leak, fws, r, s, a.warmup if net == "digits" else 1, variants)
        result["nets"][net] = {"model": model, "input": shape, "timesteps": T, "batch": batch,
                               "equivalence": eq, "timing": tm, "load_after": _load()}
        print(f"{'framework':<24}{'wall ms/step':>14}{'cpu ms/step':>13}{'steps':>7}")
        for k, v in tm.items():
            if isinstance(v, dict) and "step_ms_wall" in v:
                print(f"{k:<24}{v['step_ms_wall']:>14.2f}{v['step_ms_cpu']:>13.2f}{v['steps']:>7}")
        for k, v in tm.items():
            if k.startswith("speedup"):
                print(f"{k}: {v:.3f}")
        for lk, e in eq.items():
            for fw, d in e.items():
                if isinstance(d, dict) and "logits_max_abs_diff" in d:
                    print(f"  {lk} {fw}: logits identical={d['logits_identical']} (max |Δ| {d['logits_max_abs_diff']:.2e}), "
                          f"grads allclose={d['grads_allclose']} (max rel Δ {d['grad_max_rel_diff']:.2e})")
    result["load"]["end"] = _load()
    # flat headline figures for run_all's summary
    for net, d in result["nets"].items():
        tm = d["timing"]
        if "speedup_ours_vs_fastest_wall" in tm:
            result[f"{net}_speedup_vs_fastest_wall"] = tm["speedup_ours_vs_fastest_wall"]
            result[f"{net}_speedup_vs_fastest_cpu"] = tm["speedup_ours_vs_fastest_cpu"]
            result[f"{net}_fastest_contender"] = tm["fastest_contender"]
        if "speedup_ours_stepwise_compiled_vs_fastest_wall" in tm:
            result[f"{net}_compiled_speedup_vs_fastest_wall"] = tm["speedup_ours_stepwise_compiled_vs_fastest_wall"]
        if "ours" in tm:
            result[f"{net}_ours_step_ms"] = tm["ours"]["step_ms_wall"]
    result["goal"] = "speedup ≥ 1.5 on both nets (issue 20)"
    result["headline"] = {k: result[k] for k in result if k.endswith(("_speedup_vs_fastest_wall", "_speedup_vs_fastest_cpu",
                                                                   "_fastest_contender", "_ours_step_ms"))}
    result["headline"]["threads"] = a.threads
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
