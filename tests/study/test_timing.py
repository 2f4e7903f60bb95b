"""Epoch-time estimate from one synthetic batch (CIFAR shapes; no dataset read)."""
from __future__ import annotations

import pytest

from neurodeploy.errors import RecipeError
from neurodeploy.recipe import Recipe
from neurodeploy.study.timing import epoch_time


def _recipe(dataset: str) -> Recipe:
    r = Recipe(name="t", timesteps=2)
    r.data.name, r.data.batch_size = dataset, 4
    r.model.name = "digits_convnet"
    r.train.snn.method, r.train.snn.periods = "hire", 2
    r.train.snn.noise_step = r.train.snn.noise_bound = 0.01
    return r


def test_epoch_time_on_a_synthetic_cifar_batch():
    t = epoch_time(_recipe("cifar100"))
    assert t["batches_per_epoch"] == 12_500 and t["batch_size"] == 4 and t["timesteps"] == 2
    for stage in ("ann", "snn"):
        assert t[f"{stage}_batch_s"] > 0 and t[f"{stage}_batch_cpu_s"] > 0
        for kind in ("", "_cpu"):
            assert t[f"{stage}_epoch{kind}_s"] == pytest.approx(t[f"{stage}_batch{kind}_s"] * 12_500,
                                                                abs=0.05 + 1e-4 * 12_500)


def test_epoch_time_refuses_unknown_datasets():
    with pytest.raises(RecipeError, match="no synthetic shape for dataset 'digits'"):
        epoch_time(_recipe("digits"))
