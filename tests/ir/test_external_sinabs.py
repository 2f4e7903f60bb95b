"""The NIR paper's N-MNIST CNN (written by sinabs.nir.to_nir, tests/data/external/cnn_sinabs.nir)
read the way sinabs runs it: our torch reading equals ``sinabs.from_nir`` of the same file spike
for spike, in the output and in every neuron layer, on seeded random event frames.

Measured when this was written (64 samples, T = 8, Poisson(0.3) counts per pixel and step): 64/64
samples identical in every layer; the reading before the sinabs convention had strategies (one
spike per step, no floor, reset after the leak) matched 0/64, with ~13× fewer output spikes.
"""
from pathlib import Path

import nir
import pytest
import torch

from neurodeploy.ir.importer import import_nir

sinabs = pytest.importorskip("sinabs")  # sinabs.from_nir needs nirtorch only, not samna
sl = pytest.importorskip("sinabs.layers")

FILE = Path(__file__).resolve().parents[1] / "data" / "external" / "cnn_sinabs.nir"
B, T = 64, 8


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """Event frames [B, T, 2, 34, 34] of random counts (Poisson, mean 0.3), seeded."""
    return torch.poisson(torch.full((B, T, 2, 34, 34), 0.3), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference(frames) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """sinabs' own run: output spike counts [B, 10] and per IF layer the spike count per sample."""
    model = sinabs.from_nir(nir.read(str(FILE)), batch_size=B)
    counts: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: counts.__setitem__(k, o.reshape(B, T, -1).sum((1, 2))))
             for k, m in model.named_modules() if isinstance(m, sl.IAFSqueeze)]
    with torch.no_grad():
        out = model(frames.reshape(B * T, 2, 34, 34))
    for h in hooks:
        h.remove()
    out = out[0] if isinstance(out, tuple) else out  # nirtorch's executor returns (output, state)
    return out.reshape(B, T, -1).sum(1), counts


def _ours(frames, convention=None):
    net, _, meta, lines = import_nir(FILE, timesteps=T, encoding="events", convention=convention)
    net.record = True
    with torch.no_grad():
        out = net(frames)
    return out, dict(net.spike_counts), meta, lines


def test_cnn_sinabs_equals_sinabs_from_nir(frames, reference):
    ref, ref_layers = reference
    out, layers, meta, lines = _ours(frames)
    assert meta.read_as.startswith("sinabs: detected")  # the file says who wrote it
    assert any("read as sinabs" in line for line in lines)
    assert sorted(layers) == sorted(ref_layers) == ["1", "10", "12", "3", "6"]
    exact = (out == ref).all(1).float().mean().item()
    assert exact >= 0.99, exact
    for k, counts in ref_layers.items():  # every neuron layer, sample by sample
        same = (layers[k] == counts).float().mean().item()
        assert same >= 0.99, (k, same)
        assert layers[k].sum() == counts.sum(), k
    assert ref.max() > T  # several spikes per step: the multi-spike path matters here
    # the metadata carries what NIR's IF cannot say
    assert meta.neurons["1"] == {"spike": "multi", "min_v": -1.0, "reset_at": "now"}


def test_cnn_sinabs_read_as_nir_differs_and_says_so(frames, reference):
    """Forcing NIR's own reading (one spike per step, reset to 0) is the user's right, but it is
    not how sinabs runs the file: the log says the user contradicted the file, and the counts differ."""
    ref, _ = reference
    out, _, meta, lines = _ours(frames, convention="nir")
    assert meta.read_as.startswith("nir: WARNING") and "sinabs" in meta.read_as
    assert (out == ref).all(1).float().mean().item() < 0.5
    assert out.sum() < ref.sum() / 4
