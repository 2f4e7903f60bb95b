"""OS errors reach the user as one line (path + the system's reason), exit 2, no traceback."""
import os
from pathlib import Path

import pytest

from neurodeploy.cli import main, os_error_line

ROOT = os.geteuid() == 0
DIGITS = Path(__file__).resolve().parents[2] / "neurodeploy" / "recipes" / "digits.toml"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neurodeploy: error: ") and "Traceback" not in err, err
    return err.strip()




def test_out_is_a_regular_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["-q", "train", str(DIGITS), "--out", str(f)]) == 2
    assert _one_line(capsys) == f"neurodeploy: error: {f}: File exists (a file where a folder is needed?)"
    assert f.read_text() == "x"


def test_out_under_a_regular_file(tmp_path, capsys, tiny_if_nir):
    """A run folder that cannot be created (its parent is a file): the OS refuses the write, as for a read-only
    folder (root writes into chmod-555 folders, so this is the case a test running as root can make)."""
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["-q", "train", str(DIGITS), "--out", str(f / "sub")]) == 2
    assert _one_line(capsys) == f"neurodeploy: error: {f / 'sub'}: Not a directory"
    assert main(["-q", "import", str(tiny_if_nir(tmp_path / "m.nir")), "--out", str(f / "sub")]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"neurodeploy: error: {f / 'sub'}") and line.endswith("Not a directory"), line


@pytest.mark.skipif(ROOT, reason="root writes into a chmod-555 folder (CAP_DAC_OVERRIDE)")
def test_read_only_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        assert main(["-q", "train", str(DIGITS), "--out", str(run)]) == 2
        assert "Permission denied" in _one_line(capsys)
    finally:
        run.chmod(0o755)


def test_unreadable_recipe_eio(capsys):
    """Reading /proc/self/mem at offset 0 fails with EIO (an unmapped address), even for root."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem on this system")
    assert main(["-q", "run", "/proc/self/mem", "--out", "/nonexistent/never-created"]) == 2
    assert _one_line(capsys) == "neurodeploy: error: /proc/self/mem: cannot read the recipe (Input/output error)"
    assert not Path("/nonexistent/never-created").exists()


@pytest.mark.skipif(ROOT, reason="root reads a chmod-000 file (CAP_DAC_OVERRIDE)")
def test_unreadable_recipe_permissions(tmp_path, capsys):
    p = tmp_path / "r.toml"
    p.write_text(DIGITS.read_text())
    p.chmod(0)
    try:
        assert main(["-q", "train", str(p), "--out", str(tmp_path / "run")]) == 2
        assert _one_line(capsys) == f"neurodeploy: error: {p}: cannot read the recipe (Permission denied)"
    finally:
        p.chmod(0o644)


def test_os_error_line():
    assert os_error_line(PermissionError(13, "Permission denied", "/x/y")) == "/x/y: Permission denied"
    assert os_error_line(OSError(5, "Input/output error")) == "Input/output error"
    assert os_error_line(OSError(18, "Invalid cross-device link", "/a", None, "/b")) == \
        "/a -> /b: Invalid cross-device link"
