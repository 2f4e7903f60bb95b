"""Two CPU processes (gloo) under torchrun train a tiny recipe: ranks agree, and the result equals
single-process training on the same global batches (DDP averages the two half-batch gradients)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neurodeploy.data import load_dataset
from neurodeploy.recipe import load_recipe
from neurodeploy.train import read_checkpoint, train_recipe

TINY = """
name = "tiny_ddp"
timesteps = 4
[data]
batch_size = 64
[model]
name = "digits_mlp"
neuron = "lif"
[train.ann]
epochs = 1
[train.snn]
method = "hire"
epochs = 1
periods = 2
noise_step = 0.02
noise_bound = 0.02
"""


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "neurodeploy.train.distributed", str(recipe), "--out", str(out), "--quiet", "--save-all-ranks"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "train.json").read_text())["world_size"] == 2
    r0, info = read_checkpoint(out / "snn.rank0.safetensors")
    r1, _ = read_checkpoint(out / "snn.rank1.safetensors")
    assert info["world_size"] == 2
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP kept the replicas identical
    assert (out / "snn.state.safetensors").is_file() and (out / "snn.safetensors").is_file()
    torch.set_num_threads(1)
    r = load_recipe(recipe)
    single = train_recipe(r, load_dataset(r.data, 0), None, 0, progress=False).snn.state_dict()
    for k in r0:
        assert torch.allclose(r0[k], single[k], atol=1e-5), k
