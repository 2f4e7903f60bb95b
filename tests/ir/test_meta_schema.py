"""Our NIR metadata is checked against its versioned schema when a file is read (import, simulate,
attack all read it through ``read_meta``): one IRError line naming the file and the field."""
import json

import h5py
import nir
import pytest

from neurodeploy.errors import IRError
from neurodeploy.ir import read_nir
from neurodeploy.ir.importer import import_nir
from neurodeploy.ir.metadata import MAX_TIMESTEPS, SCHEMA




@pytest.fixture()
def own_file(tmp_path, tiny_lif_graph):
    """A model.nir written by our importer (canonical graph + our metadata)."""
    nir.write(str(tmp_path / "foreign.nir"), tiny_lif_graph())
    import_nir(tmp_path / "foreign.nir", out=tmp_path / "run")
    return tmp_path / "run" / "model.nir"


def _set_meta(path, value) -> None:
    """Replace the stored metadata entry (nir writes graph.metadata as datasets under node/metadata)."""
    with h5py.File(path, "r+") as f:
        group = f["node"]["metadata"]
        del group["neurodeploy"]
        group.create_dataset("neurodeploy", data=value)


def _edit(path, **fields) -> None:
    with h5py.File(path, "r") as f:
        raw = f["node"]["metadata"]["neurodeploy"][()]
    data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    data.update(fields)
    _set_meta(path, json.dumps(data))


def test_valid_file_reads(own_file):
    g, meta = read_nir(own_file)
    assert meta.schema == SCHEMA and meta.timesteps == 8 and meta.input_shape == [4]


BAD = [
    ("timesteps", 0), ("timesteps", -3), ("timesteps", "8"), ("timesteps", 2.5), ("timesteps", 10 ** 12),
    ("timesteps", True), ("input_shape", [-4]), ("input_shape", [10 ** 5, 10 ** 5]), ("input_shape", "4"),
    ("input_shape", [4.0]), ("schema", "2"), ("schema", 0), ("encoding", "latency"), ("readout", "max"),
    ("reset", {"lif": "bounce"}), ("reset", "zero"), ("dt", 0), ("dt", -1.0), ("dt", "1"), ("num_classes", -1),
    ("convention", "keras"), ("mapping", ["x"]), ("neurons", {"lif": 3}), ("max_pools", 5), ("quantization", []),
    ("producer", 7),
]


@pytest.mark.parametrize("field,value", BAD, ids=[f"{k}={v!r}"[:40] for k, v in BAD])
def test_bad_field_refused(own_file, field, value):
    _edit(own_file, **{field: value})
    with pytest.raises(IRError) as e:
        read_nir(own_file)
    msg = str(e.value)
    assert msg.startswith(f"{own_file}: metadata 'neurodeploy': {field} = ") and "must be" in msg, msg
    assert "\n" not in msg


def test_newer_schema_refused(own_file):
    _edit(own_file, schema=SCHEMA + 1)
    with pytest.raises(IRError, match=rf"metadata 'neurodeploy': schema {SCHEMA + 1} is newer"):
        read_nir(own_file)


@pytest.mark.parametrize("raw,what", [("[1, 2]", "must be a table"), ("5", "must be a table"),
                                      ("{not json", "is not valid JSON")])
def test_metadata_not_a_table(own_file, raw, what):
    _set_meta(own_file, raw)
    with pytest.raises(IRError, match=rf"^{own_file}: metadata 'neurodeploy' {what}"):
        read_nir(own_file)


def test_metadata_a_number(own_file):
    _set_meta(own_file, 42)
    with pytest.raises(IRError, match=rf"^{own_file}: metadata 'neurodeploy' must be a JSON string, got int"):
        read_nir(own_file)


def test_input_shape_must_match_the_graph(own_file):
    _edit(own_file, input_shape=[5])
    with pytest.raises(IRError, match=r"metadata input_shape \[5\] does not match the graph's Input node shape \[4\]"):
        read_nir(own_file)
    _edit(own_file, input_shape=[1, 2, 2])  # the same elements, reshaped: allowed
    assert read_nir(own_file)[1].input_shape == [1, 2, 2]


def test_import_override_checked(tmp_path, tiny_lif_graph):
    nir.write(str(tmp_path / "m.nir"), tiny_lif_graph())
    with pytest.raises(IRError, match=r"m\.nir: input_shape \[9\] does not match the graph's Input node shape \[4\]"):
        import_nir(tmp_path / "m.nir", input_shape=(9,))
    with pytest.raises(IRError, match=r"input_shape \[0, 4\] must be positive"):
        import_nir(tmp_path / "m.nir", input_shape=(0, 4))
    with pytest.raises(IRError, match=rf"timesteps must be in \[1, {MAX_TIMESTEPS}\]"):
        import_nir(tmp_path / "m.nir", timesteps=MAX_TIMESTEPS + 1)


def test_cli_bad_metadata_exit_2(own_file, capsys):
    from neurodeploy.cli import main

    _edit(own_file, timesteps=0)
    assert main(["-q", "import", str(own_file), "--out", str(own_file.parent.parent / "again")]) == 2
    assert capsys.readouterr().err == (f"neurodeploy: error: {own_file}: metadata 'neurodeploy': timesteps = 0; "
                                       f"must be an integer in [1, {MAX_TIMESTEPS}]\n")


def test_run_folder_reader_checks_too(own_file):
    """Run folders (simulate, attack, energy) read model.nir through load_nir_network: same check."""
    from neurodeploy.ir import load_nir_network

    _edit(own_file, input_shape=[10 ** 6, 10 ** 6])
    with pytest.raises(IRError, match=r"metadata 'neurodeploy': input_shape = \[1000000, 1000000\]; must be a list"):
        load_nir_network(own_file)


def test_cli_input_shape_not_integers(tmp_path, capsys, tiny_lif_graph):
    from neurodeploy.cli import main

    nir.write(str(tmp_path / "m.nir"), tiny_lif_graph())
    assert main(["-q", "import", str(tmp_path / "m.nir"), "--out", str(tmp_path / "r"), "--input-shape", "1,x"]) == 2
    assert capsys.readouterr().err == "neurodeploy: error: --input-shape '1,x': give positive integers, e.g. 1,8,8\n"
