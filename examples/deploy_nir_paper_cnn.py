"""Deploy the NIR paper's N-MNIST CNN (trained in sinabs, `tests/data/external/cnn_sinabs.nir`) to
every target and print how far each one agrees with sinabs' own simulation of the same file.

    .venv/bin/python examples/deploy_nir_paper_cnn.py                      # seeded random event frames
    .venv/bin/python examples/deploy_nir_paper_cnn.py --nmnist ~/data      # the real N-MNIST test set (local)
    .venv/bin/python examples/deploy_nir_paper_cnn.py --targets torch,loihi-emu,lava --samples 64

N-MNIST is never downloaded; without it the inputs are seeded Poisson event frames (2×34×34 counts
per step), so accuracy is not defined and only agreement is printed. The reference column is
``sinabs.from_nir`` itself (sinabs is installed with the project); each target is deployed from
the file as our importer reads it (the producer is detected from the file: sinabs' multi-spike
IAF and its membrane floor), and every change a target makes is in its lowering log (``-v``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import nir
import numpy as np
import torch

from neurodeploy.ir.importer import import_nir
from neurodeploy.targets import get_target

FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "external" / "cnn_sinabs.nir"


def sinabs_reference(path: Path, frames: torch.Tensor) -> np.ndarray:
    """Output spike counts per class [N, 10] of sinabs' own reading of the file."""
    import sinabs  # sinabs.from_nir needs nirtorch only, not samna

    n, t = frames.shape[:2]
    model = sinabs.from_nir(nir.read(str(path)), batch_size=n)
    with torch.no_grad():
        out = model(frames.reshape(n * t, *frames.shape[2:]))
    out = out[0] if isinstance(out, tuple) else out  # nirtorch's executor returns (output, state)
    return out.reshape(n, t, -1).sum(1).numpy()


def inputs(args: argparse.Namespace) -> tuple[torch.Tensor, np.ndarray | None]:
    if args.nmnist:
        from neurodeploy.data import load_dataset
        from neurodeploy.recipe import DataConfig

        data = load_dataset(DataConfig(name="nmnist", encoding="events", path=args.nmnist, time_bins=args.T), 0)
        return data.x_test[: args.samples].float(), data.y_test[: args.samples].numpy()
    g = torch.Generator().manual_seed(args.seed)
    return torch.poisson(torch.full((args.samples, args.T, 2, 34, 34), args.rate), generator=g), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nir", type=Path, default=FILE)
    ap.add_argument("--targets", default="torch,loihi-emu,lava,speck,onnx")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--rate", type=float, default=0.05, help="mean events per pixel and step (random frames)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nmnist", default="", help="local folder holding NMNIST/ (tonic layout)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each target's lowering log")
    args = ap.parse_args()

    _, graph, meta, mapping = import_nir(args.nir, timesteps=args.T, encoding="events")
    print(mapping[0] if mapping else "")
    x, y = inputs(args)
    ref = sinabs_reference(args.nir, x)
    ref_pred = ref.argmax(1)
    print(f"{len(x)} samples, T = {args.T}; reference: sinabs.from_nir"
          + (f" (accuracy {(ref_pred == y).mean():.3f})" if y is not None else " (random event frames)"))
    print(f"{'target':10s} {'agree':>6s} {'exact counts':>12s} {'spikes/sample':>14s} {'seconds':>8s}"
          + ("  accuracy" if y is not None else ""))
    for name in [t.strip() for t in args.targets.split(",") if t.strip()]:
        try:
            target = get_target(name)
            t0 = time.time()
            dep = target.compile(graph, meta, options={"seed": args.seed})
            out = target.run(dep, x)
        except Exception as e:  # noqa: BLE001 - an example reports a target that refuses and goes on
            print(f"{name:10s} refused: {str(e).splitlines()[0]}")
            continue
        agree = float((out.predictions == ref_pred).mean())
        exact = float((np.asarray(out.logits) == ref).all(1).mean()) if out.logits is not None else float("nan")
        spikes = sum(float(np.sum(v)) for v in out.layer_spikes.values()) / len(x)
        acc = f"  {(out.predictions == y).mean():.3f}" if y is not None else ""
        print(f"{name:10s} {agree:6.3f} {exact:12.3f} {spikes:14.1f} {time.time() - t0:8.1f}{acc}")
        if args.verbose:
            print("\n".join("    " + line for line in dep.lowering))


if __name__ == "__main__":
    main()
