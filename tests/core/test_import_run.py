"""A NIR file written by another framework (sinabs) goes through `neurodeploy run` to a report
with the torch, Lava (and its emulator) and Speck targets — no training in neurodeploy."""
import json

import nir
import pytest
import torch
from torch import nn

sinabs = pytest.importorskip("sinabs")
sl = pytest.importorskip("sinabs.layers")
from sinabs.activation import MembraneSubtract, MultiSpike  # noqa: E402

from neurodeploy.run import load_run
from neurodeploy.stages import run_all  # noqa: E402
from neurodeploy.report import validate_report  # noqa: E402

T = 8


def _sinabs_twin(snn) -> nn.Sequential:
    """Our trained digits SNN rebuilt with sinabs layers: avg pooling becomes sum pooling with the
    next weights divided by the window, IF neurons become IAF as sinabs.from_nir builds them
    (MultiSpike, reset by subtraction, min_v_mem = −threshold: sinabs/nir.py:87-92)."""
    L = snn.layers
    th = [float(L["sn1"].threshold.detach()), float(L["sn2"].threshold.detach())]
    iaf = lambda t: sl.IAFSqueeze(num_timesteps=T, spike_fn=MultiSpike, reset_fn=MembraneSubtract(),  # noqa: E731
                                   spike_threshold=torch.tensor(t), min_v_mem=-t)
    net = nn.Sequential(
        nn.Conv2d(1, L["conv1"].out_channels, 3, padding=1, bias=False), iaf(th[0]), sl.SumPool2d(2),
        nn.Conv2d(L["conv1"].out_channels, L["conv2"].out_channels, 3, padding=1, bias=False), iaf(th[1]),
        sl.SumPool2d(2), nn.Flatten(), nn.Linear(L["fc"].in_features, 10, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(L["conv1"].weight)
        net[3].weight.copy_(L["conv2"].weight / 4)
        net[7].weight.copy_(L["fc"].weight / 4)
    return net


@pytest.mark.lava
@pytest.mark.speck
def test_sinabs_nir_file_through_run(trained_snn, digits_data, tmp_path):
    net = _sinabs_twin(trained_snn)
    g = sinabs.to_nir(net, torch.rand(T, 1, 8, 8))
    g.infer_types()
    nir.write(str(tmp_path / "sinabs_digits.nir"), g)
    (tmp_path / "imported.toml").write_text(f"""
name = "sinabs-import"
timesteps = {T}
[model]
nir = "sinabs_digits.nir"
[attack]
max_samples = 32
sweep_samples = 0
query_samples = 0
[deploy]
targets = ["torch", "loihi-emu", "lava", "speck"]
max_samples = 64
timeout_s = 300.0
""")
    report = run_all(tmp_path / "imported.toml", tmp_path / "run", progress=False)
    assert validate_report(report) == []
    assert report["source"]["ann_clean_accuracy"] is None  # nothing was trained here
    # the imported network computes what sinabs does with the file (the convention is detected from it)
    x = digits_data.x_test
    sinabs.reset_states(net)
    with torch.no_grad():
        theirs = net(x.unsqueeze(1).expand(len(x), T, *x.shape[1:]).reshape(len(x) * T, *x.shape[1:]))
    theirs = theirs.reshape(len(x), T, -1).sum(1)
    run = load_run(tmp_path / "run")
    with torch.no_grad():
        ours = run.model(x)
    assert torch.allclose(ours, theirs, atol=1e-4) and torch.equal(ours.argmax(1), theirs.argmax(1))
    assert "read as sinabs: detected" in (tmp_path / "run" / "import.log").read_text()
    for name in ("torch", "loihi-emu", "lava", "speck"):
        t = report["targets"][name]
        assert t["n_samples"] == 64 and t["lowering"] and t["agreement_with_source"] >= 0.8, (name, t)
    assert report["targets"]["torch"]["agreement_with_source"] == 1.0
    assert "imported" in (tmp_path / "run" / "import.log").read_text()
    assert json.loads((tmp_path / "run" / "report.json").read_text())["recipe"] == "sinabs-import"
