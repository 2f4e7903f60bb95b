"""Max- vs avg-pool (paper 2: Luu et al. 2025) after deployment, not only in torch.

Trains the max- and avg-pool variants of two small digits SNNs, exports each to NIR (max pooling
of spikes becomes SumPool2d + Threshold, an OR; BatchNorm folded) and deploys it to the torch
reference, the bit-exact Loihi emulator and Speck (sinabs). Prints clean test accuracy per target
and the agreement with the source's predictions, and the spikes and synaptic operations per sample
before deployment (the NIR graph run in float: the source) and after it (loihi-emu); a target that
refuses a network prints its one-line reason (Speck refuses the SEW models' residual ADD and the OR
of a max pool). loihi-emu runs the SEW models' ADD as two synaptic inputs per consumer (targets/
loihi/dag.py).

    .venv/bin/python examples/maxpool_vs_avgpool.py                 # recipes' epochs (15), seed 0
    .venv/bin/python examples/maxpool_vs_avgpool.py --epochs 4 --seeds 0,1
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import torch

from neurodeploy.data import load_dataset
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import DeployMeta, fold_batchnorm, to_nir
from neurodeploy.ir.from_nir import from_nir
from neurodeploy.ir.metadata import read_meta
from neurodeploy.ir.modules import Heaviside
from neurodeploy.measure.ops import exact_synops
from neurodeploy.recipe import load_recipe
from neurodeploy.targets import get_target
from neurodeploy.train.common import accuracy
from neurodeploy.train.run import train_recipe

TARGETS = ("torch", "loihi-emu", "speck")
# (row label, recipe, model override): paper 2's SEW pair, and the plain conv net (a chain every target runs)
MODELS = (("sew_digits", "digits_sew_{}", None), ("digits_convnet", "digits_sew_{}", "digits_convnet"))


def source_counts(graph, meta, x: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
    """Spikes per neuron layer and synops per synaptic node, mean per sample, of the NIR graph run in
    float (before deployment); the OR of a max pool (a stateless Threshold) counts as a spiking source
    of the synapses after it, as on Loihi, but not as a neuron layer."""
    net = from_nir(graph, meta).eval()
    net.record = True
    ors: dict[str, torch.Tensor] = {}

    def keep(name: str):  # the OR's output [T·B, ...] summed over T, like net.spike_maps
        return lambda mod, inp, out: ors.__setitem__(name, out.detach().reshape(-1, len(x), *out.shape[1:]).sum(0))

    hooks = [m.register_forward_hook(keep(n)) for n, m in net.named_nodes() if isinstance(m, Heaviside)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    spikes = {k: float(v.double().mean()) for k, v in net.spike_counts.items()}
    synops = {k: float(v.double().mean()) for k, v in exact_synops(net, {**net.spike_maps, **ors}).items()}
    return spikes, synops


def deploy_row(recipe_name: str, model: str | None, epochs: int | None, seed: int,
               targets: tuple[str, ...] = TARGETS) -> dict[str, Any]:
    """Train one recipe (optionally another model/epochs/seed), export it, deploy it to ``targets``.

    Returns ``{"source": acc, "source_spikes"/"source_synops": per sample, target: {"accuracy",
    "agreement", "or_layers", "delays", "spikes", "synops"} | {"refused": line}}`` (spikes summed over
    the source's neuron layers, synops over its synaptic nodes, means per sample).
    """
    r = load_recipe(recipe_name)
    r.seed = seed
    if model is not None:
        r.model = dataclasses.replace(r.model, name=model)
    if epochs is not None:
        r.train.snn = dataclasses.replace(r.train.snn, epochs=epochs)
    data = load_dataset(r.data, seed=r.seed)
    snn = train_recipe(r, data, progress=False).snn.eval()
    x, y = data.x_test, data.y_test
    with torch.no_grad():
        src = torch.cat([snn(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()
    row: dict[str, Any] = {"source": accuracy(snn, x, y)}
    graph = to_nir(fold_batchnorm(snn), DeployMeta(timesteps=r.timesteps, encoding=r.data.encoding, readout="sum",
                                                   input_shape=list(data.input_shape)))
    meta = read_meta(graph)
    row["max_pools"] = sorted(meta.max_pools)
    sp, so = source_counts(graph, meta, x)
    row["source_spikes"], row["source_synops"] = sum(sp.values()), sum(so.values())
    for name in targets:
        target = get_target(name)
        try:
            dep = target.compile(graph, meta, options={"input_spikes": "graded", "seed": 0})
            out = target.run(dep, x)
        except NeurodeployError as e:
            row[name] = {"refused": str(e)}
            continue
        row[name] = {"accuracy": float((out.predictions == y.numpy()).mean()),
                     "agreement": float((out.predictions == src).mean()),
                     "or_layers": sum(line.startswith("max pooling:") for line in dep.lowering),
                     "delays": sum(line.startswith("delay:") for line in dep.lowering),
                     "spikes": float(sum(out.layer_spikes[k].mean() for k in sp if k in out.layer_spikes)),
                     "synops": float(sum(out.synops[k].mean() for k in so if k in out.synops))}
    return row


def _cell(v: dict[str, Any]) -> str:
    if "refused" in v:
        return "refused"
    return f"{v['accuracy']:.3f} ({v['agreement']:.3f})"


def _counts(row: dict[str, Any]) -> str:
    emu = row.get("loihi-emu", {})
    if "spikes" not in emu:
        return "-"
    return (f"{row['source_spikes']:7.1f}/{emu['spikes']:<7.1f} {row['source_synops']:8.0f}/{emu['synops']:<8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=None, help="SNN epochs (default: the recipe's)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    args = ap.parse_args()
    refusals: dict[str, str] = {}
    print(f"{'model':16s} {'pool':4s} {'seed':4s} {'source':7s} " + " ".join(f"{t:15s}" for t in TARGETS)
          + " spikes src/emu   synops src/emu")
    for label, recipe, model in MODELS:
        for seed in (int(s) for s in args.seeds.split(",")):
            for pool in ("max", "avg"):
                row = deploy_row(recipe.format(pool), model, args.epochs, seed)
                print(f"{label:16s} {pool:4s} {seed:<4d} {row['source']:<7.3f} "
                      + " ".join(f"{_cell(row[t]):15s}" for t in TARGETS) + " " + _counts(row), flush=True)
                refusals.update({f"{label}/{pool}/{t}": row[t]["refused"] for t in TARGETS if "refused" in row[t]})
    print("\naccuracy (agreement with the source's predictions); spikes and synops per test sample before "
          "(source = the NIR graph in float) and after deployment (loihi-emu); refusals:")
    for k, v in refusals.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
