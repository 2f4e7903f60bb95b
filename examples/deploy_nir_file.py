"""Deploy any NIR file (ours, or one written by sinabs / snnTorch / Norse) to every target and
compare them with the float reference, without the pipeline.

    .venv/bin/python examples/deploy_nir_file.py runs/demo/model.nir
"""
import sys

from neurodeploy.data import load_dataset
from neurodeploy.ir.importer import import_nir
from neurodeploy.recipe import DataConfig
from neurodeploy.targets import get_target


def main(path: str) -> None:
    data = load_dataset(DataConfig(name="digits"), seed=0)
    # dt maps continuous-time NIR parameters to our discrete neuron; the log says how
    net, graph, meta, mapping = import_nir(path, timesteps=8, input_shape=data.input_shape)
    print("\n".join(mapping))
    x, y = data.x_test, data.y_test.numpy()
    for name in ("torch", "loihi-emu", "speck"):
        target = get_target(name)
        dep = target.compile(graph, meta, options={"input_spikes": "graded", "seed": 0})
        out = target.run(dep, x)
        print(f"{name:10s} accuracy {(out.predictions == y).mean():.3f}  ({len(dep.lowering)} lowering steps)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/model.nir")
