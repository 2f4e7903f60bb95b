"""Producer conventions: every row of the table reads a LIF as its producer runs it; the producer is
detected from the file (Norse's lif_norse.nir, checked against Norse itself); a dt that makes the
dynamics meaningless is an error unless the user gives one, and a warning when they do."""
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedLayerError
from neurodeploy.ir.conventions import CONVENTIONS, detect
from neurodeploy.ir.importer import import_nir

NORSE_FILE = Path(__file__).resolve().parents[1] / "data" / "external" / "lif_norse.nir"


def _lif_file(path: Path, tau: float, names=("fc", "lif")) -> Path:
    w = np.array([[0.7, -0.2], [0.4, 0.9]], np.float32)
    f = lambda v: np.full(2, v, np.float32)  # noqa: E731
    g = nir.NIRGraph(
        nodes={"input": nir.Input({"input": np.array([2])}), names[0]: nir.Linear(weight=w),
               names[1]: nir.LIF(tau=f(tau), r=f(1.0), v_leak=f(0.0), v_threshold=f(0.5)),
               "output": nir.Output({"output": np.array([2])})},
        edges=[("input", names[0]), (names[0], names[1]), (names[1], "output")])
    nir.write(str(path), g)
    return path


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_every_convention_reads_lif_as_its_row_says(tmp_path, name):
    conv = CONVENTIONS[name]
    tau, dt = 10.0, 1.0
    net, _, meta, lines = import_nir(_lif_file(tmp_path / "l.nir", tau), dt=dt, timesteps=4, convention=name)
    n = net.layers["lif"]
    lam = np.exp(-dt / tau) if conv.decay == "exp" else 1.0 - dt / tau
    gain = 1.0 if conv.decay == "exp" else dt / tau
    assert abs(float(n.leak.detach()) - lam) < 1e-6
    assert abs(float(n.threshold.detach()) - 0.5 / gain) < 1e-5
    assert n.reset == (conv.reset or "zero") and n.dynamics.spike == conv.spike and n.dynamics.min_v is None
    # reset to zero with single spikes is the same before or after the leak: it runs on the fused path
    assert n.dynamics.reset_at == ("next" if n.reset == "zero" and conv.spike == "single" else conv.reset_at)
    assert meta.read_as == f"{name}: given by the user" and meta.dt_source == "user"
    assert any(line.startswith(f"read as {name}") and conv.source in line for line in lines)


def test_norse_file_detected_and_equal_to_norse(tmp_path):
    """lif_norse.nir (NIR 0.1.1) is read as Norse runs it (dt = 1e-3, Euler, reset to 0 in the step):
    the same spikes as norse.torch.from_nir at every step."""
    graph = nir.read(str(NORSE_FILE))
    assert detect(graph, "0.1.1")[0] == "norse" and detect(graph, "0.2.0") is None
    T, B = 200, 16
    x = torch.rand(T, B, 1, generator=torch.Generator().manual_seed(0)) * 0.6
    net, _, meta, lines = import_nir(NORSE_FILE, timesteps=T, encoding="events")
    assert meta.read_as.startswith("norse: detected")
    assert meta.dt == 1e-3 and meta.dt_source == "convention norse"
    assert abs(float(net.layers["1"].leak.detach()) - 0.6) < 1e-6
    with torch.no_grad():
        ours = net.layers["1"](net.layers["0"](x))
    nt = pytest.importorskip("norse.torch")
    model = nt.from_nir(str(NORSE_FILE))
    state, ref = None, []
    with torch.no_grad():
        for t in range(T):
            z, state = model(x[t], state)
            ref.append(z)
    ref = torch.stack(ref)
    assert ref.sum() > 100 and torch.equal(ours, ref)


def test_nonsense_dt_is_an_error_without_dt_and_a_warning_with_it(tmp_path):
    """τ = 2.5 ms read with dt = 1 (the default): exp decay 1.9e-174 per step; Euler unstable."""
    path = _lif_file(tmp_path / "fast.nir", 0.0025)
    with pytest.raises(UnsupportedLayerError, match=r"default dt decays the membrane by 1\.92e-174.*--dt"):
        import_nir(path, convention="rockpool")
    with pytest.raises(UnsupportedLayerError, match=r"unstable.*--dt"):
        import_nir(path, convention="nir")
    net, _, meta, lines = import_nir(path, dt=1.0, convention="rockpool")  # the user insists: loud, not refused
    warn = [line for line in lines if "WARNING dt/τ = 400" in line]
    assert len(warn) == 1 and warn[0].startswith("lif.warning")
    _, _, meta, lines = import_nir(path, dt=1e-4, convention="rockpool")
    assert abs(meta.dt - 1e-4) < 1e-12 and not any("WARNING" in line for line in lines)


def test_unknown_producer_defaults_to_nir(tmp_path):
    net, _, meta, lines = import_nir(_lif_file(tmp_path / "l.nir", 10.0), timesteps=4)
    assert meta.read_as.startswith("nir: default") and meta.dt_source == "default"
    assert net.layers["lif"].dynamics.is_default and net.layers["lif"].reset == "zero"
