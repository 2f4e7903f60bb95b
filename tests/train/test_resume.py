"""Resume: interrupt after epoch k, resume from the training-state file, same result as one run."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from neurodeploy.errors import CheckpointError
from neurodeploy.snn import create_ann, create_snn
from neurodeploy.train import fit_snn, load_training_state, train_ann
from neurodeploy.train.common import make_optimizer, make_scheduler


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_hire_resume_matches_uninterrupted(tiny_recipe, small_digits, tmp_path):
    """HIRE with dropout (RNG), κ carried across epochs, Adam state and lr decay: all restored."""
    cfg = dataclasses.replace(tiny_recipe.train.snn, epochs=3, milestones=[0.5], gamma=0.2)
    torch.manual_seed(0)
    base = create_snn(tiny_recipe, (1, 8, 8), 10)
    full, part = copy.deepcopy(base), copy.deepcopy(base)
    torch.manual_seed(7)
    fit_snn(full, small_digits, cfg, 64, 0, progress=False)
    ck = tmp_path / "snn.state.safetensors"
    torch.manual_seed(7)
    fit_snn(part, small_digits, cfg, 64, 0, progress=False, checkpoint=ck, stop_after=1)
    assert load_training_state(ck, copy.deepcopy(part), *_opt_sched(part, cfg)).epoch == 0
    torch.manual_seed(12345)  # a new process would start with another RNG state: the file restores it
    resumed = copy.deepcopy(base)  # fresh weights: everything must come from the file
    fit_snn(resumed, small_digits, cfg, 64, 0, progress=False, checkpoint=ck)
    _same(full, resumed)
    st = load_training_state(ck, copy.deepcopy(base), *_opt_sched(base, cfg))
    assert st.epoch == 2 and 0 in st.kappa and st.kappa[0].abs().max() <= cfg.noise_bound + 1e-7


def _opt_sched(model, cfg):
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    return opt, make_scheduler(opt, cfg.epochs, cfg.milestones, cfg.gamma)


def test_ann_resume_matches_uninterrupted(tiny_recipe, small_digits, tmp_path):
    r = copy.deepcopy(tiny_recipe)
    r.train.ann.epochs = 3
    r.train.ann.optimizer = "sgd"
    r.train.ann.lr = 0.05
    r.train.ann.milestones = [0.5]
    torch.manual_seed(0)
    base = create_ann(r, (1, 8, 8), 10)
    full, part, resumed = copy.deepcopy(base), copy.deepcopy(base), copy.deepcopy(base)
    torch.manual_seed(3)
    train_ann(full, small_digits, r.train.ann, 64, 0, progress=False)
    ck = tmp_path / "ann.state.safetensors"
    torch.manual_seed(3)
    train_ann(part, small_digits, r.train.ann, 64, 0, progress=False, checkpoint=ck, stop_after=2)
    torch.manual_seed(99)
    train_ann(resumed, small_digits, r.train.ann, 64, 0, progress=False, checkpoint=ck)
    _same(full, resumed)


def test_bad_training_state_names_file(tiny_recipe, tmp_path):
    snn = create_snn(tiny_recipe, (1, 8, 8), 10)
    opt, sched = _opt_sched(snn, tiny_recipe.train.snn)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_training_state(bad, snn, opt, sched)
    with pytest.raises(CheckpointError, match="not found"):
        load_training_state(tmp_path / "nope.safetensors", snn, opt, sched)


def test_state_file_is_replaced_atomically(tiny_recipe, small_digits, tmp_path, monkeypatch):
    """A crash while writing leaves the previous epoch's file intact (write to temp + rename)."""
    cfg = dataclasses.replace(tiny_recipe.train.snn, epochs=2)
    snn = create_snn(tiny_recipe, (1, 8, 8), 10)
    ck = tmp_path / "s.safetensors"
    fit_snn(snn, small_digits, cfg, 64, 0, progress=False, checkpoint=ck, stop_after=1)
    good = ck.read_bytes()
    import neurodeploy.train.state as state_mod

    def boom(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(state_mod, "save_file", boom)
    with pytest.raises(OSError):
        fit_snn(snn, small_digits, cfg, 64, 0, progress=False, checkpoint=ck)
    assert ck.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]
