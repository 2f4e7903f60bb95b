"""Writes stay where they belong: import/convert never overwrite a run without --force, and a
profile named in report.json is opened only from the packaged profiles or the run folder."""
import shutil
from pathlib import Path

import pytest

from neurodeploy.cli import main
from neurodeploy.errors import NeurodeployError
from neurodeploy.recipe import MODELS_DIR, TARGETS_DIR
from neurodeploy.run import Run
from neurodeploy.stages.energy import report_profile

RUN_FILES = {"recipe.toml": "name = 'digits'\n", "snn.safetensors": "weights", "report.json": "{}"}




def _trained_run(d: Path) -> Path:
    d.mkdir()
    for name, text in RUN_FILES.items():
        (d / name).write_text(text)
    (d / "model.nir").write_text("the trained run's export")
    return d


def test_import_refuses_a_trained_run(tmp_path, capsys, tiny_if_nir):
    run = _trained_run(tmp_path / "run")
    assert main(["-q", "import", str(tiny_if_nir(tmp_path / "m.nir")), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == (f"neurodeploy: error: {run} holds a run (recipe.toml, snn.safetensors, report.json); "
                   "`neurodeploy import` would overwrite it and leave its report stale: use another --out, or "
                   "--force to start this folder over\n")
    assert {p.name: p.read_text() for p in run.iterdir()} == {**RUN_FILES, "model.nir": "the trained run's export"}


def test_import_force_starts_over(tmp_path, tiny_if_nir):
    run = _trained_run(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    assert main(["-q", "import", str(tiny_if_nir(tmp_path / "m.nir")), "--out", str(run), "--force"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["model.nir", "notes.txt"]  # the user's own file kept
    assert (run / "model.nir").read_bytes()[:4] == b"\x89HDF"


def test_reimport_into_an_import_folder_allowed(tmp_path, tiny_if_nir):
    m = tiny_if_nir(tmp_path / "m.nir")
    assert main(["-q", "import", str(m), "--out", str(tmp_path / "imp")]) == 0
    assert main(["-q", "import", str(m), "--out", str(tmp_path / "imp"), "--timesteps", "4"]) == 0


def test_convert_refuses_a_run_before_any_work(tmp_path, capsys):
    run = _trained_run(tmp_path / "run")
    assert main(["-q", "convert", str(tmp_path / "absent.onnx"), "--recipe", "digits", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurodeploy: error: {run} holds a run (") and "`neurodeploy convert`" in err
    assert (run / "snn.safetensors").read_text() == "weights"


@pytest.fixture()
def run(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(MODELS_DIR / "digits.toml", d / "recipe.toml")
    return Run(d)


def test_report_profile_packaged_and_inside(run):
    assert report_profile(run, "speck", "speck2f").name == "speck2f"
    shutil.copy(TARGETS_DIR / "loihi2.toml", run.dir / "mine.toml")
    assert report_profile(run, "lava", "mine.toml").name == "loihi2"
    assert report_profile(run, "lava", str(run.dir / "mine.toml")).name == "loihi2"


@pytest.mark.parametrize("value", ["/etc/passwd", "../outside.toml", "../../x", str(TARGETS_DIR.parent / "recipe.py")])
def test_report_profile_outside_refused(run, value):
    shutil.copy(TARGETS_DIR / "loihi2.toml", run.dir.parent / "outside.toml")  # a valid profile, but outside
    with pytest.raises(NeurodeployError, match=r"report\.json: targets\.lava\.profile = .*packaged profile "
                                               r"\(cmos45nm, loihi2, speck2f, xylo-audio3\) or a file inside the run folder"):
        report_profile(run, "lava", value)


def test_report_profile_not_a_string(run):
    with pytest.raises(NeurodeployError, match=r"targets\.speck\.profile = 5; must be a profile name"):
        report_profile(run, "speck", 5)
