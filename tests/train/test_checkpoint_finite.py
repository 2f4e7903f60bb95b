"""A checkpoint with NaN/inf in a tensor, or with metadata that is not a table, is refused by name."""
import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from neurodeploy.errors import CheckpointError
from neurodeploy.train.checkpoint import load_checkpoint, save_checkpoint


def test_nonfinite_tensor_refused(tmp_path):
    m = nn.Linear(3, 2)
    save_checkpoint(m, tmp_path / "ok.safetensors", {"stage": "snn"})
    assert load_checkpoint(nn.Linear(3, 2), tmp_path / "ok.safetensors") == {"stage": "snn"}
    with torch.no_grad():
        m.weight[0, 1] = float("nan")
        m.bias[1] = float("inf")
    save_checkpoint(m, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: tensor 'bias' has 1 non-finite value\(s\) "
                                              r"\(NaN/inf\) of 2"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "bad.safetensors")


def test_metadata_not_a_table(tmp_path):
    save_file({"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, str(tmp_path / "c.safetensors"),
              metadata={"neurodeploy": json.dumps([1, 2])})
    with pytest.raises(CheckpointError, match=r"c\.safetensors: metadata 'neurodeploy' must be a table .*got list"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "c.safetensors")
