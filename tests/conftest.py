"""Shared fixtures: a small trained digits SNN and its NIR file, built once per test session.

The tests folder is not a package (lava-nc installs a top-level ``tests`` package into
site-packages); pytest runs with --import-mode=importlib.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # shared helpers (tiny_recipes.py); importlib mode adds no path
os.environ.setdefault("OMP_NUM_THREADS", "1")  # small nets: one thread per process (see Makefile)
os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "matplotlib"))

import pytest  # noqa: E402
import torch  # noqa: E402

from neurodeploy.data import load_dataset  # noqa: E402
from neurodeploy.ir import DeployMeta, to_nir, write_nir  # noqa: E402
from neurodeploy.recipe import Recipe  # noqa: E402
from neurodeploy.snn import create_ann, create_snn  # noqa: E402
from neurodeploy.train import convert, train_ann  # noqa: E402
from neurodeploy.util import seed_everything  # noqa: E402


@pytest.fixture(scope="session")
def digits_recipe() -> Recipe:
    r = Recipe()
    r.timesteps = 8
    r.train.ann.epochs = 8
    r.train.ann.lr = 3e-3
    r.train.snn.epochs = 1
    return r


@pytest.fixture(scope="session")
def digits_data(digits_recipe):
    return load_dataset(digits_recipe.data, digits_recipe.seed)


@pytest.fixture(scope="session")
def trained_pair(digits_recipe, digits_data):
    """(ann, snn): an ANN trained a few epochs and the SNN converted from it (no fine-tuning)."""
    seed_everything(0)
    ann = create_ann(digits_recipe, digits_data.input_shape, digits_data.num_classes)
    snn = create_snn(digits_recipe, digits_data.input_shape, digits_data.num_classes)
    train_ann(ann, digits_data, digits_recipe.train.ann, 64, 0, progress=False)
    convert(ann, snn, digits_data.x_train[:256], 99.7, 1.0)
    snn.eval()
    return ann, snn


@pytest.fixture(scope="session")
def trained_snn(trained_pair):
    return trained_pair[1]


@pytest.fixture(scope="session")
def digits_nir(trained_snn, digits_data, tmp_path_factory):
    """Path of the trained SNN's NIR file (direct input coding, T = 8)."""
    meta = DeployMeta(timesteps=trained_snn.timesteps, encoding="direct", input_shape=list(digits_data.input_shape))
    path = tmp_path_factory.mktemp("nir") / "model.nir"
    write_nir(to_nir(trained_snn, meta), path)
    return path


@pytest.fixture(autouse=True)
def _deterministic_one_thread():
    """Seeded, and one torch thread: the machines are 2 shared cores (and Lava starts workers)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def _tiny_graph(neuron: str):
    """Input [4] -> Linear (identity) -> IF or LIF -> Output: the smallest foreign NIR file."""
    import nir
    import numpy as np

    f = np.float32
    cell = (nir.IF(r=np.ones(4, f), v_threshold=np.ones(4, f), v_reset=np.zeros(4, f)) if neuron == "if" else
            nir.LIF(tau=np.full(4, 2.0, f), r=np.full(4, 2.0, f), v_leak=np.zeros(4, f), v_threshold=np.ones(4, f)))
    name = "li" if neuron == "if" else "lif"
    return nir.NIRGraph({"input": nir.Input(np.array([4])), "fc": nir.Linear(np.eye(4, dtype=f)), name: cell,
                         "output": nir.Output(np.array([4]))}, [("input", "fc"), ("fc", name), (name, "output")])


@pytest.fixture
def tiny_lif_graph():
    """A factory of the tiny LIF graph (a fresh object per call)."""
    return lambda: _tiny_graph("lif")


@pytest.fixture
def tiny_if_nir():
    """A factory writing the tiny IF graph to a path and returning the path."""
    import nir

    def write(path):
        nir.write(str(path), _tiny_graph("if"))
        return path

    return write


def pytest_collection_modifyitems(config, items):  # noqa: ANN001 - pytest hook
    """Tests marked ``lava`` start Lava in its worker environment: without one they skip, saying how
    to create it (neurodeploy/targets/loihi/lava/worker_env.py)."""
    lava_items = [item for item in items if item.get_closest_marker("lava") is not None]
    if not lava_items:
        return
    from neurodeploy.targets.loihi.lava.worker_env import find_worker_python

    python, why = find_worker_python()
    if python is None:
        skip = pytest.mark.skip(reason=why)
        for item in lava_items:
            item.add_marker(skip)
