"""Recurrent NIR graphs written by others: the NIR paper's Braille CubaLIF networks (files and
provenance in tests/data/external/README.md).

Reference: snnTorch 1.0.0's own neuron classes (test-only; skipped where it is not installed).
snnTorch's importer (snntorch/import_nir.py) cannot read these files with the installed nirtorch
(``GraphModule`` has no ``items``, nirtorch/nir_interpreter.py:310) and, when it could, builds
``RSynaptic(reset_delay=False, init_hidden=True)``, whose forward fails (rsynaptic.py:366-370:
``spk`` is None). So the reference network is wired by hand from the classes that importer uses,
with the parameters it computes (import_nir.py:383-430: α = 1 − dt/τ_syn, β = 1 − dt/τ_mem,
threshold v_th, w_in·dt/τ_syn = 1) and snnTorch's default ``reset_delay=True``.
Conventions: dt = 1e-4 (only in the paper's paper/03_rnn/README.md, so passed explicitly);
reset from the file name (bias_zero: reset to zero; noBias_subtract: subtraction); our reading
uses ``convention="snntorch"``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir import read_nir
from neurodeploy.ir.importer import import_nir
from neurodeploy.ir.passes import inline_subgraphs

DATA = Path(__file__).resolve().parents[1] / "data" / "external"
DT, T, N = 1e-4, 100, 300


def _inputs(seed: int = 0) -> torch.Tensor:
    return (torch.rand(N, T, 12, generator=torch.Generator().manual_seed(seed)) < 0.15).float()


def _snntorch_reference(path: Path, reset: str):
    snn = pytest.importorskip("snntorch")
    g = inline_subgraphs(read_nir(path)[0])
    name = {n for n in g.nodes if n.startswith("lif1.") and type(g.nodes[n]).__name__ == "CubaLIF"}.pop()
    rec = {n for n in g.nodes if n.startswith("lif1.") and n != name}.pop()

    def lin(node) -> nn.Linear:
        w = np.asarray(node.weight, np.float32)
        m = nn.Linear(w.shape[1], w.shape[0])
        m.weight.data = torch.tensor(w)
        b = getattr(node, "bias", None)
        m.bias.data = torch.tensor(np.asarray(b, np.float32)) if b is not None else torch.zeros(w.shape[0])
        return m

    def params(node):
        assert np.allclose(node.w_in * DT / node.tau_syn, 1.0) and np.allclose(node.r, node.tau_mem / DT)
        return (float(np.unique(1 - DT / node.tau_syn)[0]), float(np.unique(1 - DT / node.tau_mem)[0]),
                float(np.unique(node.v_threshold)[0]))

    a1, b1, th1 = params(g.nodes[name])
    n_hidden = np.asarray(g.nodes[rec].weight).shape[0]
    lif1 = snn.RSynaptic(alpha=a1, beta=b1, threshold=th1, reset_mechanism=reset, init_hidden=True,
                         all_to_all=True, linear_features=n_hidden)
    lif1.recurrent = lin(g.nodes[rec])
    a2, b2, th2 = params(g.nodes["lif2"])
    lif2 = snn.Synaptic(alpha=a2, beta=b2, threshold=th2, reset_mechanism=reset, init_hidden=True)
    fc1, fc2 = lin(g.nodes["fc1"]), lin(g.nodes["fc2"])

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        for m in (lif1, lif2):
            m.reset_mem()
        out = torch.zeros(x.shape[0], 7)
        for t in range(x.shape[1]):
            out += lif2(fc2(lif1(fc1(x[:, t]))))
        return out

    return run


@pytest.mark.parametrize("fname,reset", [("braille_noDelay_bias_zero.nir", "zero"),
                                         ("braille_noDelay_noBias_subtract.nir", "subtract")])
def test_braille_matches_snntorch(fname, reset, tmp_path):
    ref = _snntorch_reference(DATA / fname, reset)
    net, _, meta, lines = import_nir(DATA / fname, dt=DT, timesteps=T, encoding="events", reset=reset,
                                     convention="snntorch")
    assert net.recurrent_edges == [("lif1.lif", "lif1.w_rec")] and meta.readout == "count"
    assert any("recurrent graph" in line for line in lines)
    x = _inputs()
    with torch.no_grad():
        ours = net(x)
    theirs = ref(x)
    same = (ours == theirs).all(1).float().mean().item()
    assert theirs.sum() > 0.5 * N and (theirs.sum(1) > 0).float().mean() > 0.5  # the reference is not silent
    assert same >= 0.99, f"{fname}: equal output spike counts on {same:.3f} of {N} samples"


def test_nested_subgraph_equals_flat_and_logs_quirk(caplog):
    with caplog.at_level(logging.WARNING):
        nested, _, _, lines = import_nir(DATA / "braille_noDelay_bias_zero_subgraph.nir", dt=DT, timesteps=T,
                                         encoding="events")
    assert any("names 'lif', which does not exist: read as 'lif1'" in r.getMessage() for r in caplog.records)
    assert any(line.startswith("file quirk tolerated: edge") and "'lif1'" in line for line in lines)
    assert any("has no v_reset" in line for line in lines) and any("float64" in line for line in lines)
    flat, _, _, _ = import_nir(DATA / "braille_noDelay_bias_zero.nir", dt=DT, timesteps=T, encoding="events")
    assert [n for n, _ in nested.neurons()] == ["lif1.lif1", "lif2"]
    x = _inputs(1)
    with torch.no_grad():
        a, b = nested(x), flat(x)
    assert torch.equal(a, b) and a.sum() > 0


def test_nirtorch_braille_runs_recurrent():
    net, _, _, _ = import_nir(DATA / "nirtorch_braille.nir", dt=DT, timesteps=T, encoding="events")
    net.record = True
    with torch.no_grad():
        out = net(_inputs(2))
    assert out.shape == (N, 7) and net.recurrent_edges == [("lif1.lif", "lif1.w_rec")]
    assert float(net.spike_counts["lif1.lif"].sum()) > 0


def test_speck_refuses_recurrent_graph_naming_the_edge_loihi_lowers_it():
    from neurodeploy.targets.loihi.lowering import lower as loihi_lower
    from neurodeploy.targets.speck_lower import lower as speck_lower

    _, graph, meta, _ = import_nir(DATA / "braille_noDelay_bias_zero.nir", dt=DT, timesteps=T, encoding="events")
    with pytest.raises(UnsupportedLayerError, match="recurrent graphs are not supported on Speck yet: edge "
                                                    "lif1.lif→lif1.w_rec"):
        speck_lower(graph, meta, {}, lambda s: None)
    program, _ = loihi_lower(graph, meta, {}, lambda s: None)  # tests/targets/test_loihi_recurrent.py
    assert program.layers[0].rec_synapse == "lif1.w_rec"


def test_op_counting_walks_a_recurrent_graph():
    """The recurrent synapse is counted like any synapse (tests/measure/test_recurrent_ops.py checks the numbers)."""
    from neurodeploy.measure.graph import graph_from_network

    net, _, _, _ = import_nir(DATA / "braille_noDelay_bias_zero.nir", dt=DT, timesteps=T, encoding="events")
    g = graph_from_network(net)
    assert g.nodes["lif1.w_rec"].in_value == "binary" and g.nodes["lif1.w_rec"].out_shape == (38,)
    assert "lif1.w_rec" in g.nodes["lif1.lif"].inputs


def test_missing_w_in_read_as_one_with_a_warning(tmp_path, caplog):
    import shutil

    import h5py

    path = tmp_path / "no_w_in.nir"
    shutil.copy(DATA / "braille_noDelay_bias_zero.nir", path)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/lif2/w_in"]
    with caplog.at_level(logging.WARNING):
        graph, meta = read_nir(path)
    assert np.array_equal(graph.nodes["lif2"].w_in, np.ones(7))
    assert any("node 'lif2' (CubaLIF) has no w_in: read as w_in = 1" in r.getMessage() for r in caplog.records)
