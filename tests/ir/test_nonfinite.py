"""NaN/inf parameters in a NIR file are refused at read (node and tensor named), and never written."""
import h5py
import nir
import numpy as np
import pytest

from neurodeploy.errors import IRError
from neurodeploy.ir import read_nir
from neurodeploy.ir.to_nir import write_nir

F = np.float32


def _graph(sub: bool = False) -> nir.NIRGraph:
    lif = nir.LIF(tau=np.full(4, 2.0, F), r=np.full(4, 2.0, F), v_leak=np.zeros(4, F), v_threshold=np.ones(4, F))
    nodes = {"input": nir.Input(np.array([4])), "fc": nir.Affine(np.eye(4, dtype=F), np.zeros(4, F)), "lif": lif,
             "output": nir.Output(np.array([4]))}
    if sub:  # the neuron inside a subgraph: the path names both
        inner = nir.NIRGraph({"i": nir.Input(np.array([4])), "lif": lif, "o": nir.Output(np.array([4]))},
                             [("i", "lif"), ("lif", "o")])
        nodes["lif"] = inner
        return nir.NIRGraph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    return nir.NIRGraph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def _poison(path, node: str, tensor: str, value: float, index: int = 1) -> None:
    with h5py.File(path, "r+") as f:
        ds = f["node"]["nodes"]
        *outer, last = node.split(".")
        for part in outer:
            ds = ds[part]["nodes"]
        ds = ds[last]
        arr = ds[tensor][()]
        arr.reshape(-1)[index] = value
        del ds[tensor]
        ds.create_dataset(tensor, data=arr)


@pytest.mark.parametrize("node,tensor,value", [("fc", "weight", np.nan), ("fc", "bias", np.inf),
                                               ("lif", "v_threshold", -np.inf), ("lif", "tau", np.nan),
                                               ("lif", "v_leak", np.nan)])
def test_nonfinite_refused_with_node_and_tensor(tmp_path, node, tensor, value):
    p = tmp_path / "m.nir"
    nir.write(str(p), _graph())
    assert read_nir(p)[0].nodes["fc"].weight.shape == (4, 4)  # the clean file reads
    _poison(p, node, tensor, value)
    n = 16 if tensor == "weight" else 4
    with pytest.raises(IRError) as e:
        read_nir(p)
    assert str(e.value) == (f"{p}: node {node!r} ({'Affine' if node == 'fc' else 'LIF'}): tensor {tensor!r} has 1 "
                            f"non-finite value(s) (NaN/inf) of {n}")


def test_nonfinite_in_a_subgraph_named_by_path(tmp_path):
    p = tmp_path / "m.nir"
    nir.write(str(p), _graph(sub=True))
    _poison(p, "lif.lif", "r", np.nan, 0)
    with pytest.raises(IRError, match=r"node 'lif\.lif' \(LIF\): tensor 'r' has 1 non-finite"):
        read_nir(p)


def test_cli_import_nonfinite_exit_2(tmp_path, capsys):
    from neurodeploy.cli import main

    p = tmp_path / "m.nir"
    nir.write(str(p), _graph())
    _poison(p, "fc", "weight", np.nan)
    assert main(["-q", "import", str(p), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tensor 'weight'" in err and not (tmp_path / "run" / "model.nir").exists()


def test_nonfinite_graph_not_written(tmp_path):
    g = _graph()
    g.nodes["fc"].weight[0, 0] = np.nan
    with pytest.raises(IRError, match=r"m\.nir: not written: node 'fc' \(Affine\): tensor 'weight' has 1"):
        write_nir(g, tmp_path / "m.nir")
    assert not (tmp_path / "m.nir").exists()
