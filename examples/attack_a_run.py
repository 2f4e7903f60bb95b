"""Attack a trained run from Python: white-box PGD on the source SNN, then the same images on the
deployed Loihi emulator (transfer). Run `make demo` first (it writes runs/demo).

    .venv/bin/python examples/attack_a_run.py runs/demo
"""
import sys

import torch

import neurodeploy
from neurodeploy.attacks import PGD, SourceEstimator
from neurodeploy.ir import read_nir
from neurodeploy.targets import get_target


def main(run_dir: str) -> None:
    run = neurodeploy.load_run(run_dir)
    x, y = run.test_data()
    est = SourceEstimator(run.model)  # gradients through the surrogate, over all T steps
    x_adv = PGD(epsilon=8 / 255, step_size=0.01, steps=7).generate(est, x, y)
    with torch.no_grad():
        clean = (run.model(x).argmax(1) == y).float().mean().item()
        adv = (run.model(x_adv).argmax(1) == y).float().mean().item()
    print(f"source: clean {clean:.3f}, PGD-7 {adv:.3f}")

    graph, meta = read_nir(run.nir_path)  # the deployed network is built from the NIR file
    target = get_target("loihi-emu")
    dep = target.compile(graph, meta, options={"input_spikes": "graded", "seed": 0})
    for line in dep.lowering[:3]:
        print("  lowering:", line)
    for name, images in (("clean", x), ("PGD transfer", x_adv)):
        out = target.run(dep, images)
        print(f"loihi-emu {name}: {(out.predictions == y.numpy()).mean():.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
