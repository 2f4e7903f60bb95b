"""The `neurodeploy import` and `convert` subcommands: thin wrappers, errors as one line and exit 2."""
import nir
import numpy as np
import pytest

from neurodeploy.ir import read_nir




def test_cli_import(tmp_path, capsys, tiny_lif_graph):
    cli = pytest.importorskip("neurodeploy.cli")
    nir.write(str(tmp_path / "m.nir"), tiny_lif_graph())
    rc = cli.main(["-q", "import", str(tmp_path / "m.nir"), "--out", str(tmp_path / "run"), "--dt", "0.5",
                   "--timesteps", "5"])
    assert rc == 0
    assert "lif: LIF: λ = 1 − dt/τ = 0.75" in capsys.readouterr().out
    g, meta = read_nir(tmp_path / "run" / "model.nir")
    assert meta.dt == 0.5 and meta.timesteps == 5 and meta.readout == "count" and meta.reset == {"lif": "zero"}


def test_cli_import_unsupported_exits_2(tmp_path, capsys, tiny_lif_graph):
    cli = pytest.importorskip("neurodeploy.cli")
    g = tiny_lif_graph()
    g.nodes["lif"] = nir.Delay(np.ones(4, np.float32))
    nir.write(str(tmp_path / "d.nir"), g)
    assert cli.main(["-q", "import", str(tmp_path / "d.nir"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "node 'lif' of type Delay cannot be run" in err and "Traceback" not in err
